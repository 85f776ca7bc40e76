package store_test

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/outbox"
	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/tenancy/internal/domain"
	"github.com/echopilot/echopilot/services/tenancy/internal/store"
)

var tenancyTables = []string{"tenants", "decisions", "decision_counts", "api_keys", "exports", "export_files", "export_chunks", "erasures"}

// rlsFixture is a migrated PostgreSQL database holding rows of two tenants,
// with handles as the owner (superuser) and as the service's role.
type rlsFixture struct {
	owner, app *pstore.DB
}

// Decisions seeded per tenant.
const seededAcme, seededGlobex = 30, 20

func newRLSFixture(t *testing.T) rlsFixture {
	t.Helper()
	migrateURL, appURL := storetest.Postgres(t)
	owner := storetest.Open(t, migrateURL)
	for _, m := range []pstore.Migrations{store.Migrations, outbox.Migrations} {
		if err := owner.Migrate(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	app := storetest.Open(t, appURL)
	st := store.New(app)
	mustCreate(t, st, "acme", "globex")
	var ds []domain.Decision
	for range seededAcme {
		ds = append(ds, domain.Decision{TenantID: "acme", Allowed: true})
	}
	for range seededGlobex {
		ds = append(ds, domain.Decision{TenantID: "globex", TargetTenantID: "acme", Allowed: false})
	}
	mustRecord(t, st, ds...)
	mustKey(t, st, "acme")
	mustExport(t, st, "acme")
	return rlsFixture{owner: owner, app: app}
}

func count(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, table string) (int, error) {
	var n int
	err := q.QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&n)
	return n, err
}

func TestRLSNoTenantSeesNothing(t *testing.T) {
	f := newRLSFixture(t)
	ctx := t.Context()
	for _, table := range tenancyTables {
		// The rows are there: the superuser sees them.
		if n, err := count(ctx, f.owner, table); err != nil || n == 0 {
			t.Fatalf("owner counts %d rows in %s (%v), want some", n, table, err)
		}
		if n, err := count(ctx, f.app, table); err != nil || n != 0 {
			t.Errorf("app role without a tenant counts %d rows in %s (%v), want 0", n, table, err)
		}
		err := f.app.InTx(ctx, func(tx *sql.Tx) error {
			n, err := count(ctx, tx, table)
			if n != 0 {
				t.Errorf("unscoped transaction counts %d rows in %s, want 0", n, table)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestRLSRejectsForeignWrites(t *testing.T) {
	f := newRLSFixture(t)
	ctx := t.Context()
	writes := map[string]string{
		"insert tenant":   "INSERT INTO tenants (tenant_id, display_name, created_at) VALUES ('umbrella', 'x', now())",
		"insert decision": "INSERT INTO decisions (tenant_id, id, target_tenant_id, subject, method, service, allowed, reason, verified, created_at) VALUES ('globex', 'x', '', '', '', '', true, '', true, now())",
		"insert counter":  "INSERT INTO decision_counts (tenant_id, total, denied, cross_tenant_denied) VALUES ('globex', 1, 0, 0)",
		"move own row":    "UPDATE decision_counts SET tenant_id = 'globex' WHERE tenant_id = 'acme'",
	}
	storetest.RLSRefusesWrites(t, f.app, "acme", writes)

	// Foreign rows are invisible to UPDATE and DELETE: nothing is touched.
	storetest.RLSHidesForeignRows(t, f.app, "acme", []string{
		"UPDATE decisions SET reason = 'tampered' WHERE tenant_id = 'globex'",
		"DELETE FROM decisions WHERE tenant_id = 'globex'",
		"DELETE FROM tenants WHERE tenant_id <> 'acme'",
	})
	if n, err := count(ctx, f.owner, "decisions WHERE tenant_id = 'globex' AND reason <> 'tampered'"); err != nil || n != seededGlobex {
		t.Errorf("globex decisions intact: %d (%v), want %d", n, err, seededGlobex)
	}
}

func TestRLSAllTenantsReadCannotWrite(t *testing.T) {
	f := newRLSFixture(t)
	ctx := t.Context()
	err := f.app.InAllTenantsReadTx(ctx, func(tx *sql.Tx) error {
		n, err := count(ctx, tx, "decisions")
		if err != nil {
			return err
		}
		if n != seededAcme+seededGlobex {
			t.Errorf("all-tenants read counts %d decisions, want %d", n, seededAcme+seededGlobex)
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO decision_counts (tenant_id, total, denied, cross_tenant_denied) VALUES ('acme', 1, 0, 0)")
		return err
	})
	// 25006 read_only_sql_transaction.
	if code := storetest.PGCode(err); code != "25006" {
		t.Errorf("insert in the all-tenants read transaction: %v (SQLSTATE %q), want 25006", err, code)
	}

	// Even a read-write transaction that turns the flag on cannot write
	// another tenant's rows: write policies ignore it.
	err = f.app.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "SELECT set_config('app.all_tenants', 'on', true)"); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO decision_counts (tenant_id, total, denied, cross_tenant_denied) VALUES ('umbrella', 1, 0, 0)")
		return err
	})
	if code := storetest.PGCode(err); code != "42501" {
		t.Errorf("insert with app.all_tenants=on: %v (SQLSTATE %q), want 42501", err, code)
	}
}

// TestRLSInterleavedTenants runs 1,000 tenant-scoped reads of two tenants
// through one small pool, so connections pass from one tenant to the other;
// the reads have no WHERE clause and rely on RLS alone.
func TestRLSInterleavedTenants(t *testing.T) {
	f := newRLSFixture(t)
	ctx := t.Context()
	f.app.SetMaxOpenConns(4)
	want := map[string]int{"acme": seededAcme, "globex": seededGlobex}

	const workers, requests = 10, 1000
	var foreign, wrongCount atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for r := w; r < requests; r += workers {
				tenant := []string{"acme", "globex"}[r%2]
				// Alternate read-only and read-write scoped transactions.
				inTx := f.app.InTenantReadTx
				if r%4 >= 2 {
					inTx = f.app.InTenantTx
				}
				err := inTx(ctx, tenant, func(tx *sql.Tx) error {
					rows, err := tx.QueryContext(ctx, "SELECT tenant_id FROM decisions")
					if err != nil {
						return err
					}
					defer rows.Close()
					n := 0
					for rows.Next() {
						var got string
						if err := rows.Scan(&got); err != nil {
							return err
						}
						if got != tenant {
							foreign.Add(1)
						}
						n++
					}
					if n != want[tenant] {
						wrongCount.Add(1)
					}
					return rows.Err()
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := foreign.Load(); n != 0 {
		t.Errorf("%d foreign rows seen", n)
	}
	if n := wrongCount.Load(); n != 0 {
		t.Errorf("%d requests saw a row count other than their tenant's", n)
	}
}

func TestRLSAppRoleIsUnprivileged(t *testing.T) {
	f := newRLSFixture(t)
	ctx := t.Context()
	var (
		role                 string
		super, bypass, group bool
	)
	err := f.app.QueryRowContext(ctx, `
		SELECT rolname, rolsuper, rolbypassrls, pg_has_role(current_user, $1, 'MEMBER')
		FROM pg_roles WHERE rolname = current_user`, pstore.AppRole).Scan(&role, &super, &bypass, &group)
	if err != nil {
		t.Fatal(err)
	}
	if super || bypass || !group {
		t.Errorf("app role %s: superuser %v, BYPASSRLS %v, member of %s %v; want false, false, true",
			role, super, bypass, pstore.AppRole, group)
	}
	var owned int
	err = f.owner.QueryRowContext(ctx, "SELECT count(*) FROM pg_tables WHERE tableowner = $1", role).Scan(&owned)
	if err != nil || owned != 0 {
		t.Errorf("app role owns %d tables (%v), want 0", owned, err)
	}
	for _, table := range tenancyTables {
		var enabled, forced bool
		err := f.owner.QueryRowContext(ctx,
			"SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = $1::regclass", table).Scan(&enabled, &forced)
		if err != nil || !enabled || !forced {
			t.Errorf("%s: row security enabled %v, forced %v (%v); want both", table, enabled, forced, err)
		}
	}
	if err := pstore.RoleSafety(ctx, f.app); err != nil {
		t.Errorf("RoleSafety(app) = %v", err)
	}
}

// TestRLSPruneRespectsScope checks that pruning, which must delete across
// tenants, works for the app role under RLS.
func TestRLSPruneRespectsScope(t *testing.T) {
	f := newRLSFixture(t)
	st := store.New(f.app)
	n, err := st.PruneDecisions(t.Context(), time.Now().Add(time.Hour))
	if err != nil || n != seededAcme+seededGlobex {
		t.Errorf("PruneDecisions = %d, %v; want %d", n, err, seededAcme+seededGlobex)
	}
	if left, err := count(t.Context(), f.owner, "decisions"); err != nil || left != 0 {
		t.Errorf("%d decisions left (%v), want 0", left, err)
	}
}
