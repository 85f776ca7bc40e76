package store

import (
	"fmt"
	"strings"

	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/services/audit/internal/domain"
	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

// searchSQL is the statement of q over tenant's entries, and its
// arguments. Each filter is a condition on a column that an index of
// migration 00009 leads with after tenant_id (then seq), so a search reads
// a range of that index in seq order, resuming after the cursor (keyset,
// never OFFSET): a page deep in the log costs what the first does.
//
// A minimum severity of more than one value is one branch per severity,
// each reading its own range of (tenant_id, severity, seq) up to the
// limit, merged by seq: an IN list would make the database either sort
// every match or scan the log in seq order. A time bound without another
// filter orders by (ts, seq), which is seq order (timestamps never
// decrease along a log), so the ts index serves both the bound and the
// order.
func (s *Store) searchSQL(tenant string, q domain.Query) (string, []any) {
	f := q.Filter
	sev := f.Severities()
	if len(sev) == 4 {
		sev = nil
	}
	var args []any
	dir := ""
	if q.Desc {
		dir = " DESC"
	}
	branch := func(severity string) string {
		var b strings.Builder
		b.WriteString("SELECT " + entryCols + " FROM audit_entries WHERE tenant_id = ?")
		args = append(args, tenant)
		cond := func(sql string, v any) {
			b.WriteString(" AND " + sql)
			args = append(args, v)
		}
		if f.EventType != "" {
			cond("event_type = ?", f.EventType)
		}
		if f.User != "" {
			cond("user_name = ?", f.User)
		}
		if f.Resource != "" {
			cond("resource = ?", f.Resource)
		}
		if severity != "" {
			cond("severity = ?", severity)
		}
		if !f.Since.IsZero() {
			cond("ts >= ?", f.Since)
		}
		if !f.Until.IsZero() {
			cond("ts < ?", f.Until)
		}
		if q.Max > 0 {
			cond("seq <= ?", int64(q.Max))
		}
		if q.Desc && q.Before > 0 {
			cond("seq < ?", int64(q.Before))
		} else if !q.Desc && q.After > 0 {
			cond("seq > ?", int64(q.After))
		}
		order := "seq" + dir
		if f.EventType == "" && f.User == "" && f.Resource == "" && severity == "" && (!f.Since.IsZero() || !f.Until.IsZero()) {
			order = "ts" + dir + ", seq" + dir
		}
		b.WriteString(" ORDER BY " + order + " LIMIT ?")
		args = append(args, q.Limit)
		return b.String()
	}
	var query string
	switch len(sev) {
	case 0:
		query = branch("")
	case 1:
		query = branch(sev[0])
	default:
		arms := make([]string, len(sev))
		for i, v := range sev {
			arms[i] = fmt.Sprintf("SELECT * FROM (%s) AS s%d", branch(v), i)
		}
		query = "SELECT * FROM (" + strings.Join(arms, " UNION ALL ") + ") AS u ORDER BY seq" + dir + " LIMIT ?"
		args = append(args, q.Limit)
	}
	return s.db.Rebind(query), args
}

const entryCols = "seq, ts, event_type, user_name, action, resource, details, severity, prev_hash, hash"

func (v *snapshot) Search(q domain.Query) ([]ledger.Entry, error) {
	query, args := v.s.searchSQL(v.tenant, q)
	var out []ledger.Entry
	err := v.query(query, args, func(rows pstore.Rows) error {
		return scanEntries(rows, v.tenant, 0, func(e ledger.Entry) error { out = append(out, e); return nil })
	})
	return out, err
}
