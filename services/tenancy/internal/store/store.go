// Package store implements domain.Store on SQLite and PostgreSQL with one set
// of queries. Every query names its tenant in the WHERE clause; on
// PostgreSQL, row-level security checks the same again.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/echopilot/echopilot/platform/outbox"
	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/services/tenancy/internal/domain"
)

//go:embed migrations
var migrationFiles embed.FS

// Migrations is the tenancy schema, for (*pstore.DB).Migrate. The outbox's
// own migrations (outbox.Migrations) must be applied too: RecordDecisions
// writes audited denials to it.
var Migrations = pstore.EmbeddedMigrations(migrationFiles, "tenancy_schema_version")

const (
	// insertBatch rows per INSERT: 10 parameters a row stays far below the
	// bind limits of both databases (SQLite 32766, PostgreSQL 65535).
	insertBatch = 200
	// pruneBatch rows per DELETE transaction, so pruning a large backlog
	// never holds the SQLite write lock or PostgreSQL row locks for long.
	pruneBatch = 1000
)

// Store is the SQL domain.Store.
type Store struct {
	db *pstore.DB
	// stmts keeps the request path's statements prepared (SQLite compiles
	// an unprepared one on every call).
	stmts *pstore.Stmts
	// statsOne and statsAll are Stats' query for one tenant and for all.
	statsOne, statsAll string
}

// statsQuery reads the counters where cond holds and, in the same
// statement (one snapshot; a tenant id is never empty), the last batch of
// the writer named by the last argument.
func statsQuery(cond string) string {
	return `SELECT tenant_id, total, denied, cross_tenant_denied FROM decision_counts WHERE ` + cond + `
		UNION ALL
		SELECT '', batch_seq, 0, 0 FROM decision_writers WHERE writer_id = ?`
}

// New returns a Store on db, which must be migrated with Migrations and
// outbox.Migrations. The Store owns db: Close closes it.
func New(db *pstore.DB) domain.Store {
	return &Store{db: db, stmts: pstore.NewStmts(db),
		statsOne: db.Rebind(statsQuery("tenant_id = ?")), statsAll: db.Rebind(statsQuery("1 = 1"))}
}

// Close closes the database.
func (s *Store) Close() error { return errors.Join(s.stmts.Close(), s.db.Close()) }

// RecordDecisions writes the raw rows and bumps the counters of every tenant
// in ds in one transaction, switching the tenant scope per tenant. Tenants
// are visited in sorted order so that concurrent batches lock counter rows
// in the same order and cannot deadlock. In the same transaction it adds the
// outbox event of every audited denial (domain.Decision.Audited), so an
// event exists if and only if its decision was stored.
func (s *Store) RecordDecisions(ctx context.Context, ds []domain.Decision, mark domain.Mark) error {
	if len(ds) == 0 {
		return nil
	}
	now := time.Now()
	byTenant := make(map[string][]decisionRow)
	var events []outbox.Event
	for _, d := range ds {
		if d.TenantID == "" {
			return fmt.Errorf("record decisions: %w", pstore.ErrNoTenant)
		}
		if d.Time.IsZero() {
			d.Time = now
		}
		r := decisionRow{id: ulid.Make().String(), Decision: d}
		byTenant[d.TenantID] = append(byTenant[d.TenantID], r)
		if !d.Audited() {
			continue
		}
		ev, err := domain.DeniedEvent(r.id, d)
		if err != nil {
			return fmt.Errorf("record decisions: %w", err)
		}
		events = append(events, outbox.Event{
			Topic: ev.Topic, Key: ev.Key, TenantID: ev.TenantID, Payload: ev.Payload, CreatedAt: now,
		})
	}
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		for _, tenant := range slices.Sorted(maps.Keys(byTenant)) {
			if err := s.db.SetTenant(ctx, tx, tenant); err != nil {
				return err
			}
			group := byTenant[tenant]
			for batch := range slices.Chunk(group, insertBatch) {
				if err := s.insertDecisions(ctx, tx, batch); err != nil {
					return err
				}
			}
			if err := s.bumpCounts(ctx, tx, tenant, group); err != nil {
				return err
			}
		}
		if mark.Writer != "" {
			if _, err := s.stmts.Exec(ctx, tx, s.db.Rebind(`
				INSERT INTO decision_writers (writer_id, batch_seq, updated_at) VALUES (?, ?, ?)
				ON CONFLICT (writer_id) DO UPDATE SET batch_seq = excluded.batch_seq, updated_at = excluded.updated_at`),
				mark.Writer, mark.Seq, now); err != nil {
				return err
			}
		}
		// The outbox and the writers have no row-level security: the last
		// tenant scope does not matter.
		_, err := outbox.AddMany(ctx, tx, s.db.Dialect, events)
		return err
	})
	if err != nil {
		return fmt.Errorf("record decisions: %w", err)
	}
	return nil
}

// decisionRow is a decision with the id it is stored under.
type decisionRow struct {
	id string
	domain.Decision
}

func (s *Store) insertDecisions(ctx context.Context, tx *sql.Tx, rs []decisionRow) error {
	const row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
	query := "INSERT INTO decisions (tenant_id, id, target_tenant_id, subject, method, service, allowed, reason, verified, created_at) VALUES " +
		strings.Repeat(row+", ", len(rs)-1) + row
	args := make([]any, 0, 10*len(rs))
	for _, r := range rs {
		args = append(args, r.TenantID, r.id, r.TargetTenantID, r.Subject, r.Method, r.Service,
			r.Allowed, r.Reason, r.Verified, r.Time.UTC())
	}
	_, err := tx.ExecContext(ctx, s.db.Rebind(query), args...)
	return err
}

func (s *Store) bumpCounts(ctx context.Context, tx *sql.Tx, tenant string, ds []decisionRow) error {
	var denied, crossDenied int64
	for _, d := range ds {
		if !d.Allowed {
			denied++
		}
		if d.CrossTenantDenied() {
			crossDenied++
		}
	}
	_, err := s.stmts.Exec(ctx, tx, s.db.Rebind(`
		INSERT INTO decision_counts (tenant_id, total, denied, cross_tenant_denied) VALUES (?, ?, ?, ?)
		ON CONFLICT (tenant_id) DO UPDATE SET
			total = decision_counts.total + excluded.total,
			denied = decision_counts.denied + excluded.denied,
			cross_tenant_denied = decision_counts.cross_tenant_denied + excluded.cross_tenant_denied`),
		tenant, int64(len(ds)), denied, crossDenied)
	return err
}

// Stats sums the counter rows within scope: one row per tenant, however many
// decisions were recorded.
func (s *Store) Stats(ctx context.Context, scope domain.Scope) (domain.Stats, error) {
	stats := domain.Stats{PerTenant: make(map[string]int64)}
	query, args := s.statsOne, []any{scope.Tenant, scope.Writer}
	if scope.AllTenants {
		query, args = s.statsAll, []any{scope.Writer}
	}
	// Every request's read: on PostgreSQL one round trip with its tenant
	// setting (ReadScoped).
	err := s.stmts.ReadScoped(ctx, scope.Tenant, scope.AllTenants, query, args,
		func(rows pstore.Rows) error {
			for rows.Next() {
				var (
					tenant                     string
					total, denied, crossDenied int64
				)
				if err := rows.Scan(&tenant, &total, &denied, &crossDenied); err != nil {
					return err
				}
				if tenant == "" {
					stats.WriterSeq = total
					continue
				}
				stats.Total += total
				stats.Denied += denied
				stats.CrossTenantDenied += crossDenied
				stats.PerTenant[tenant] = total
			}
			return nil
		})
	if err != nil {
		return domain.Stats{}, fmt.Errorf("stats: %w", err)
	}
	return stats, nil
}

// CreateTenant inserts t unless its id exists, in which case the stored row
// is returned unchanged.
func (s *Store) CreateTenant(ctx context.Context, t domain.Tenant) (stored domain.Tenant, existed bool, err error) {
	if t.CreatedAt.IsZero() {
		t.CreatedAt = time.Now()
	}
	// Return what a later read will: UTC at the databases' microsecond
	// precision, and a new tenant is active.
	t.CreatedAt = t.CreatedAt.UTC().Truncate(time.Microsecond)
	t.State, t.StateReason, t.StateChangedBy, t.StateChangedAt = domain.StateActive, "", "", time.Time{}
	err = s.db.InTenantTx(ctx, t.ID, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.db.Rebind(
			"INSERT INTO tenants (tenant_id, display_name, created_at, "+limitColumns+") VALUES (?, ?, ?, ?, ?, ?, ?)"+
				" ON CONFLICT (tenant_id) DO NOTHING"),
			t.ID, t.DisplayName, t.CreatedAt, t.Limits.ReadPerSecond, t.Limits.ReadBurst, t.Limits.WritePerSecond, t.Limits.WriteBurst)
		if err != nil {
			return err
		}
		inserted, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if inserted == 1 {
			stored = t
			return nil
		}
		existed = true
		stored, err = s.getTenant(ctx, tx, t.ID)
		return err
	})
	if err != nil {
		return domain.Tenant{}, false, fmt.Errorf("create tenant %q: %w", t.ID, err)
	}
	return stored, existed, nil
}

// GetTenant reads one tenant in its own scope.
func (s *Store) GetTenant(ctx context.Context, id string) (domain.Tenant, error) {
	if id == "" {
		return domain.Tenant{}, fmt.Errorf("get tenant: empty id: %w", domain.ErrNotFound)
	}
	var t domain.Tenant
	err := s.db.InTenantReadTx(ctx, id, func(tx *sql.Tx) (err error) {
		t, err = s.getTenant(ctx, tx, id)
		return err
	})
	if err != nil {
		return domain.Tenant{}, fmt.Errorf("get tenant %q: %w", id, err)
	}
	return t, nil
}

// UpdateTenant reads the tenant, locking its row on PostgreSQL (SQLite's
// write transaction holds the database's write lock already), applies
// update and writes the result back.
func (s *Store) UpdateTenant(ctx context.Context, id string, update func(*domain.Tenant) error) (domain.Tenant, error) {
	if id == "" {
		return domain.Tenant{}, fmt.Errorf("update tenant: empty id: %w", domain.ErrNotFound)
	}
	lock := ""
	if s.db.Dialect == pstore.Postgres {
		lock = " FOR UPDATE"
	}
	var t domain.Tenant
	err := s.db.InTenantTx(ctx, id, func(tx *sql.Tx) (err error) {
		if t, err = s.scanTenant(tx.QueryRowContext(ctx, s.db.Rebind(
			"SELECT "+tenantColumns+" FROM tenants WHERE tenant_id = ?"+lock), id)); err != nil {
			return err
		}
		if err := update(&t); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, s.db.Rebind(`
			UPDATE tenants SET display_name = ?, rate_limit_read_per_second = ?, rate_limit_read_burst = ?,
				rate_limit_write_per_second = ?, rate_limit_write_burst = ?
			WHERE tenant_id = ?`),
			t.DisplayName, t.Limits.ReadPerSecond, t.Limits.ReadBurst, t.Limits.WritePerSecond, t.Limits.WriteBurst, id)
		return err
	})
	if err != nil {
		return domain.Tenant{}, fmt.Errorf("update tenant %q: %w", id, err)
	}
	return t, nil
}

// ChangeTenantState reads the tenant with its row locked (as UpdateTenant),
// and unless it is in ch.To already writes the new state and ch's events.
func (s *Store) ChangeTenantState(ctx context.Context, id string, ch domain.StateChange) (domain.Tenant, bool, error) {
	if id == "" {
		return domain.Tenant{}, false, fmt.Errorf("change tenant state: empty id: %w", domain.ErrNotFound)
	}
	var t domain.Tenant
	var changed bool
	err := s.db.InTenantTx(ctx, id, func(tx *sql.Tx) (err error) {
		t, changed, err = s.changeState(ctx, tx, id, ch)
		return err
	})
	if err != nil {
		return domain.Tenant{}, false, fmt.Errorf("change state of tenant %q: %w", id, err)
	}
	return t, changed, nil
}

// changeState is ChangeTenantState in tx, scoped to tenant id.
func (s *Store) changeState(ctx context.Context, tx *sql.Tx, id string, ch domain.StateChange) (domain.Tenant, bool, error) {
	lock := ""
	if s.db.Dialect == pstore.Postgres {
		lock = " FOR UPDATE"
	}
	before, err := s.scanTenant(tx.QueryRowContext(ctx, s.db.Rebind(
		"SELECT "+tenantColumns+" FROM tenants WHERE tenant_id = ?"+lock), id))
	if err != nil || before.State == ch.To {
		return before, false, err
	}
	t := before
	t.State, t.StateReason, t.StateChangedBy, t.StateChangedAt = ch.To, ch.Reason, ch.By, ch.At
	evs, err := ch.Events(before, t)
	if err != nil {
		return domain.Tenant{}, false, err
	}
	if _, err := tx.ExecContext(ctx, s.db.Rebind(`
		UPDATE tenants SET state = ?, state_reason = ?, state_changed_by = ?, state_changed_at = ? WHERE tenant_id = ?`),
		string(t.State), t.StateReason, t.StateChangedBy, t.StateChangedAt, id); err != nil {
		return domain.Tenant{}, false, err
	}
	out := make([]outbox.Event, 0, len(evs))
	for _, e := range evs {
		out = append(out, outbox.Event{Topic: e.Topic, Key: e.Key, TenantID: e.TenantID, Payload: e.Payload, CreatedAt: ch.At})
	}
	if _, err := outbox.AddMany(ctx, tx, s.db.Dialect, out); err != nil {
		return domain.Tenant{}, false, err
	}
	return t, true, nil
}

// tenantColumns are the columns scanTenant reads, in its order.
const (
	limitColumns  = "rate_limit_read_per_second, rate_limit_read_burst, rate_limit_write_per_second, rate_limit_write_burst"
	stateColumns  = "state, state_reason, state_changed_by, state_changed_at"
	tenantColumns = "tenant_id, display_name, created_at, " + limitColumns + ", " + stateColumns
)

// scanTenant reads one row of tenantColumns.
func (s *Store) scanTenant(row interface{ Scan(...any) error }) (domain.Tenant, error) {
	var t domain.Tenant
	var changed sql.NullTime
	err := row.Scan(&t.ID, &t.DisplayName, &t.CreatedAt,
		&t.Limits.ReadPerSecond, &t.Limits.ReadBurst, &t.Limits.WritePerSecond, &t.Limits.WriteBurst,
		&t.State, &t.StateReason, &t.StateChangedBy, &changed)
	if errors.Is(err, sql.ErrNoRows) {
		return domain.Tenant{}, domain.ErrNotFound
	}
	if changed.Valid {
		t.StateChangedAt = changed.Time.UTC()
	}
	return t, err
}

func (s *Store) getTenant(ctx context.Context, tx *sql.Tx, id string) (domain.Tenant, error) {
	return s.scanTenant(tx.QueryRowContext(ctx, s.db.Rebind("SELECT "+tenantColumns+" FROM tenants WHERE tenant_id = ?"), id))
}

// ListTenants pages through the tenants within scope by id (keyset
// pagination, so a page costs the same wherever it starts).
func (s *Store) ListTenants(ctx context.Context, scope domain.Scope, afterID string, limit int) ([]domain.Tenant, error) {
	if limit < 1 {
		return nil, fmt.Errorf("list tenants: limit %d, want at least 1", limit)
	}
	var tenants []domain.Tenant
	err := s.inScope(ctx, scope, func(tx *sql.Tx, where string, args []any) error {
		rows, err := tx.QueryContext(ctx, s.db.Rebind(
			"SELECT "+tenantColumns+" FROM tenants WHERE "+where+
				" AND tenant_id > ? ORDER BY tenant_id LIMIT ?"),
			append(args, afterID, limit)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			t, err := s.scanTenant(rows)
			if err != nil {
				return err
			}
			tenants = append(tenants, t)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	return tenants, nil
}

// PruneDecisions deletes raw decisions older than before, tenant by tenant.
//
// Under row-level security a transaction may delete only the rows of the
// tenant it is scoped to (app.all_tenants is honoured by SELECT policies
// alone), so a single cross-tenant DELETE would silently delete nothing.
// Instead the tenants are listed from decision_counts, which has a row for
// every tenant with raw rows (both are written in one transaction and counter
// rows are never deleted), and each tenant is pruned in its own scope, in
// batches of pruneBatch rows. On error it returns the rows deleted so far.
func (s *Store) PruneDecisions(ctx context.Context, before time.Time) (int64, error) {
	var tenants []string
	err := s.db.InAllTenantsReadTx(ctx, func(tx *sql.Tx) (err error) {
		tenants, err = pstore.Strings(tx.QueryContext(ctx, "SELECT tenant_id FROM decision_counts ORDER BY tenant_id"))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("prune decisions: list tenants: %w", err)
	}
	var deleted int64
	for _, tenant := range tenants {
		for {
			var n int64
			err := s.db.InTenantTx(ctx, tenant, func(tx *sql.Tx) error {
				res, err := tx.ExecContext(ctx, s.db.Rebind(`
					DELETE FROM decisions WHERE tenant_id = ? AND id IN (
						SELECT id FROM decisions WHERE tenant_id = ? AND created_at < ? LIMIT ?)`),
					tenant, tenant, before.UTC(), pruneBatch)
				if err != nil {
					return err
				}
				n, err = res.RowsAffected()
				return err
			})
			if err != nil {
				return deleted, fmt.Errorf("prune decisions of %q: %w", tenant, err)
			}
			deleted += n
			if n < pruneBatch {
				break
			}
		}
	}
	return deleted, nil
}

// inScope runs fn in a read-only transaction covering scope, passing the
// WHERE condition (and its arguments) that limits a query to it. The
// condition is needed on both databases: SQLite has no row-level security.
func (s *Store) inScope(ctx context.Context, scope domain.Scope, fn func(tx *sql.Tx, where string, args []any) error) error {
	if scope.AllTenants {
		return s.db.InAllTenantsReadTx(ctx, func(tx *sql.Tx) error {
			return fn(tx, "1 = 1", nil)
		})
	}
	return s.db.InTenantReadTx(ctx, scope.Tenant, func(tx *sql.Tx) error {
		return fn(tx, "tenant_id = ?", []any{scope.Tenant})
	})
}
