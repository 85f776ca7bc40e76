package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/services/audit/internal/domain"
	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

// verifiedQueries are the statements of the verification state.
type verifiedQueries struct {
	get, getForUpdate, ensure, put string
	getWithSize                    string
	checkpointsAfter               string
	tenants                        string
}

const verifiedCols = `size, root, last_hash, last_ts, tree_range, verified_at, failed_seq, failed_reason, failed_at,
	full_at, full_valid, full_first_bad, full_reason, verifier_keys`

func newVerifiedQueries(r func(string) string) verifiedQueries {
	get := "SELECT " + verifiedCols + " FROM audit_verified WHERE tenant_id = ?"
	return verifiedQueries{
		get: r(get),
		// A read's first statement also reads the head's size and whether
		// a retention row exists, which it asks next: two round trips
		// fewer for the common read on PostgreSQL.
		getWithSize: r("SELECT " + verifiedCols + `, COALESCE((SELECT size FROM audit_heads WHERE tenant_id = ?), 0),
			EXISTS (SELECT 1 FROM audit_retention WHERE tenant_id = ?) FROM audit_verified WHERE tenant_id = ?`),
		getForUpdate: r(get + " FOR UPDATE"),
		// The row exists before it is locked, so two writers of a new
		// tenant's state queue on it rather than overwrite each other.
		ensure: r(`INSERT INTO audit_verified (tenant_id, size, root, last_hash, last_ts, tree_range, verified_at)
			VALUES (?, 0, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id) DO NOTHING`),
		put: r(`UPDATE audit_verified SET size = ?, root = ?, last_hash = ?, last_ts = ?, tree_range = ?, verified_at = ?,
			failed_seq = ?, failed_reason = ?, failed_at = ?, full_at = ?, full_valid = ?, full_first_bad = ?, full_reason = ?,
			verifier_keys = ? WHERE tenant_id = ?`),
		checkpointsAfter: r("SELECT size, note FROM audit_checkpoints WHERE tenant_id = ? AND size > ? ORDER BY size"),
		tenants:          r("SELECT tenant_id FROM audit_heads WHERE tenant_id > ? ORDER BY tenant_id LIMIT ?"),
	}
}

// epoch stands for "never" in the NOT NULL time columns.
var epoch = time.Unix(0, 0).UTC()

// snapshot is a domain.LogSnapshot inside one read transaction.
type snapshot struct {
	s   *Store
	ctx context.Context
	// One of: a pipelined snapshot transaction (PostgreSQL), whose first
	// read carries BEGIN and the tenant's scope; a database/sql one
	// (SQLite, where a statement costs no round trip).
	pipe   *pstore.PipeTx
	tx     *sql.Tx
	tenant string
	// mu serializes the statements of Scan's pages, Fetch and Nodes: a
	// verification scans in one goroutine and reads nodes in another, and
	// a transaction's statements go one batch at a time.
	mu sync.Mutex
	// size is the head's size once read, and noRetention that the tenant
	// has no retention row: the snapshot does not change.
	size        uint64
	sized       bool
	noRetention bool
}

// ReadSnapshot implements domain.Store.
func (s *Store) ReadSnapshot(ctx context.Context, tenant string, fn func(domain.LogSnapshot) error) error {
	var err error
	if s.db.Dialect == pstore.Postgres {
		err = s.db.InTenantPipeSnapshot(ctx, tenant, func(p *pstore.PipeTx) error {
			return fn(&snapshot{s: s, ctx: ctx, pipe: p, tenant: tenant})
		})
	} else {
		err = s.db.InTenantSnapshotTx(ctx, tenant, func(tx *sql.Tx) error {
			return fn(&snapshot{s: s, ctx: ctx, tx: tx, tenant: tenant})
		})
	}
	if err != nil {
		return fmt.Errorf("read snapshot: %w", err)
	}
	return nil
}

// query runs q in the snapshot and hands its rows to scan: a round trip
// of its own on PostgreSQL (the first also begins the transaction).
func (v *snapshot) query(q string, args []any, scan func(pstore.Rows) error) error {
	if v.pipe == nil {
		rows, err := v.s.stmts.Query(v.ctx, v.tx, q, args...)
		return pstore.ReadRows(rows, err, scan)
	}
	v.pipe.Queue(q, args...).Query(func(rows pgx.Rows) error { return scan(rows) })
	return v.pipe.Flush()
}

// queryRow is query of one row, scanned into dest; sql.ErrNoRows when
// there is none (not an error of the pipeline, which would make pgx
// prepare its statements again).
func (v *snapshot) queryRow(q string, args []any, dest ...any) error {
	found := false
	err := v.query(q, args, func(rows pstore.Rows) error {
		if !rows.Next() {
			return nil
		}
		found = true
		return rows.Scan(dest...)
	})
	if err == nil && !found {
		return sql.ErrNoRows
	}
	return err
}

func (v *snapshot) Verified() (domain.VerifiedState, bool, error) {
	var size int64
	var retained bool
	row := func(dest ...any) error {
		return v.queryRow(v.s.vq.getWithSize, []any{v.tenant, v.tenant, v.tenant}, dest...)
	}
	st, ok, err := v.s.verified(row, &size, &retained)
	if ok {
		v.size, v.sized, v.noRetention = uint64(size), true, !retained
	}
	return st, ok, err
}

func (v *snapshot) Size() (uint64, error) {
	if v.sized {
		return v.size, nil
	}
	var n int64
	if err := v.queryRow(v.s.q.size, []any{v.tenant}, &n); err != nil {
		return 0, err
	}
	v.size, v.sized = uint64(n), true
	return v.size, nil
}

func (v *snapshot) Checkpoints(after uint64) ([]domain.StoredCheckpoint, error) {
	var out []domain.StoredCheckpoint
	err := v.query(v.s.vq.checkpointsAfter, []any{v.tenant, int64(after)}, func(rows pstore.Rows) error {
		for rows.Next() {
			var c domain.StoredCheckpoint
			var size int64
			if err := rows.Scan(&size, &c.Note); err != nil {
				return err
			}
			c.Size = uint64(size)
			out = append(out, c)
		}
		return nil
	})
	return out, err
}

// scanPage is how many entries Scan reads per statement.
const scanPage = 4096

// Scan reads the entries a page at a time (keyset on seq, in the one
// snapshot of the transaction) and calls fn between the statements, so
// fn, or another goroutine, may read the snapshot meanwhile (Nodes).
func (v *snapshot) Scan(after uint64, fn func(ledger.Entry) error) error {
	page := make([]ledger.Entry, 0, scanPage)
	for {
		page = page[:0]
		v.mu.Lock()
		var err error
		if v.pipe != nil {
			err = v.scanPgx(after, scanPage, func(e ledger.Entry) { page = append(page, e) })
		} else {
			err = v.entries(after, scanPage, 0, func(e ledger.Entry) error { page = append(page, e); return nil })
		}
		v.mu.Unlock()
		if err != nil {
			return err
		}
		for _, e := range page {
			if err := fn(e); err != nil {
				return err
			}
		}
		if len(page) < scanPage {
			return nil
		}
		after = page[len(page)-1].Seq
	}
}

func (v *snapshot) Entries(afterSeq uint64, limit int) ([]ledger.Entry, error) {
	var out []ledger.Entry
	err := v.entries(afterSeq, v.s.entriesLimit(limit), limit, func(e ledger.Entry) error { out = append(out, e); return nil })
	return out, err
}

// entries reads q.entries after afterSeq, bound to limit, and hands fn up
// to max of them (every one when max is 0).
func (v *snapshot) entries(afterSeq uint64, limit, max int, fn func(ledger.Entry) error) error {
	return v.query(v.s.q.entries, []any{v.tenant, int64(afterSeq), limit}, func(rows pstore.Rows) error {
		return scanEntries(rows, v.tenant, max, fn)
	})
}

func (v *snapshot) Fetch(ids []ledger.NodeID) ([][]byte, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.s.nodes(v.query, v.s.q.nodesPG, v.tenant, ids)
}

// verified reads tenant's state with row, the scan of a query (get or
// getForUpdate; getWithSize, whose extra columns are given).
func (s *Store) verified(row func(dest ...any) error, extra ...any) (domain.VerifiedState, bool, error) {
	var st domain.VerifiedState
	var size, failedSeq, fullBad int64
	var packed []byte
	var failedAt, fullAt sql.NullTime
	var keys string
	err := row(append([]any{&size, &st.Root, &st.LastHash, &st.LastTS, &packed, &st.At,
		&failedSeq, &st.FailedReason, &failedAt, &fullAt, &st.FullValid, &fullBad, &st.FullReason, &keys}, extra...)...)
	if err == sql.ErrNoRows {
		return domain.VerifiedState{}, false, nil
	}
	if err != nil {
		return st, false, fmt.Errorf("verified state: %w", err)
	}
	st.Size, st.FailedSeq, st.FullFirstBad = uint64(size), uint64(failedSeq), uint64(fullBad)
	st.LastTS, st.At = st.LastTS.UTC(), st.At.UTC()
	if keys != "" {
		st.Keys = strings.Split(keys, "\n")
	}
	if st.At.Equal(epoch) {
		st.At = time.Time{}
	}
	if failedAt.Valid {
		st.FailedAt = failedAt.Time.UTC()
	}
	if fullAt.Valid {
		st.FullAt = fullAt.Time.UTC()
	}
	if len(packed) != len(ledger.RangeIDs(st.Size))*sha256.Size {
		return st, false, fmt.Errorf("verified state: tree range of %d bytes for size %d", len(packed), st.Size)
	}
	for i := 0; i < len(packed); i += sha256.Size {
		st.Range = append(st.Range, packed[i:i+sha256.Size])
	}
	return st, true, nil
}

// UpdateVerified implements domain.Store.
func (s *Store) UpdateVerified(ctx context.Context, tenant string, fn func(domain.VerifiedState, bool) (domain.VerifiedState, bool)) error {
	get := s.vq.get
	if s.db.Dialect == pstore.Postgres {
		get = s.vq.getForUpdate
	}
	// On PostgreSQL two round trips: the row made sure of, locked and
	// read with BEGIN; the new state written with COMMIT.
	err := s.inWriteTx(ctx, func(t writeTx) error {
		t.setTenant(tenant)
		var created int64
		t.exec(s.vq.ensure, []any{tenant, ledger.EmptyRoot(), ledger.Genesis, epoch, []byte{}, epoch}, &created)
		cur, ok, err := s.verified(func(dest ...any) error {
			t.queryRow(get, []any{tenant}, dest...)
			return t.flush()
		})
		if err != nil {
			return err
		}
		next, write := fn(cur, ok && created == 0)
		if !write {
			return nil
		}
		at := next.At
		if at.IsZero() {
			at = epoch
		}
		t.exec(s.vq.put, []any{int64(next.Size), next.Root, next.LastHash, next.LastTS,
			bytes.Join(next.Range, nil), at, int64(next.FailedSeq), next.FailedReason, nullTime(next.FailedAt),
			nullTime(next.FullAt), next.FullValid, int64(next.FullFirstBad), next.FullReason,
			strings.Join(next.Keys, "\n"), tenant}, nil)
		return t.end()
	})
	if err != nil {
		return fmt.Errorf("update verified state: %w", err)
	}
	return nil
}

func nullTime(t time.Time) sql.NullTime { return sql.NullTime{Time: t, Valid: !t.IsZero()} }

// LogTenants implements domain.Store.
func (s *Store) LogTenants(ctx context.Context, after string, limit int) ([]string, error) {
	var out []string
	err := s.db.InAllTenantsReadTx(ctx, func(tx *sql.Tx) (err error) {
		rows, err := s.stmts.Query(ctx, tx, s.vq.tenants, after, limit)
		out, err = pstore.Strings(rows, err)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("log tenants: %w", err)
	}
	return out, nil
}
