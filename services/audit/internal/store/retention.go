package store

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/services/audit/internal/domain"
	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

// retentionQueries are the statements of retention.
type retentionQueries struct {
	get, set, recordCut, keepCheckpoint, checkpointAt, lastBefore string
	keepNode                                                      string
	cutPG, eraseCutPG, deleteEntries, deleteCheckpoints           string
}

func newRetentionQueries(r func(string) string) retentionQueries {
	return retentionQueries{
		get: r(`SELECT max_age_s, cut_size, cut_last_hash, cut_last_ts, cut_range, cut_note, cut_at
			FROM audit_retention WHERE tenant_id = ?`),
		set: r(`INSERT INTO audit_retention (tenant_id, max_age_s) VALUES (?, ?)
			ON CONFLICT (tenant_id) DO UPDATE SET max_age_s = excluded.max_age_s`),
		recordCut: r(`UPDATE audit_retention SET cut_size = ?, cut_last_hash = ?, cut_last_ts = ?, cut_range = ?,
			cut_note = ?, cut_at = ? WHERE tenant_id = ? AND cut_size = ?`),
		keepCheckpoint: r(`INSERT INTO audit_checkpoints (tenant_id, size, note) VALUES (?, ?, ?)
			ON CONFLICT (tenant_id, size) DO NOTHING`),
		keepNode: r(`INSERT INTO audit_nodes (tenant_id, level, idx, hash) VALUES (?, ?, ?, ?)
			ON CONFLICT (tenant_id, level, idx) DO NOTHING`),
		checkpointAt: r("SELECT note FROM audit_checkpoints WHERE tenant_id = ? AND size = ?"),
		// Timestamps never decrease along a log: the last entry older than
		// t is the first one the (tenant_id, ts, seq) index meets from t down.
		lastBefore: r(`SELECT seq FROM audit_entries WHERE tenant_id = ? AND ts < ?
			ORDER BY ts DESC, seq DESC LIMIT 1`),
		cutPG:             "SELECT audit_cut($1, $2, $3, $4)",
		eraseCutPG:        "SELECT audit_erase_cut($1, $2, $3, $4)",
		deleteEntries:     r("DELETE FROM audit_entries WHERE tenant_id = ? AND seq <= ?"),
		deleteCheckpoints: r("DELETE FROM audit_checkpoints WHERE tenant_id = ? AND size < ?"),
	}
}

// retention reads tenant's row in tx.
func (s *Store) retention(row func(dest ...any) error) (domain.Retention, error) {
	var ret domain.Retention
	var age, size int64
	var packed []byte
	var lastTS, at sql.NullTime
	err := row(&age, &size, &ret.Cut.LastHash, &lastTS, &packed,
		&ret.Cut.Checkpoint, &at)
	if err == sql.ErrNoRows {
		return domain.Retention{}, nil
	}
	if err != nil {
		return ret, fmt.Errorf("retention: %w", err)
	}
	ret.MaxAge, ret.Cut.Size = time.Duration(age)*time.Second, uint64(size)
	ret.Cut.LastTS, ret.Cut.At = lastTS.Time.UTC(), at.Time.UTC()
	if !at.Valid {
		ret.Cut.At = time.Time{}
	}
	if len(packed) != len(ledger.RangeIDs(ret.Cut.Size))*sha256.Size {
		return ret, fmt.Errorf("retention: frontier of %d bytes for a cut at %d", len(packed), ret.Cut.Size)
	}
	for i := 0; i < len(packed); i += sha256.Size {
		ret.Cut.Range = append(ret.Cut.Range, packed[i:i+sha256.Size])
	}
	return ret, nil
}

// Retention implements domain.Store.
func (s *Store) Retention(ctx context.Context, tenant string) (domain.Retention, error) {
	var ret domain.Retention
	err := s.db.InTenantReadTx(ctx, tenant, func(tx *sql.Tx) (err error) {
		ret, err = s.retention(func(dest ...any) error { return s.stmts.QueryRow(ctx, tx, s.rq.get, tenant).Scan(dest...) })
		return err
	})
	return ret, err
}

// SetRetention implements domain.Store.
func (s *Store) SetRetention(ctx context.Context, tenant string, maxAge time.Duration) error {
	err := s.db.InWriteTx(ctx, func(tx *sql.Tx) error {
		if err := s.db.SetTenant(ctx, tx, tenant); err != nil {
			return err
		}
		_, err := s.stmts.Exec(ctx, tx, s.rq.set, tenant, int64(maxAge/time.Second))
		return err
	})
	if err != nil {
		return fmt.Errorf("set retention: %w", err)
	}
	return nil
}

// ApplyCut implements domain.Store. On PostgreSQL the deletion is the
// audit_cut function's (the application role may not delete from the log
// itself); on SQLite the same statements run here.
func (s *Store) ApplyCut(ctx context.Context, tenant string, from uint64, cut domain.Cut) (bool, error) {
	applied := false
	err := s.db.InWriteTx(ctx, func(tx *sql.Tx) error {
		if err := s.db.SetTenant(ctx, tx, tenant); err != nil {
			return err
		}
		// A checkpoint of the cut's size may exist (an append ended there):
		// it is the one kept, and the one the cut names.
		if _, err := s.stmts.Exec(ctx, tx, s.rq.keepCheckpoint, tenant, int64(cut.Size), cut.Checkpoint); err != nil {
			return err
		}
		var note string
		if err := s.stmts.QueryRow(ctx, tx, s.rq.checkpointAt, tenant, int64(cut.Size)).Scan(&note); err != nil {
			return err
		}
		res, err := s.stmts.Exec(ctx, tx, s.rq.recordCut, int64(cut.Size), cut.LastHash, cut.LastTS,
			bytes.Join(cut.Range, nil), note, cut.At, tenant, int64(from))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return cmp.Or(err, errStaleCut) // rolls back the checkpoint written above
		}
		keep := ledger.RangeIDs(cut.Size)
		if len(cut.Range) != len(keep) {
			return fmt.Errorf("a frontier of %d hashes for a cut at %d", len(cut.Range), cut.Size)
		}
		// The frontier's low nodes are derived from the entries this cut
		// deletes: from now on they are stored (a no-op where they are).
		for i, id := range keep {
			if !id.Stored() {
				if _, err := s.stmts.Exec(ctx, tx, s.rq.keepNode, tenant, int64(id.Level), int64(id.Index), cut.Range[i]); err != nil {
					return err
				}
			}
		}
		if s.db.Dialect == pstore.Postgres {
			levels, idxs := make([]int64, len(keep)), make([]int64, len(keep))
			for i, id := range keep {
				levels[i], idxs[i] = int64(id.Level), int64(id.Index)
			}
			fn := s.rq.cutPG
			if cut.Erasure {
				fn = s.rq.eraseCutPG
			}
			if _, err := tx.ExecContext(ctx, fn, tenant, int64(cut.Size), levels, idxs); err != nil {
				return err
			}
		} else if err := s.cutSQLite(ctx, tx, tenant, cut.Size, keep); err != nil {
			return err
		}
		applied = true
		return nil
	})
	if errors.Is(err, errStaleCut) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("apply retention cut at %d: %w", cut.Size, err)
	}
	return applied, nil
}

// errStaleCut ends an ApplyCut whose tenant's cut is no longer at from
// (another replica cut first, or there is no retention): nothing it wrote
// may stay.
var errStaleCut = errors.New("the retention cut moved")

// cutSQLite deletes what a cut at size covers, keeping the frontier keep.
func (s *Store) cutSQLite(ctx context.Context, tx *sql.Tx, tenant string, size uint64, keep []ledger.NodeID) error {
	if _, err := s.stmts.Exec(ctx, tx, s.rq.deleteEntries, tenant, int64(size)); err != nil {
		return err
	}
	if _, err := s.stmts.Exec(ctx, tx, s.rq.deleteCheckpoints, tenant, int64(size)); err != nil {
		return err
	}
	args := []any{tenant, int64(size)}
	pairs := make([]string, len(keep))
	for i, id := range keep {
		pairs[i] = "(?, ?)"
		args = append(args, int64(id.Level), int64(id.Index))
	}
	// Nodes whose subtree lies inside the prefix, but the frontier's.
	_, err := tx.ExecContext(ctx, `DELETE FROM audit_nodes WHERE tenant_id = ? AND ((idx + 1) << level) <= ?
		AND (level, idx) NOT IN (VALUES `+strings.Join(pairs, ", ")+")", args...)
	return err
}

func (v *snapshot) Retention() (domain.Retention, error) {
	if v.noRetention {
		return domain.Retention{}, nil
	}
	return v.s.retention(func(dest ...any) error { return v.queryRow(v.s.rq.get, []any{v.tenant}, dest...) })
}

func (v *snapshot) LastBefore(t time.Time) (uint64, error) {
	var seq int64
	err := v.queryRow(v.s.rq.lastBefore, []any{v.tenant, t}, &seq)
	if err == sql.ErrNoRows {
		return 0, nil
	}
	return uint64(seq), err
}
