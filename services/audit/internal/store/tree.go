package store

import (
	"cmp"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/services/audit/internal/domain"
	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

// nodes fetches the hashes of ids of tenant's tree with read. A node of
// ledger.StoredLevel or above is read from audit_nodes; one below is
// derived from the hashes of the entries under it, read with it (one
// statement on PostgreSQL, pgQuery: nodesPG in a transaction, treeNodesPG
// outside one). Where a retention cut deleted those entries, the cut's
// frontier nodes (stored at the cut) stand in: they are read, with the
// ids that could not be derived and every low node under them, only then.
func (s *Store) nodes(read reader, pgQuery, tenant string, ids []ledger.NodeID) ([][]byte, error) {
	out := make([][]byte, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	t := treeRead{stored: map[ledger.NodeID][]byte{}, sums: map[uint64]string{}}
	stored := slices.DeleteFunc(slices.Clone(ids), func(id ledger.NodeID) bool { return !id.Stored() })
	if err := s.readTree(read, pgQuery, tenant, stored, leafSpans(ids), &t); err != nil {
		return nil, err
	}
	if under := t.fill(ids, out); len(under) > 0 {
		if err := s.readTree(read, pgQuery, tenant, under, nil, &t); err != nil {
			return nil, err
		}
		t.fill(ids, out)
	}
	for i, h := range out {
		if h == nil {
			return nil, fmt.Errorf("%w: node %d/%d", domain.ErrNodeMissing, ids[i].Level, ids[i].Index)
		}
	}
	return out, nil
}

// treeRead is what nodes has read: stored nodes and entry hashes (hex, by
// leaf index).
type treeRead struct {
	stored map[ledger.NodeID][]byte
	sums   map[uint64]string
}

// fill sets out[i] for each of ids it can (stored, or derived) and returns
// the derived ids it could not and the low nodes under them: the stored
// ones that may stand in for their missing entries.
func (t *treeRead) fill(ids []ledger.NodeID, out [][]byte) (under []ledger.NodeID) {
	sum := func(leaf uint64) ([]byte, bool) {
		h, ok := t.sums[leaf]
		if !ok {
			return nil, false
		}
		b, err := hex.DecodeString(h)
		return b, err == nil
	}
	stored := func(id ledger.NodeID) ([]byte, bool) { h, ok := t.stored[id]; return h, ok }
	for i, id := range ids {
		switch {
		case out[i] != nil:
		case id.Stored():
			out[i] = t.stored[id]
		default:
			if h, ok := ledger.Derive(id, sum, stored); ok {
				out[i] = h
				continue
			}
			for l := range id.Level + 1 {
				first, end := id.Leaves()
				for k := first >> l; k < end>>l; k++ {
					under = append(under, ledger.NodeID{Level: l, Index: k})
				}
			}
		}
	}
	return under
}

// span is a range of seqs, both ends included.
type span struct{ lo, hi uint64 }

// leafSpans are the seqs of the entries under the derived ones of ids,
// merged into ascending ranges.
func leafSpans(ids []ledger.NodeID) []span {
	var spans []span
	for _, id := range ids {
		if !id.Stored() {
			first, end := id.Leaves()
			spans = append(spans, span{first + 1, end}) // leaf i is entry i+1
		}
	}
	slices.SortFunc(spans, func(a, b span) int { return cmp.Compare(a.lo, b.lo) })
	merged := spans[:0]
	for _, sp := range spans {
		if n := len(merged); n > 0 && sp.lo <= merged[n-1].hi+1 {
			merged[n-1].hi = max(merged[n-1].hi, sp.hi)
			continue
		}
		merged = append(merged, sp)
	}
	return merged
}

// readTree reads the stored nodes ids and the entry hashes of spans into t.
// On PostgreSQL in one statement (pgQuery): the ids as two arrays, the
// spans as two; on SQLite, where a statement costs no round trip, the ids
// as a VALUES list (at most ~64 shapes, one per count, which the statement
// cache keeps) and a statement per span.
func (s *Store) readTree(read reader, pgQuery, tenant string, ids []ledger.NodeID, spans []span, t *treeRead) error {
	levels, idxs := make([]int64, len(ids)), make([]int64, len(ids))
	for i, id := range ids {
		levels[i], idxs[i] = int64(id.Level), int64(id.Index)
	}
	if s.db.Dialect == pstore.Postgres {
		los, his := make([]int64, len(spans)), make([]int64, len(spans))
		for i, sp := range spans {
			los[i], his[i] = int64(sp.lo), int64(sp.hi)
		}
		return read(pgQuery, []any{tenant, levels, idxs, los, his}, func(rows pstore.Rows) error {
			for rows.Next() {
				var level, idx int64
				var h []byte
				var entry *string
				if err := rows.Scan(&level, &idx, &h, &entry); err != nil {
					return err
				}
				t.add(level, idx, h, entry)
			}
			return nil
		})
	}
	pairs := make([]string, len(ids))
	args := []any{tenant}
	for i := range ids {
		pairs[i] = "(?, ?)"
		args = append(args, levels[i], idxs[i])
	}
	if len(ids) > 0 {
		q := "SELECT level, idx, hash FROM audit_nodes WHERE tenant_id = ? AND (level, idx) IN (" + strings.Join(pairs, ", ") + ")"
		err := read(q, args, func(rows pstore.Rows) error {
			for rows.Next() {
				var level, idx int64
				var h []byte
				if err := rows.Scan(&level, &idx, &h); err != nil {
					return err
				}
				t.add(level, idx, h, nil)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	for _, sp := range spans {
		err := read(entryHashesSQLite, []any{tenant, int64(sp.lo), int64(sp.hi)}, func(rows pstore.Rows) error {
			for rows.Next() {
				var seq int64
				var h string
				if err := rows.Scan(&seq, &h); err != nil {
					return err
				}
				t.add(-1, seq, nil, &h)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

const entryHashesSQLite = "SELECT seq, hash FROM audit_entries WHERE tenant_id = ? AND seq BETWEEN ? AND ?"

// add records a row of readTree: a stored node, or (level -1) entry idx's
// hash.
func (t *treeRead) add(level, idx int64, h []byte, entry *string) {
	switch {
	case level < 0 && entry != nil && idx > 0:
		t.sums[uint64(idx-1)] = *entry
	case level >= 0 && h != nil:
		t.stored[ledger.NodeID{Level: uint(level), Index: uint64(idx)}] = h
	}
}
