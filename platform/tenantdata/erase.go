package tenantdata

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	tenantdatav1 "github.com/echopilot/echopilot/gen/go/echopilot/tenantdata/v1"
	"github.com/echopilot/echopilot/platform/store"
)

// EraseTenantData erases up to the batch size of rows per kind and
// reports what is left; callers repeat it until done.
func (s *Server) EraseTenantData(ctx context.Context, req *tenantdatav1.EraseTenantDataRequest) (*tenantdatav1.EraseTenantDataResponse, error) {
	batch, err := validErase(req)
	if err != nil {
		return nil, err
	}
	tenant, erasure := req.GetTenantId(), req.GetErasureId()
	if s.rules.BeforeErase != nil {
		if err := s.rules.BeforeErase(ctx, tenant, erasure); err != nil {
			return nil, fmt.Errorf("tenantdata: before erase: %w", err)
		}
	}
	tables, err := loadCatalog(ctx, s.db)
	if err != nil {
		return nil, err
	}
	resp := &tenantdatav1.EraseTenantDataResponse{Done: true}
	for _, t := range tables {
		e := eraser{s: s, t: t, tenant: tenant, pseudonym: req.GetPseudonym(), budget: batch}
		p, err := e.run(ctx)
		if err != nil {
			return nil, fmt.Errorf("tenantdata: erase %s: %w", t.name, err)
		}
		if p.Remaining > 0 {
			resp.Done = false
		}
		resp.Kinds = append(resp.Kinds, p)
	}
	if resp.Done && s.rules.AfterErase != nil {
		if err := s.rules.AfterErase(ctx, tenant, erasure); err != nil {
			return nil, fmt.Errorf("tenantdata: after erase: %w", err)
		}
	}
	return resp, nil
}

// eraser is one kind's part of one EraseTenantData call.
type eraser struct {
	s         *Server
	t         table
	tenant    string
	pseudonym string
	// budget is the rows this call may still delete or change.
	budget  int
	changed int64
}

func (e *eraser) run(ctx context.Context) (*tenantdatav1.KindProgress, error) {
	if fn, ok := e.s.rules.Erase[e.t.name]; ok {
		deleted, left, err := fn(ctx, e.tenant, e.budget)
		if err != nil {
			return nil, err
		}
		return &tenantdatav1.KindProgress{Kind: e.t.name, Rule: ActionDelete, Changed: deleted, Remaining: left}, nil
	}
	rule, ruled := e.s.rules.Keep[e.t.name]
	action := ActionDelete
	if ruled {
		action = rule.Action
	}
	if action != ActionDelete && action != ActionKeep && action != ActionPseudonymise {
		return nil, fmt.Errorf("unknown rule action %q", action)
	}
	// ruleRows selects the rows the rule applies to; the tenant's others
	// are deleted.
	ruleRows := "1 = 1"
	if rule.Where != "" {
		ruleRows = "COALESCE((" + rule.Where + "), false)"
	}
	var deletable, remaining string
	switch action {
	case ActionDelete:
		deletable, remaining = "1 = 1", "1 = 1"
		if e.t.hold != "" {
			deletable = "NOT (" + e.t.hold + ")"
		}
	case ActionKeep:
		deletable, remaining = "NOT "+ruleRows, "NOT "+ruleRows
	case ActionPseudonymise:
		deletable, remaining = "NOT "+ruleRows, "1 = 1"
	}
	if rule.Where == "" && action != ActionDelete {
		deletable = "" // nothing of the tenant's is deleted
	}
	if deletable != "" {
		if err := e.deleteOwn(ctx, deletable); err != nil {
			return nil, err
		}
	}
	if action == ActionPseudonymise {
		if err := e.pseudonymiseOwn(ctx, ruleRows, rule.Blank); err != nil {
			return nil, err
		}
	}
	left, err := e.count(ctx, remaining)
	if err != nil {
		return nil, err
	}
	if action != ActionKeep {
		// Other tenants' rows that name this one (a decision's target).
		for _, c := range e.t.others {
			n, err := e.otherColumn(ctx, c, action == ActionPseudonymise)
			if err != nil {
				return nil, err
			}
			left += n
		}
	}
	return &tenantdatav1.KindProgress{Kind: e.t.name, Rule: action, Changed: e.changed, Remaining: left, Reason: rule.Reason}, nil
}

// keyIn is "key IN (SELECT key FROM t WHERE tenant_id = ? AND pred LIMIT
// budget)": the batch a statement changes.
func (e *eraser) keyIn(pred string) string {
	return keyTuple(e.t.key) + " IN (SELECT " + idents(e.t.key) + " FROM " + ident(e.t.name) +
		" WHERE " + ident(tenantColumn) + " = ? AND " + pred + fmt.Sprintf(" LIMIT %d)", e.budget)
}

func (e *eraser) deleteOwn(ctx context.Context, pred string) error {
	if e.budget <= 0 {
		return nil
	}
	q := "DELETE FROM " + ident(e.t.name) + " WHERE " + ident(tenantColumn) + " = ? AND " + e.keyIn(pred)
	return e.s.db.InTenantTx(ctx, e.tenant, func(tx *sql.Tx) error {
		return e.exec(ctx, tx, q, e.tenant, e.tenant)
	})
}

// pseudonymiseOwn moves a batch of the tenant's rows the rule keeps to the
// pseudonym, with the Blank columns emptied. Row-level security lets a
// transaction write only rows of its tenant, so the rows are read and
// deleted as the tenant and inserted again as the pseudonym.
func (e *eraser) pseudonymiseOwn(ctx context.Context, ruleRows string, blank []string) error {
	if e.budget <= 0 {
		return nil
	}
	cols := e.t.cols
	sel := "SELECT " + idents(cols) + " FROM " + ident(e.t.name) + " WHERE " + ident(tenantColumn) + " = ? AND " +
		ruleRows + " ORDER BY " + idents(e.t.key) + fmt.Sprintf(" LIMIT %d", e.budget)
	del := "DELETE FROM " + ident(e.t.name) + " WHERE " + ident(tenantColumn) + " = ? AND " + keyTuple(e.t.key) + " = " + placeholders(len(e.t.key))
	ins := "INSERT INTO " + ident(e.t.name) + " (" + idents(cols) + ") VALUES (" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
	keyIdx := make([]int, len(e.t.key))
	for i, k := range e.t.key {
		keyIdx[i] = slices.Index(cols, k)
	}
	db := e.s.db
	return db.InTenantTx(ctx, e.tenant, func(tx *sql.Tx) error {
		rows, err := readRows(ctx, tx, db.Rebind(sel), len(cols), e.tenant)
		if err != nil {
			return err
		}
		for _, r := range rows {
			args := []any{e.tenant}
			for _, i := range keyIdx {
				args = append(args, r[i])
			}
			if _, err := tx.ExecContext(ctx, db.Rebind(del), args...); err != nil {
				return err
			}
		}
		if err := db.SetTenant(ctx, tx, e.pseudonym); err != nil {
			return err
		}
		for _, r := range rows {
			for i, c := range cols {
				switch {
				case c == tenantColumn || (strings.HasSuffix(c, tenantSuffix) && r[i] == e.tenant):
					r[i] = e.pseudonym
				case slices.Contains(blank, c):
					r[i] = ""
				}
			}
			if _, err := tx.ExecContext(ctx, db.Rebind(ins), r...); err != nil {
				return err
			}
		}
		e.changed += int64(len(rows))
		e.budget -= len(rows)
		return nil
	})
}

// otherColumn deletes (or, pseudonymise, points at the pseudonym) a batch
// of other tenants' rows whose column c names the tenant, and returns how
// many are left. Finding their owners needs the all-tenants read view;
// each owner's rows are then changed in a transaction scoped to it, as
// row-level security lets only the owner write them.
func (e *eraser) otherColumn(ctx context.Context, c string, pseudonymise bool) (int64, error) {
	db := e.s.db
	from := " FROM " + ident(e.t.name) + " WHERE " + ident(c) + " = ? AND " + ident(tenantColumn) + " <> ?"
	var owners []string
	err := db.InAllTenantsReadTx(ctx, func(tx *sql.Tx) error {
		var err error
		owners, err = store.Strings(tx.QueryContext(ctx, db.Rebind("SELECT DISTINCT "+ident(tenantColumn)+from+
			" ORDER BY 1"+fmt.Sprintf(" LIMIT %d", max(e.budget, 0))), e.tenant, e.tenant))
		return err
	})
	if err != nil {
		return 0, err
	}
	for _, owner := range owners {
		if e.budget <= 0 {
			break
		}
		pred := ident(c) + " = ?"
		q := "DELETE FROM " + ident(e.t.name) + " WHERE " + ident(tenantColumn) + " = ? AND " + e.keyIn(pred)
		args := []any{owner, owner, e.tenant}
		if pseudonymise {
			q = "UPDATE " + ident(e.t.name) + " SET " + ident(c) + " = ? WHERE " + ident(tenantColumn) + " = ? AND " + e.keyIn(pred)
			args = append([]any{e.pseudonym}, args...)
		}
		if err := db.InTenantTx(ctx, owner, func(tx *sql.Tx) error { return e.exec(ctx, tx, q, args...) }); err != nil {
			return 0, err
		}
	}
	var left int64
	err = db.InAllTenantsReadTx(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, db.Rebind("SELECT count(*)"+from), e.tenant, e.tenant).Scan(&left)
	})
	return left, err
}

// count is the tenant's rows matching pred.
func (e *eraser) count(ctx context.Context, pred string) (int64, error) {
	var n int64
	q := "SELECT count(*) FROM " + ident(e.t.name) + " WHERE " + ident(tenantColumn) + " = ? AND " + pred
	err := e.s.db.InTenantReadTx(ctx, e.tenant, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, e.s.db.Rebind(q), e.tenant).Scan(&n)
	})
	return n, err
}

// exec runs a batch statement and charges its rows to the budget.
func (e *eraser) exec(ctx context.Context, tx *sql.Tx, q string, args ...any) error {
	res, err := tx.ExecContext(ctx, e.s.db.Rebind(q), args...)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	e.changed += n
	e.budget -= int(n)
	return nil
}

func readRows(ctx context.Context, tx *sql.Tx, q string, n int, args ...any) ([][]any, error) {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][]any
	for rows.Next() {
		vals := make([]any, n)
		ptrs := make([]any, n)
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		out = append(out, vals)
	}
	return out, rows.Err()
}
