package store

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/echopilot/echopilot/platform/outbox"
	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/services/audit/internal/domain"
	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

// writeTx is a write transaction of the ledger (an append, an update of
// the verified state), written once for both databases: statements are
// queued and run by flush, whose results (affected counts, scanned rows)
// are in only after it. On PostgreSQL that is a pipelined transaction
// (pstore.PipeTx): an append's head is read and locked in the round trip
// that begins the transaction and scopes it, and its batch is written in
// the one that commits it, two round trips where statement by statement
// took five, with the head's row lock held across one. On SQLite, which
// has no round trips, each statement runs at once.
type writeTx interface {
	setTenant(tenant string)
	exec(query string, args []any, affected *int64)
	queryRow(query string, args []any, dest ...any)
	query(query string, args []any, scan func(pstore.Rows) error)
	addEvents(evs []outbox.Event)
	// flush runs what is queued and returns the transaction's first error.
	flush() error
	// end returns the first error so far and leaves what is queued to
	// the commit.
	end() error
}

// inWriteTx runs fn in a write transaction and commits it.
func (s *Store) inWriteTx(ctx context.Context, fn func(writeTx) error) error {
	if s.db.Dialect == pstore.Postgres {
		return s.db.InPipeTx(ctx, func(tx *pstore.PipeTx) error { return fn(&pipeWriteTx{tx: tx}) })
	}
	return s.db.InWriteTx(ctx, func(tx *sql.Tx) error {
		return fn(&sqlWriteTx{ctx: ctx, s: s, tx: tx})
	})
}

// Append implements domain.Store: one transaction for every tenant of the
// call, taken in tenant order so concurrent calls lock heads in the same
// order and cannot deadlock.
func (s *Store) Append(ctx context.Context, tenants []string, keys map[string][]string, build domain.BuildFunc) error {
	tenants = slices.Sorted(slices.Values(tenants))
	now := time.Now()
	err := s.inWriteTx(ctx, func(t writeTx) error {
		for i, tenant := range tenants {
			if i > 0 && tenant == tenants[i-1] {
				continue
			}
			dups := s.claimKeys(t, tenant, keys[tenant], now)
			tb := func(tenant string, h domain.Head) (domain.Batch, error) {
				h.Duplicate = dups()
				return build(tenant, h)
			}
			if err := s.appendTenant(t, tenant, tb); err != nil {
				return fmt.Errorf("tenant %s: %w", tenant, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("append: %w", err)
	}
	return nil
}

// claimKeys queues claiming tenant's idempotency keys ("" for none) until
// KeyRetention from now; after the next flush, dups reports those taken
// before. Expired claims of the tenant go first, which bounds the table
// without a job that would have to visit every tenant.
func (s *Store) claimKeys(t writeTx, tenant string, keys []string, now time.Time) (dups func() []bool) {
	claimed := make([]int64, len(keys))
	if slices.ContainsFunc(keys, func(k string) bool { return k != "" }) {
		t.setTenant(tenant)
		t.exec(s.q.pruneReplays, []any{tenant, now}, nil)
		for i, k := range keys {
			if k != "" {
				t.exec(s.q.claimReplay, []any{tenant, "key:" + k, now.Add(domain.KeyRetention)}, &claimed[i])
			}
		}
	}
	return func() []bool {
		out := make([]bool, len(keys))
		for i, k := range keys {
			out[i] = k != "" && claimed[i] == 0
		}
		return out
	}
}

// errDuplicate rolls back the transaction of an AppendOnce that found a
// key claimed: a duplicate leaves no trace, so a flood of them does not
// grow the table.
var errDuplicate = errors.New("claimed before")

// AppendOnce implements domain.Store: the keys are claimed in the
// transaction of the append, so a delivery is appended once and a failed
// append leaves no claim behind (the sender's retry is processed). The
// tenant's expired claims go in the same transaction, which bounds the
// table without a job that would have to visit every tenant.
func (s *Store) AppendOnce(ctx context.Context, tenant string, claims []domain.Claim, build domain.BuildFunc) (bool, error) {
	err := s.inWriteTx(ctx, func(t writeTx) error {
		t.setTenant(tenant)
		t.exec(s.q.pruneReplays, []any{tenant, time.Now()}, nil)
		claimed := make([]int64, len(claims))
		for i, c := range claims {
			t.exec(s.q.claimReplay, []any{tenant, c.Key, c.Until}, &claimed[i])
		}
		return s.appendTenant(t, tenant, func(tenant string, h domain.Head) (domain.Batch, error) {
			if slices.Contains(claimed, 0) {
				return domain.Batch{}, errDuplicate
			}
			return build(tenant, h)
		})
	})
	switch {
	case errors.Is(err, errDuplicate):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("append once: %w", err)
	}
	return false, nil
}

// appendTenant locks tenant's head (with whatever is queued), calls build
// and queues the batch it returns: entries, nodes, checkpoint, the new
// head and its outbox events.
func (s *Store) appendTenant(t writeTx, tenant string, build domain.BuildFunc) error {
	t.setTenant(tenant)
	var h domain.Head
	var size int64
	var packed []byte
	t.queryRow(s.q.lockHead, []any{tenant, ledger.Genesis, time.Unix(0, 0).UTC()}, &size, &h.LastHash, &h.LastTS, &packed)
	if err := t.flush(); err != nil {
		return err
	}
	h.Size = uint64(size)
	h.LastTS = h.LastTS.UTC()
	var err error
	if h.Range, err = s.headRange(t, tenant, h.Size, packed); err != nil {
		return fmt.Errorf("tree range: %w", err)
	}
	h.Endpoints = func() ([]domain.Route, error) {
		var routes []domain.Route
		t.query(s.q.endpoints, []any{tenant}, func(rows pstore.Rows) error {
			for rows.Next() {
				e, err := scanEndpoint(rows)
				if err != nil {
					return err
				}
				routes = append(routes, domain.Route{ID: e.ID, EventTypes: e.EventTypes, MinSeverity: e.MinSeverity})
			}
			return nil
		})
		return routes, t.flush()
	}
	b, err := build(tenant, h)
	if err != nil || len(b.Entries) == 0 {
		return err
	}
	last := b.Entries[len(b.Entries)-1]
	if len(b.Events) > 0 {
		t.addEvents(b.Events)
	}
	head := []any{int64(last.Seq), last.Hash, last.TS, bytes.Join(b.Range, nil), tenant}
	// Every node, those below ledger.StoredLevel too, which this release
	// derives from the entries and no longer reads: the previous release,
	// which may still run beside it during a rollout, reads them (expand,
	// then contract: the next release stops writing them and deletes them).
	if s.db.Dialect == pstore.Postgres {
		// The entries, nodes, checkpoint and head in one statement.
		c := entryColumns(b.Entries)
		levels, idxs, hashes := nodeColumns(b.Nodes)
		t.exec(s.q.writeBatchPG, []any{tenant, c.seq, c.ts, c.typ, c.user, c.action, c.resource, c.details, c.sev,
			c.prev, c.hash, levels, idxs, hashes, head[0], string(b.Checkpoint), head[1], head[2], head[3]}, nil)
		return t.end()
	}
	// SQLite: a prepared insert per row, where a statement costs no round
	// trip.
	for _, e := range b.Entries {
		t.exec(s.q.insertEntry, []any{tenant, int64(e.Seq), e.TS, e.EventType, e.User, e.Action, e.Resource,
			e.Details, e.Severity, e.PrevHash, e.Hash}, nil)
	}
	for _, n := range b.Nodes {
		t.exec(s.q.insertNode, []any{tenant, int64(n.ID.Level), int64(n.ID.Index), n.Hash}, nil)
	}
	t.exec(s.q.insertCheckpnt, []any{tenant, head[0], string(b.Checkpoint)}, nil)
	t.exec(s.q.updateHead, head, nil)
	return t.end()
}

// headRange unpacks the compact range kept with the head, or reads it from
// the nodes for a head written before the head kept it.
func (s *Store) headRange(t writeTx, tenant string, size uint64, packed []byte) ([][]byte, error) {
	want := len(ledger.RangeIDs(size))
	if len(packed) != want*sha256.Size {
		read := func(q string, args []any, scan func(pstore.Rows) error) error {
			t.query(q, args, scan)
			return t.flush()
		}
		return s.nodes(read, s.q.nodesPG, tenant, ledger.RangeIDs(size))
	}
	rng := make([][]byte, want)
	for i := range rng {
		rng[i] = packed[i*sha256.Size : (i+1)*sha256.Size]
	}
	return rng, nil
}

// columns are entries as the arrays of PostgreSQL's multi-row inserts.
type columns struct {
	seq                                                   []int64
	ts                                                    []time.Time
	typ, user, action, resource, details, sev, prev, hash []string
}

func entryColumns(es []ledger.Entry) columns {
	var c columns
	for _, e := range es {
		c.seq, c.ts = append(c.seq, int64(e.Seq)), append(c.ts, e.TS)
		c.typ, c.user, c.action = append(c.typ, e.EventType), append(c.user, e.User), append(c.action, e.Action)
		c.resource, c.details = append(c.resource, e.Resource), append(c.details, e.Details)
		c.sev, c.prev, c.hash = append(c.sev, e.Severity), append(c.prev, e.PrevHash), append(c.hash, e.Hash)
	}
	return c
}

// nodeColumns are nodes as arrays, as entryColumns.
func nodeColumns(ns []ledger.Node) ([]int16, []int64, [][]byte) {
	levels, idxs, hashes := make([]int16, len(ns)), make([]int64, len(ns)), make([][]byte, len(ns))
	for i, n := range ns {
		levels[i], idxs[i], hashes[i] = int16(n.ID.Level), int64(n.ID.Index), n.Hash
	}
	return levels, idxs, hashes
}

// sqlWriteTx runs each statement at once in a database/sql transaction
// (SQLite); the first error stops the rest and is flush's.
type sqlWriteTx struct {
	ctx context.Context
	s   *Store
	tx  *sql.Tx
	err error
}

func (t *sqlWriteTx) setTenant(tenant string) {
	if t.err == nil {
		t.err = t.s.db.SetTenant(t.ctx, t.tx, tenant)
	}
}

func (t *sqlWriteTx) exec(query string, args []any, affected *int64) {
	if t.err != nil {
		return
	}
	res, err := t.s.stmts.Exec(t.ctx, t.tx, query, args...)
	if err == nil && affected != nil {
		*affected, err = res.RowsAffected()
	}
	t.err = err
}

func (t *sqlWriteTx) queryRow(query string, args []any, dest ...any) {
	if t.err == nil {
		t.err = t.s.stmts.QueryRow(t.ctx, t.tx, query, args...).Scan(dest...)
	}
}

func (t *sqlWriteTx) query(query string, args []any, scan func(pstore.Rows) error) {
	if t.err == nil {
		t.err = sqlRead(func(q string, args ...any) (*sql.Rows, error) { return t.s.stmts.Query(t.ctx, t.tx, q, args...) })(query, args, scan)
	}
}

func (t *sqlWriteTx) addEvents(evs []outbox.Event) {
	if t.err == nil {
		_, t.err = outbox.AddMany(t.ctx, t.tx, t.s.db.Dialect, evs)
	}
}

func (t *sqlWriteTx) flush() error { return t.err }

func (t *sqlWriteTx) end() error { return t.err }

// pipeWriteTx queues each statement on a pipelined transaction
// (PostgreSQL).
type pipeWriteTx struct {
	tx  *pstore.PipeTx
	err error
}

func (t *pipeWriteTx) setTenant(tenant string) {
	t.err = cmp.Or(t.err, t.tx.SetTenant(tenant))
}

func (t *pipeWriteTx) exec(query string, args []any, affected *int64) {
	t.tx.Queue(query, args...).Exec(func(tag pgconn.CommandTag) error {
		if affected != nil {
			*affected = tag.RowsAffected()
		}
		return nil
	})
}

func (t *pipeWriteTx) queryRow(query string, args []any, dest ...any) {
	t.tx.Queue(query, args...).QueryRow(func(row pgx.Row) error {
		if err := row.Scan(dest...); !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		return sql.ErrNoRows // as database/sql says it
	})
}

func (t *pipeWriteTx) query(query string, args []any, scan func(pstore.Rows) error) {
	t.tx.Queue(query, args...).Query(func(rows pgx.Rows) error { return scan(rows) })
}

func (t *pipeWriteTx) addEvents(evs []outbox.Event) {
	if _, err := outbox.AddQueued(t.tx, evs); err != nil {
		t.err = cmp.Or(t.err, err)
	}
}

func (t *pipeWriteTx) flush() error {
	if t.err != nil {
		return t.err
	}
	return t.tx.Flush()
}

func (t *pipeWriteTx) end() error { return t.err }
