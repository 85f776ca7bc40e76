// Package store implements the audit service's store ports (domain.Store of
// the ledger, intake.Store, outbound.Store) on SQLite and PostgreSQL with
// one set of queries, in one struct: an append reads, in its transaction,
// the endpoints its webhook deliveries fan out to. Every query names its
// tenant; on PostgreSQL, row-level security checks the same again, and the
// application role may only insert entries, nodes and checkpoints (the
// head row is the one thing it updates).
//
// Appends lock the tenant's head row first (an upsert that updates it, on
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
	"math"
	"strings"
	"time"

	"github.com/echopilot/echopilot/platform/outbox"
	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/services/audit/internal/domain"
	"github.com/echopilot/echopilot/services/audit/internal/intake"
	"github.com/echopilot/echopilot/services/audit/internal/ledger"
	"github.com/echopilot/echopilot/services/audit/internal/listing"
	"github.com/echopilot/echopilot/services/audit/internal/outbound"
)

//go:embed migrations
var migrationFiles embed.FS

// Migrations is the audit schema, for (*pstore.DB).Migrate.
var Migrations = pstore.EmbeddedMigrations(migrationFiles, "audit_schema_version")

// Store is the SQL store of every part of the audit service.
type Store struct {
	db    *pstore.DB
	stmts *pstore.Stmts
	q     queries
	vq    verifiedQueries
	rq    retentionQueries
}

var (
	_ domain.Store   = (*Store)(nil)
	_ intake.Store   = (*Store)(nil)
	_ outbound.Store = (*Store)(nil)
)

type queries struct {
	lockHead, updateHead                    string
	insertEntry, insertNode, insertCheckpnt string
	writeBatchPG                            string
	entries, scan, size                     string
	nodesPG, treeSizePG, treeNodesPG        string
	latestCheckpoint, issuedCheckpoints     string
	claimReplay, pruneReplays               string
	insertSecret, revokeSecret, secret      string
	activeSecrets, countSecrets             string
	insertEndpoint, endpoints, endpoint     string
	countEndpoints                          string
	activeEndpoint, changeEndpoint          string
	lastDelivered, firstAttemptAfter        string
	deleteEndpoint, nextAttempt, addAttempt string
	attempts, secrets, endpointPage         [2]string
}

// New returns a Store on db, which must be migrated with Migrations.
func New(db *pstore.DB) *Store {
	r := db.Rebind
	return &Store{db: db, stmts: pstore.NewStmts(db), vq: newVerifiedQueries(r), rq: newRetentionQueries(r), q: queries{
		// Creates the head on first use and locks it (an upsert's update
		// takes the row lock on PostgreSQL; SQLite's single writer
		// serializes anyway), in one statement.
		lockHead: r(`INSERT INTO audit_heads (tenant_id, size, last_hash, last_ts) VALUES (?, 0, ?, ?)
			ON CONFLICT (tenant_id) DO UPDATE SET size = audit_heads.size
			RETURNING size, last_hash, last_ts, tree_range`),
		updateHead: r("UPDATE audit_heads SET size = ?, last_hash = ?, last_ts = ?, tree_range = ? WHERE tenant_id = ?"),
		insertEntry: r(`INSERT INTO audit_entries (tenant_id, seq, ts, event_type, user_name, action, resource,
			details, severity, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		// A batch's entries, nodes, checkpoint and head in one statement:
		// one round trip instead of four (no constraint or trigger relates
		// the tables, so the order within the statement does not matter).
		writeBatchPG: `WITH e AS (
				INSERT INTO audit_entries (tenant_id, seq, ts, event_type, user_name, action, resource,
					details, severity, prev_hash, hash)
				SELECT $1, * FROM unnest($2::bigint[], $3::timestamptz[], $4::text[], $5::text[], $6::text[],
					$7::text[], $8::text[], $9::text[], $10::text[], $11::text[])),
			n AS (INSERT INTO audit_nodes (tenant_id, level, idx, hash)
				SELECT $1, * FROM unnest($12::smallint[], $13::bigint[], $14::bytea[])),
			c AS (INSERT INTO audit_checkpoints (tenant_id, size, note) VALUES ($1, $15, $16))
			UPDATE audit_heads SET size = $15, last_hash = $17, last_ts = $18, tree_range = $19 WHERE tenant_id = $1`,
		insertNode:     r("INSERT INTO audit_nodes (tenant_id, level, idx, hash) VALUES (?, ?, ?, ?)"),
		insertCheckpnt: r("INSERT INTO audit_checkpoints (tenant_id, size, note) VALUES (?, ?, ?)"),
		entries: r(`SELECT seq, ts, event_type, user_name, action, resource, details, severity, prev_hash, hash
			FROM audit_entries WHERE tenant_id = ? AND seq > ? ORDER BY seq LIMIT ?`),
		scan: r(`SELECT seq, ts, event_type, user_name, action, resource, details, severity, prev_hash, hash
			FROM audit_entries WHERE tenant_id = ? ORDER BY seq`),
		// The head holds the size: counting a million entries is not free.
		//
		// Each id is one primary-key lookup: LATERAL … LIMIT 1 keeps the
		// planner from turning the lookups into a join. Written as
		// `(level, idx) IN (unnest …)`, with the few rows a young or
		// fast-growing table's statistics show, it joined the ids against
		// every node of the tenant (10 ms at 7,500 nodes, growing with the
		// log, against 0.1 ms for the lookups). PostgreSQL only: $1 is the
		// tenant, $2 and $3 the ids' levels and indexes.
		//
		// The same statement reads the entries' hashes of the seq ranges
		// $4 to $5 (from which the nodes below ledger.StoredLevel are
		// derived) as rows of level -1: one round trip for a proof.
		nodesPG: `SELECT u.level, u.idx, n.hash, NULL::text FROM unnest(CAST($2 AS integer[]), CAST($3 AS bigint[])) AS u(level, idx)
			CROSS JOIN LATERAL (SELECT hash FROM audit_nodes WHERE tenant_id = $1 AND level = u.level AND idx = u.idx LIMIT 1) n
			UNION ALL
			SELECT -1, e.seq, NULL::bytea, e.hash FROM unnest(CAST($4 AS bigint[]), CAST($5 AS bigint[])) AS r(lo, hi)
			CROSS JOIN LATERAL (SELECT seq, hash FROM audit_entries WHERE tenant_id = $1 AND seq BETWEEN r.lo AND r.hi OFFSET 0) e`,
		treeSizePG:       "SELECT audit_tree_size($1)",
		treeNodesPG:      "SELECT * FROM audit_tree_hashes($1, $2, $3, $4, $5)",
		size:             r("SELECT COALESCE((SELECT size FROM audit_heads WHERE tenant_id = ?), 0)"),
		latestCheckpoint: r("SELECT size, note FROM audit_checkpoints WHERE tenant_id = ? ORDER BY size DESC LIMIT 1"),
		// A checkpoint's time is its last entry's: the batch's, set by
		// the append that wrote both (no column of its own to keep); the
		// checkpoint at a retention cut, whose entry is gone, has the cut's.
		issuedCheckpoints: r(`SELECT c.size, c.note, e.ts, r.cut_at FROM audit_checkpoints c
			LEFT JOIN audit_entries e ON e.tenant_id = c.tenant_id AND e.seq = c.size
			LEFT JOIN audit_retention r ON r.tenant_id = c.tenant_id AND r.cut_size = c.size
			WHERE c.tenant_id = ? AND c.size >= ? ORDER BY c.size LIMIT ?`),
		claimReplay: r(`INSERT INTO claimed_keys (tenant_id, replay_key, keep_until) VALUES (?, ?, ?)
			ON CONFLICT (tenant_id, replay_key) DO NOTHING`),
		pruneReplays: r("DELETE FROM claimed_keys WHERE tenant_id = ? AND keep_until < ?"),
		insertSecret: r("INSERT INTO webhook_secrets (tenant_id, secret_id, value, created_at) VALUES (?, ?, ?, ?)"),
		// Pages in (created_at, secret_id) order: the first, then after a row.
		secrets: [2]string{
			r(`SELECT secret_id, value, created_at, revoked_at FROM webhook_secrets
				WHERE tenant_id = ? ORDER BY created_at, secret_id LIMIT ?`),
			r(`SELECT secret_id, value, created_at, revoked_at FROM webhook_secrets
				WHERE tenant_id = ? AND (created_at > ? OR (created_at = ? AND secret_id > ?))
				ORDER BY created_at, secret_id LIMIT ?`),
		},
		activeSecrets: r(`SELECT secret_id, value, created_at, revoked_at FROM webhook_secrets
			WHERE tenant_id = ? AND revoked_at IS NULL ORDER BY created_at DESC, secret_id DESC LIMIT ?`),
		countSecrets: r("SELECT COUNT(*) FROM webhook_secrets WHERE tenant_id = ? AND revoked_at IS NULL"),
		secret: r(`SELECT secret_id, value, created_at, revoked_at FROM webhook_secrets
			WHERE tenant_id = ? AND secret_id = ?`),
		revokeSecret: r(`UPDATE webhook_secrets SET revoked_at = ? WHERE tenant_id = ? AND secret_id = ? AND revoked_at IS NULL`),
		insertEndpoint: r(`INSERT INTO webhook_endpoints (tenant_id, endpoint_id, url, secret, created_at, event_types, min_severity)
			VALUES (?, ?, ?, ?, ?, ?, ?)`),
		endpoints: r(`SELECT ` + endpointCols + ` FROM webhook_endpoints
			WHERE tenant_id = ? AND deleted_at IS NULL AND disabled_at IS NULL ORDER BY created_at, endpoint_id`),
		endpointPage: [2]string{
			r(`SELECT ` + endpointCols + ` FROM webhook_endpoints
				WHERE tenant_id = ? AND deleted_at IS NULL ORDER BY created_at, endpoint_id LIMIT ?`),
			r(`SELECT ` + endpointCols + ` FROM webhook_endpoints
				WHERE tenant_id = ? AND deleted_at IS NULL AND (created_at > ? OR (created_at = ? AND endpoint_id > ?))
				ORDER BY created_at, endpoint_id LIMIT ?`),
		},
		countEndpoints: r("SELECT COUNT(*) FROM webhook_endpoints WHERE tenant_id = ? AND deleted_at IS NULL"),
		endpoint: r(`SELECT ` + endpointCols + ` FROM webhook_endpoints
			WHERE tenant_id = ? AND endpoint_id = ?`),
		activeEndpoint: r(`SELECT ` + endpointCols + ` FROM webhook_endpoints
			WHERE tenant_id = ? AND endpoint_id = ? AND deleted_at IS NULL`),
		changeEndpoint: r(`UPDATE webhook_endpoints SET disabled_at = ?, disabled_reason = ?, event_types = ?, min_severity = ?,
			secret = ?, previous_secret = ?, previous_secret_until = ? WHERE tenant_id = ? AND endpoint_id = ?`),
		lastDelivered: r(`SELECT at FROM delivery_attempts WHERE tenant_id = ? AND endpoint_id = ? AND outcome = 'delivered'
			ORDER BY at DESC LIMIT 1`),
		firstAttemptAfter: r(`SELECT at FROM delivery_attempts WHERE tenant_id = ? AND endpoint_id = ? AND at > ?
			ORDER BY at LIMIT 1`),
		deleteEndpoint: r(`UPDATE webhook_endpoints SET deleted_at = ? WHERE tenant_id = ? AND endpoint_id = ? AND deleted_at IS NULL`),
		nextAttempt:    r(`SELECT COALESCE(MAX(attempt), 0) + 1 FROM delivery_attempts WHERE tenant_id = ? AND delivery_id = ?`),
		addAttempt: r(`INSERT INTO delivery_attempts (tenant_id, delivery_id, attempt, endpoint_id, seq, at, outcome,
			status_code, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		attempts: [2]string{
			r(`SELECT delivery_id, attempt, endpoint_id, seq, at, outcome, status_code, error FROM delivery_attempts
				WHERE tenant_id = ? ORDER BY at DESC, delivery_id DESC, attempt DESC LIMIT ? OFFSET ?`),
			r(`SELECT delivery_id, attempt, endpoint_id, seq, at, outcome, status_code, error FROM delivery_attempts
				WHERE tenant_id = ? AND endpoint_id = ? ORDER BY at DESC, delivery_id DESC, attempt DESC LIMIT ? OFFSET ?`),
		},
	}}
}

// insertCapped runs insert in a write transaction of tenant unless count
// finds limit rows or more, and reports whether it ran. Counting and
// inserting are serialized per tenant and kind, across replicas too:
// SQLite has one writer at a time; on PostgreSQL the transaction first
// takes an advisory lock on (kind, tenant), held until it ends (two
// tenants whose names hash alike merely wait for each other).
func (s *Store) insertCapped(ctx context.Context, tenant, kind, count string, limit int, insert func(*sql.Tx) error) (bool, error) {
	added := false
	err := s.db.InWriteTx(ctx, func(tx *sql.Tx) error {
		if err := s.db.SetTenant(ctx, tx, tenant); err != nil {
			return err
		}
		if s.db.Dialect == pstore.Postgres {
			if _, err := s.stmts.Exec(ctx, tx, "SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))", "audit."+kind, tenant); err != nil {
				return err
			}
		}
		var n int
		if err := s.stmts.QueryRow(ctx, tx, count, tenant).Scan(&n); err != nil {
			return err
		}
		if n >= limit {
			return nil
		}
		added = true
		return insert(tx)
	})
	// The caller wraps: this is its AddSecret or AddEndpoint.
	return added && err == nil, err
}

// AddSecret implements intake.Store.
func (s *Store) AddSecret(ctx context.Context, tenant string, sec intake.Secret, limit int) (bool, error) {
	return s.insertCapped(ctx, tenant, "webhook_secrets", s.q.countSecrets, limit, func(tx *sql.Tx) error {
		_, err := s.stmts.Exec(ctx, tx, s.q.insertSecret, tenant, sec.ID, sec.Value, sec.Created)
		return err
	})
}

// Secrets implements intake.Store.
func (s *Store) Secrets(ctx context.Context, tenant string, after listing.Cursor, limit int) ([]intake.Secret, error) {
	q, args := s.q.secrets[0], []any{tenant, limit}
	if !after.IsZero() {
		q, args = s.q.secrets[1], []any{tenant, after.Created, after.Created, after.ID, limit}
	}
	return s.querySecrets(ctx, tenant, q, args...)
}

// ActiveSecrets implements intake.Store.
func (s *Store) ActiveSecrets(ctx context.Context, tenant string, limit int) ([]intake.Secret, error) {
	return s.querySecrets(ctx, tenant, s.q.activeSecrets, tenant, limit)
}

func (s *Store) querySecrets(ctx context.Context, tenant, q string, args ...any) ([]intake.Secret, error) {
	var out []intake.Secret
	err := s.db.InTenantReadTx(ctx, tenant, func(tx *sql.Tx) (err error) {
		rows, err := s.stmts.Query(ctx, tx, q, args...)
		out, err = pstore.All(rows, err, func(r *sql.Rows) (intake.Secret, error) { return scanSecret(r) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	return out, nil
}

func scanSecret(row interface{ Scan(...any) error }) (intake.Secret, error) {
	var sec intake.Secret
	var revoked sql.NullTime
	if err := row.Scan(&sec.ID, &sec.Value, &sec.Created, &revoked); err != nil {
		return sec, err
	}
	sec.Created = sec.Created.UTC()
	if revoked.Valid {
		sec.Revoked = revoked.Time.UTC()
	}
	return sec, nil
}

// RevokeSecret implements intake.Store.
func (s *Store) RevokeSecret(ctx context.Context, tenant, id string, at time.Time) (intake.Secret, bool, error) {
	var sec intake.Secret
	revoked := false
	err := s.db.InTenantTx(ctx, tenant, func(tx *sql.Tx) error {
		res, err := s.stmts.Exec(ctx, tx, s.q.revokeSecret, at, tenant, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return err
		}
		revoked = true
		sec, err = scanSecret(s.stmts.QueryRow(ctx, tx, s.q.secret, tenant, id))
		return err
	})
	// The caller wraps, as for the other writes of secrets and endpoints.
	return sec, revoked && err == nil, err
}

// ReadTree implements domain.Store. On PostgreSQL the size and each fetch
// are one statement each, through functions that set the tenant scope
// themselves (migration 00005): no transaction is needed, since nodes are
// immutable and commit with the size that announces them.
func (s *Store) ReadTree(ctx context.Context, tenant string, fn func(size uint64, fetch ledger.Fetch) error) error {
	if s.db.Dialect == pstore.Postgres {
		if tenant == "" {
			return pstore.ErrNoTenant
		}
		var size int64
		if err := s.db.QueryRowContext(ctx, s.q.treeSizePG, tenant).Scan(&size); err != nil {
			return err
		}
		query := sqlRead(func(q string, args ...any) (*sql.Rows, error) { return s.db.QueryContext(ctx, q, args...) })
		return fn(uint64(size), func(ids []ledger.NodeID) ([][]byte, error) {
			return s.nodes(query, s.q.treeNodesPG, tenant, ids)
		})
	}
	return s.db.InTenantReadTx(ctx, tenant, func(tx *sql.Tx) error {
		var size int64
		if err := s.stmts.QueryRow(ctx, tx, s.q.size, tenant).Scan(&size); err != nil {
			return err
		}
		return fn(uint64(size), func(ids []ledger.NodeID) ([][]byte, error) { return s.nodesIn(ctx, tx, tenant, ids) })
	})
}

// nodesIn fetches nodes inside tx.
func (s *Store) nodesIn(ctx context.Context, tx *sql.Tx, tenant string, ids []ledger.NodeID) ([][]byte, error) {
	return s.nodes(sqlRead(func(q string, args ...any) (*sql.Rows, error) { return s.stmts.Query(ctx, tx, q, args...) }),
		s.q.nodesPG, tenant, ids)
}

// reader runs a query and hands its rows to scan: database/sql's
// (sqlRead) or a pipelined transaction's.
type reader func(query string, args []any, scan func(pstore.Rows) error) error

func sqlRead(query func(string, ...any) (*sql.Rows, error)) reader {
	return func(q string, args []any, scan func(pstore.Rows) error) error {
		rows, err := query(q, args...)
		return pstore.ReadRows(rows, err, scan)
	}
}

// Entries implements domain.Store.
func (s *Store) Entries(ctx context.Context, tenant string, afterSeq uint64, limit int) ([]ledger.Entry, error) {
	var out []ledger.Entry
	err := s.db.InTenantReadTx(ctx, tenant, func(tx *sql.Tx) error {
		rows, err := s.stmts.Query(ctx, tx, s.q.entries, tenant, int64(afterSeq), s.entriesLimit(limit))
		return pstore.ReadRows(rows, err, func(rows pstore.Rows) error {
			return scanEntries(rows, tenant, limit, func(e ledger.Entry) error { out = append(out, e); return nil })
		})
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
		return pstore.ReadRows(rows, err, func(rows pstore.Rows) error { return scanEntries(rows, tenant, 0, fn) })
	})
	if err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	return nil
}

// entriesLimit is the LIMIT bound to q.entries for a read of limit
// entries. SQLite expires a prepared statement, and compiles it again,
// whenever the value bound to its LIMIT changes, so there pages and Scan
// all bind scanPage and read only what they need (an index scan in seq
// order stops where the reading does); PostgreSQL is told the real limit.
func (s *Store) entriesLimit(limit int) int {
	if s.db.Dialect == pstore.Postgres || limit <= 0 || limit > scanPage {
		return limit
	}
	return scanPage
}

// scanEntries hands fn at most max of rows' entries (all of them when max
// is 0 or less) and closes rows.
func scanEntries(rows pstore.Rows, tenant string, max int, fn func(ledger.Entry) error) error {
	for n := 0; (max <= 0 || n < max) && rows.Next(); n++ {
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
	return nil
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

// IssuedCheckpoints implements domain.Store.
func (s *Store) IssuedCheckpoints(ctx context.Context, tenant string, fromSize uint64, limit int) ([]domain.IssuedCheckpoint, error) {
	from := int64(min(fromSize, uint64(math.MaxInt64)))
	var out []domain.IssuedCheckpoint
	err := s.db.InTenantReadTx(ctx, tenant, func(tx *sql.Tx) (err error) {
		rows, err := s.stmts.Query(ctx, tx, s.q.issuedCheckpoints, tenant, from, limit)
		out, err = pstore.All(rows, err, func(r *sql.Rows) (domain.IssuedCheckpoint, error) {
			var c domain.IssuedCheckpoint
			var size int64
			var entryTS, cutAt sql.NullTime
			err := r.Scan(&size, &c.Note, &entryTS, &cutAt)
			c.Size, c.Issued = uint64(size), entryTS.Time.UTC()
			if !entryTS.Valid {
				c.Issued = cutAt.Time.UTC()
			}
			return c, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("issued checkpoints: %w", err)
	}
	return out, nil
}

// AddEndpoint implements outbound.Store.
func (s *Store) AddEndpoint(ctx context.Context, tenant string, e outbound.Endpoint, limit int) (bool, error) {
	return s.insertCapped(ctx, tenant, "webhook_endpoints", s.q.countEndpoints, limit, func(tx *sql.Tx) error {
		_, err := s.stmts.Exec(ctx, tx, s.q.insertEndpoint, tenant, e.ID, e.URL, e.Secret, e.Created,
			strings.Join(e.EventTypes, "\n"), e.MinSeverity)
		return err
	})
}

// Endpoints implements outbound.Store.
func (s *Store) Endpoints(ctx context.Context, tenant string, after listing.Cursor, limit int) ([]outbound.Endpoint, error) {
	q, args := s.q.endpointPage[0], []any{tenant, limit}
	if !after.IsZero() {
		q, args = s.q.endpointPage[1], []any{tenant, after.Created, after.Created, after.ID, limit}
	}
	var out []outbound.Endpoint
	err := s.db.InTenantReadTx(ctx, tenant, func(tx *sql.Tx) (err error) {
		rows, err := s.stmts.Query(ctx, tx, q, args...)
		out, err = pstore.All(rows, err, func(r *sql.Rows) (outbound.Endpoint, error) { return scanEndpoint(r) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("endpoints: %w", err)
	}
	return out, nil
}

// endpointCols are the columns scanEndpoint reads.
const endpointCols = `endpoint_id, url, secret, created_at, deleted_at, disabled_at, disabled_reason,
	event_types, min_severity, previous_secret, previous_secret_until`

func scanEndpoint(row interface{ Scan(...any) error }) (outbound.Endpoint, error) {
	var e outbound.Endpoint
	var deleted, disabled, prevUntil sql.NullTime
	var types string
	if err := row.Scan(&e.ID, &e.URL, &e.Secret, &e.Created, &deleted, &disabled, &e.DisabledReason,
		&types, &e.MinSeverity, &e.PrevSecret, &prevUntil); err != nil {
		return e, err
	}
	e.Created = e.Created.UTC()
	if deleted.Valid {
		e.Deleted = deleted.Time.UTC()
	}
	if disabled.Valid {
		e.Disabled = disabled.Time.UTC()
	}
	if prevUntil.Valid {
		e.PrevUntil = prevUntil.Time.UTC()
	}
	if types != "" {
		e.EventTypes = strings.Split(types, "\n")
	}
	return e, nil
}

// Endpoint implements outbound.Store.
func (s *Store) Endpoint(ctx context.Context, tenant, id string) (outbound.Endpoint, bool, error) {
	var e outbound.Endpoint
	err := s.db.InTenantReadTx(ctx, tenant, func(tx *sql.Tx) (err error) {
		e, err = scanEndpoint(s.stmts.QueryRow(ctx, tx, s.q.endpoint, tenant, id))
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return e, false, nil
	}
	return e, err == nil, err
}

// DeleteEndpoint implements outbound.Store.
func (s *Store) DeleteEndpoint(ctx context.Context, tenant, id string, at time.Time) (bool, error) {
	var n int64
	err := s.db.InTenantTx(ctx, tenant, func(tx *sql.Tx) error {
		res, err := s.stmts.Exec(ctx, tx, s.q.deleteEndpoint, at, tenant, id)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n == 1, err
}

// ChangeEndpoint implements outbound.Store: the endpoint is read and
// locked (FOR UPDATE on PostgreSQL; SQLite has one writer), changed and
// written back in one transaction.
func (s *Store) ChangeEndpoint(ctx context.Context, tenant, id string, change func(*outbound.Endpoint) bool) (outbound.Endpoint, bool, error) {
	var e outbound.Endpoint
	found := false
	err := s.db.InTenantTx(ctx, tenant, func(tx *sql.Tx) error {
		q := s.q.activeEndpoint
		if s.db.Dialect == pstore.Postgres {
			q += " FOR UPDATE"
		}
		var err error
		e, err = scanEndpoint(s.stmts.QueryRow(ctx, tx, q, tenant, id))
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		if !change(&e) {
			return nil
		}
		_, err = s.stmts.Exec(ctx, tx, s.q.changeEndpoint, nullTime(e.Disabled), e.DisabledReason,
			strings.Join(e.EventTypes, "\n"), e.MinSeverity, e.Secret, e.PrevSecret, nullTime(e.PrevUntil), tenant, id)
		return err
	})
	if err != nil {
		return outbound.Endpoint{}, false, fmt.Errorf("change endpoint: %w", err)
	}
	return e, found, nil
}

// RequeueDeliveries implements outbound.Store with the outbox's requeue.
func (s *Store) RequeueDeliveries(ctx context.Context, req outbox.RequeueRequest, now time.Time) (int64, error) {
	if req.TenantID == "" || req.Topic == "" {
		return 0, errors.New("requeue deliveries: want a tenant and a topic")
	}
	return outbox.Requeue(ctx, s.db, req, now)
}

// FailingSince implements outbound.Store: the endpoint's last delivered
// attempt, then the first attempt after it (both one index seek on
// delivery_attempts_endpoint, the first walking back over the failures).
func (s *Store) FailingSince(ctx context.Context, tenant, endpointID string) (time.Time, bool, error) {
	var since time.Time
	found := false
	err := s.db.InTenantReadTx(ctx, tenant, func(tx *sql.Tx) error {
		var last time.Time
		err := s.stmts.QueryRow(ctx, tx, s.q.lastDelivered, tenant, endpointID).Scan(&last)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		err = s.stmts.QueryRow(ctx, tx, s.q.firstAttemptAfter, tenant, endpointID, last).Scan(&since)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		found = err == nil
		return err
	})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("failing since: %w", err)
	}
	return since.UTC(), found, nil
}

// RecordAttempt implements outbound.Store. Attempts of one delivery come from
// the relay holding its outbox claim, one at a time, so numbering them
// from the stored maximum cannot race.
func (s *Store) RecordAttempt(ctx context.Context, tenant string, a outbound.Attempt, maxAttempts int) (outbound.Attempt, error) {
	err := s.db.InTenantTx(ctx, tenant, func(tx *sql.Tx) error {
		if err := s.stmts.QueryRow(ctx, tx, s.q.nextAttempt, tenant, a.DeliveryID).Scan(&a.Number); err != nil {
			return err
		}
		if a.Outcome == outbound.OutcomeFailed && a.Number >= maxAttempts {
			a.Outcome = outbound.OutcomeDead
		}
		_, err := s.stmts.Exec(ctx, tx, s.q.addAttempt, tenant, a.DeliveryID, a.Number, a.EndpointID, int64(a.Seq),
			a.At, a.Outcome, a.StatusCode, a.Error)
		return err
	})
	if err != nil {
		return a, fmt.Errorf("record attempt: %w", err)
	}
	return a, nil
}

// Attempts implements outbound.Store.
func (s *Store) Attempts(ctx context.Context, tenant, endpointID string, offset, limit int) ([]outbound.Attempt, error) {
	var out []outbound.Attempt
	err := s.db.InTenantReadTx(ctx, tenant, func(tx *sql.Tx) error {
		q, args := s.q.attempts[0], []any{tenant, limit, offset}
		if endpointID != "" {
			q, args = s.q.attempts[1], []any{tenant, endpointID, limit, offset}
		}
		rows, err := s.stmts.Query(ctx, tx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var a outbound.Attempt
			var seq int64
			if err := rows.Scan(&a.DeliveryID, &a.Number, &a.EndpointID, &seq, &a.At, &a.Outcome, &a.StatusCode, &a.Error); err != nil {
				return err
			}
			a.Seq, a.At = uint64(seq), a.At.UTC()
			out = append(out, a)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("attempts: %w", err)
	}
	return out, nil
}
