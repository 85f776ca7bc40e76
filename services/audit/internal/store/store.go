// Package store implements domain.Store on SQLite and PostgreSQL with one
// set of queries. Every query names its tenant; on PostgreSQL, row-level
// security checks the same again, and the application role may only insert
// entries, nodes and checkpoints (the head row is the one thing it updates).
//
// Appends lock the tenant's head row first (SELECT … FOR UPDATE on
// PostgreSQL; SQLite's single writer serializes anyway), so concurrent
// appenders, on one replica or several, extend one chain and never fork it;
// the primary key (tenant_id, seq) would refuse a fork regardless.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"slices"
	"time"

	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/services/audit/internal/domain"
	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

//go:embed migrations
var migrationFiles embed.FS

// Migrations is the audit schema, for (*pstore.DB).Migrate.
var Migrations = pstore.EmbeddedMigrations(migrationFiles, "audit_schema_version")

// Store is the SQL domain.Store.
type Store struct {
	db    *pstore.DB
	stmts *pstore.Stmts
	q     queries
}

var _ domain.Store = (*Store)(nil)

type queries struct {
	claimHead, lockHead, updateHead         string
	insertEntry, insertNode, insertCheckpnt string
	node, entries, scan, size, checkpoints  string
	latestCheckpoint                        string
}

// New returns a Store on db, which must be migrated with Migrations.
func New(db *pstore.DB) *Store {
	forUpdate := ""
	if db.Dialect == pstore.Postgres {
		forUpdate = " FOR UPDATE"
	}
	r := db.Rebind
	return &Store{db: db, stmts: pstore.NewStmts(db), q: queries{
		claimHead: r(`INSERT INTO audit_heads (tenant_id, size, last_hash, last_ts) VALUES (?, 0, ?, ?)
			ON CONFLICT (tenant_id) DO NOTHING`),
		lockHead:   r("SELECT size, last_hash, last_ts FROM audit_heads WHERE tenant_id = ?" + forUpdate),
		updateHead: r("UPDATE audit_heads SET size = ?, last_hash = ?, last_ts = ? WHERE tenant_id = ?"),
		insertEntry: r(`INSERT INTO audit_entries (tenant_id, seq, ts, event_type, user_name, action, resource,
			details, severity, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		insertNode:     r("INSERT INTO audit_nodes (tenant_id, level, idx, hash) VALUES (?, ?, ?, ?)"),
		insertCheckpnt: r("INSERT INTO audit_checkpoints (tenant_id, size, note) VALUES (?, ?, ?)"),
		node:           r("SELECT hash FROM audit_nodes WHERE tenant_id = ? AND level = ? AND idx = ?"),
		entries: r(`SELECT seq, ts, event_type, user_name, action, resource, details, severity, prev_hash, hash
			FROM audit_entries WHERE tenant_id = ? AND seq > ? ORDER BY seq LIMIT ?`),
		scan: r(`SELECT seq, ts, event_type, user_name, action, resource, details, severity, prev_hash, hash
			FROM audit_entries WHERE tenant_id = ? ORDER BY seq`),
		size:             r("SELECT COUNT(*) FROM audit_entries WHERE tenant_id = ?"),
		checkpoints:      r("SELECT size, note FROM audit_checkpoints WHERE tenant_id = ? ORDER BY size"),
		latestCheckpoint: r("SELECT size, note FROM audit_checkpoints WHERE tenant_id = ? ORDER BY size DESC LIMIT 1"),
	}}
}

// Append implements domain.Store: one transaction for every tenant of the
// call, taken in tenant order so concurrent calls lock heads in the same
// order and cannot deadlock.
func (s *Store) Append(ctx context.Context, tenants []string, build domain.BuildFunc) error {
	tenants = slices.Sorted(slices.Values(tenants))
	err := s.db.InWriteTx(ctx, func(tx *sql.Tx) error {
		for i, tenant := range tenants {
			if i > 0 && tenant == tenants[i-1] {
				continue
			}
			if err := s.appendTenant(ctx, tx, tenant, build); err != nil {
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

func (s *Store) appendTenant(ctx context.Context, tx *sql.Tx, tenant string, build domain.BuildFunc) error {
	if err := s.db.SetTenant(ctx, tx, tenant); err != nil {
		return err
	}
	if _, err := s.stmts.Exec(ctx, tx, s.q.claimHead, tenant, ledger.Genesis, time.Unix(0, 0).UTC()); err != nil {
		return err
	}
	var h domain.Head
	var size int64
	if err := s.stmts.QueryRow(ctx, tx, s.q.lockHead, tenant).Scan(&size, &h.LastHash, &h.LastTS); err != nil {
		return err
	}
	h.Size = uint64(size)
	h.LastTS = h.LastTS.UTC()
	var err error
	if h.Range, err = s.nodes(ctx, tx, tenant, ledger.RangeIDs(h.Size)); err != nil {
		return fmt.Errorf("tree range: %w", err)
	}
	b, err := build(tenant, h)
	if err != nil {
		return err
	}
	if len(b.Entries) == 0 {
		return nil
	}
	for _, e := range b.Entries {
		if _, err := s.stmts.Exec(ctx, tx, s.q.insertEntry, tenant, int64(e.Seq), e.TS, e.EventType, e.User, e.Action,
			e.Resource, e.Details, e.Severity, e.PrevHash, e.Hash); err != nil {
			return err
		}
	}
	for _, n := range b.Nodes {
		if _, err := s.stmts.Exec(ctx, tx, s.q.insertNode, tenant, int64(n.ID.Level), int64(n.ID.Index), n.Hash); err != nil {
			return err
		}
	}
	last := b.Entries[len(b.Entries)-1]
	if _, err := s.stmts.Exec(ctx, tx, s.q.insertCheckpnt, tenant, int64(last.Seq), string(b.Checkpoint)); err != nil {
		return err
	}
	_, err = s.stmts.Exec(ctx, tx, s.q.updateHead, int64(last.Seq), last.Hash, last.TS, tenant)
	return err
}

// Nodes implements domain.Store.
func (s *Store) Nodes(ctx context.Context, tenant string, ids []ledger.NodeID) ([][]byte, error) {
	var out [][]byte
	err := s.db.InTenantReadTx(ctx, tenant, func(tx *sql.Tx) (err error) {
		out, err = s.nodes(ctx, tx, tenant, ids)
		return err
	})
	return out, err
}

func (s *Store) nodes(ctx context.Context, tx *sql.Tx, tenant string, ids []ledger.NodeID) ([][]byte, error) {
	out := make([][]byte, len(ids))
	for i, id := range ids {
		err := s.stmts.QueryRow(ctx, tx, s.q.node, tenant, int64(id.Level), int64(id.Index)).Scan(&out[i])
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("%w: node %d/%d", domain.ErrNodeMissing, id.Level, id.Index)
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Entries implements domain.Store.
func (s *Store) Entries(ctx context.Context, tenant string, afterSeq uint64, limit int) ([]ledger.Entry, error) {
	var out []ledger.Entry
	err := s.db.InTenantReadTx(ctx, tenant, func(tx *sql.Tx) error {
		rows, err := s.stmts.Query(ctx, tx, s.q.entries, tenant, int64(afterSeq), limit)
		if err != nil {
			return err
		}
		return scanEntries(rows, tenant, func(e ledger.Entry) error { out = append(out, e); return nil })
	})
	if err != nil {
		return nil, fmt.Errorf("entries: %w", err)
	}
	return out, nil
}

// Scan implements domain.Store. One statement reads the whole log, so it
// sees one snapshot of it.
func (s *Store) Scan(ctx context.Context, tenant string, fn func(ledger.Entry) error) error {
	err := s.db.InTenantReadTx(ctx, tenant, func(tx *sql.Tx) error {
		rows, err := s.stmts.Query(ctx, tx, s.q.scan, tenant)
		if err != nil {
			return err
		}
		return scanEntries(rows, tenant, fn)
	})
	if err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	return nil
}

func scanEntries(rows *sql.Rows, tenant string, fn func(ledger.Entry) error) error {
	defer rows.Close()
	for rows.Next() {
		e := ledger.Entry{TenantID: tenant}
		var seq int64
		if err := rows.Scan(&seq, &e.TS, &e.EventType, &e.User, &e.Action, &e.Resource, &e.Details, &e.Severity,
			&e.PrevHash, &e.Hash); err != nil {
			return err
		}
		e.Seq, e.TS = uint64(seq), e.TS.UTC()
		if err := fn(e); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Size implements domain.Store.
func (s *Store) Size(ctx context.Context, tenant string) (uint64, error) {
	var n int64
	err := s.db.InTenantReadTx(ctx, tenant, func(tx *sql.Tx) error {
		return s.stmts.QueryRow(ctx, tx, s.q.size, tenant).Scan(&n)
	})
	if err != nil {
		return 0, fmt.Errorf("size: %w", err)
	}
	return uint64(n), nil
}

// Checkpoints implements domain.Store.
func (s *Store) Checkpoints(ctx context.Context, tenant string) ([]domain.StoredCheckpoint, error) {
	var out []domain.StoredCheckpoint
	err := s.db.InTenantReadTx(ctx, tenant, func(tx *sql.Tx) error {
		rows, err := s.stmts.Query(ctx, tx, s.q.checkpoints, tenant)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c domain.StoredCheckpoint
			var size int64
			if err := rows.Scan(&size, &c.Note); err != nil {
				return err
			}
			c.Size = uint64(size)
			out = append(out, c)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("checkpoints: %w", err)
	}
	return out, nil
}

// LatestCheckpoint implements domain.Store.
func (s *Store) LatestCheckpoint(ctx context.Context, tenant string) (domain.StoredCheckpoint, bool, error) {
	var c domain.StoredCheckpoint
	var size int64
	err := s.db.InTenantReadTx(ctx, tenant, func(tx *sql.Tx) error {
		return s.stmts.QueryRow(ctx, tx, s.q.latestCheckpoint, tenant).Scan(&size, &c.Note)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return c, false, nil
	}
	if err != nil {
		return c, false, fmt.Errorf("latest checkpoint: %w", err)
	}
	c.Size = uint64(size)
	return c, true, nil
}
