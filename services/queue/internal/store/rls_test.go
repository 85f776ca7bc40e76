package store_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/platform/store/storetest"
)

// Jobs seeded per tenant by newRLSFixture.
const seededAcme, seededGlobex = 3, 2

// newRLSFixture is a PostgreSQL fixture holding jobs of two tenants.
func newRLSFixture(t *testing.T) fixture {
	t.Helper()
	f := newFixture(t, storetest.Backends()[1])
	for range seededAcme {
		f.enqueue(t, "acme")
	}
	for range seededGlobex {
		f.enqueue(t, "globex")
	}
	return f
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func countJobs(t *testing.T, q queryer, where string) int {
	t.Helper()
	var n int
	if err := q.QueryRowContext(t.Context(), "SELECT count(*) FROM jobs "+where).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRLSNoTenantSeesNothing(t *testing.T) {
	f := newRLSFixture(t)
	if n := countJobs(t, f.owner, ""); n != seededAcme+seededGlobex {
		t.Fatalf("owner counts %d jobs, want %d", n, seededAcme+seededGlobex)
	}
	if n := countJobs(t, f.db, ""); n != 0 {
		t.Errorf("app role outside a transaction counts %d jobs, want 0", n)
	}
	err := f.db.InTx(t.Context(), func(tx *sql.Tx) error {
		if n := countJobs(t, tx, ""); n != 0 {
			t.Errorf("unscoped transaction counts %d jobs, want 0", n)
		}
		// Without a tenant nothing is visible to change either.
		res, err := tx.ExecContext(t.Context(), "UPDATE jobs SET state = 'cancelled'")
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 0 {
			t.Errorf("unscoped UPDATE changed %d jobs", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = f.db.InTenantReadTx(t.Context(), "acme", func(tx *sql.Tx) error {
		if n := countJobs(t, tx, ""); n != seededAcme {
			t.Errorf("acme's transaction counts %d jobs (no WHERE), want its own %d", n, seededAcme)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRLSRejectsForeignWrites(t *testing.T) {
	f := newRLSFixture(t)
	storetest.RLSRefusesWrites(t, f.db, "acme", map[string]string{
		"insert for another tenant": `INSERT INTO jobs (tenant_id, id, type, prio, state, payload, max_attempts, run_at, created_at, updated_at)
			VALUES ('globex', 'x', 'ai_task', 2, 'queued', '{}', 3, now(), now(), now())`,
		"move own job to another tenant":  "UPDATE jobs SET tenant_id = 'globex' WHERE tenant_id = 'acme'",
		"erase another tenant's counters": "SELECT queue_erase_counts('globex')",
	})
	storetest.RLSHidesForeignRows(t, f.db, "acme", []string{
		"UPDATE jobs SET state = 'cancelled' WHERE tenant_id = 'globex'",
		"DELETE FROM jobs WHERE tenant_id = 'globex'",
		"DELETE FROM jobs WHERE tenant_id <> 'acme'",
	})
	if n := countJobs(t, f.owner, "WHERE tenant_id = 'globex' AND state = 'queued'"); n != seededGlobex {
		t.Errorf("globex has %d queued jobs left, want %d", n, seededGlobex)
	}
}

func TestRLSAllTenantsReadCannotWrite(t *testing.T) {
	f := newRLSFixture(t)
	err := f.db.InAllTenantsReadTx(t.Context(), func(tx *sql.Tx) error {
		if n := countJobs(t, tx, ""); n != seededAcme+seededGlobex {
			t.Errorf("all-tenants read counts %d jobs, want %d", n, seededAcme+seededGlobex)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	storetest.RLSAllTenantsReadCannotWrite(t, f.db, "UPDATE jobs SET state = 'cancelled'")
}

func TestRLSAppRoleIsUnprivileged(t *testing.T) {
	f := newRLSFixture(t)
	ctx := t.Context()
	var enabled, forced bool
	err := f.owner.QueryRowContext(ctx,
		"SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'jobs'::regclass").Scan(&enabled, &forced)
	if err != nil || !enabled || !forced {
		t.Errorf("jobs: row security enabled %v, forced %v (%v); want both", enabled, forced, err)
	}
	if err := pstore.RoleSafety(ctx, f.db); err != nil {
		t.Errorf("RoleSafety(app) = %v", err)
	}
}

// TestRLSMaintenanceAcrossTenants checks that the cross-tenant background
// work (reaper, retention, depth) works for the app role under RLS.
func TestRLSMaintenanceAcrossTenants(t *testing.T) {
	f := newRLSFixture(t)
	ctx := t.Context()
	d, err := f.st.Depth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var queued int64
	for _, x := range d {
		queued += x.N
	}
	if queued != seededAcme+seededGlobex {
		t.Errorf("depth counts %d jobs, want %d", queued, seededAcme+seededGlobex)
	}
	for _, tenant := range []string{"acme", "globex"} {
		for _, l := range f.claim(t, tenant, 10, f.t0) {
			if _, err := f.cancel(ctx, tenant, l.Job.ID, f.t0); err != nil {
				t.Fatal(err)
			}
		}
	}
	n, err := f.st.DeleteFinished(ctx, f.t0.Add(time.Second))
	if err != nil || n != seededAcme+seededGlobex {
		t.Errorf("DeleteFinished = %d, %v; want %d", n, err, seededAcme+seededGlobex)
	}
	if left := countJobs(t, f.owner, ""); left != 0 {
		t.Errorf("%d jobs left, want 0", left)
	}
}

// TestRLSWorkerTokens: a tenant's transaction reaches only its own worker
// tokens, even by a statement without a tenant condition.
func TestRLSWorkerTokens(t *testing.T) {
	f := newFixture(t, storetest.Backends()[1])
	ctx := t.Context()
	f.mintRecord(t, "acme", "a", f.t0)
	g := f.mintRecord(t, "globex", "g", f.t0)
	var enabled, forced bool
	err := f.owner.QueryRowContext(ctx,
		"SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'worker_tokens'::regclass").Scan(&enabled, &forced)
	if err != nil || !enabled || !forced {
		t.Errorf("worker_tokens: row security enabled %v, forced %v (%v); want both", enabled, forced, err)
	}
	err = f.db.InTenantTx(ctx, "acme", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE worker_tokens SET revoked_at = now()")
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			t.Errorf("acme's unconditioned revoke changed %d tokens, want its own 1", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := f.st.GetWorkerToken(ctx, "globex", g.ID); err != nil || got.Revoked() {
		t.Fatalf("globex's token = %+v, %v: want unrevoked", got, err)
	}
}

// TestRLSRepairTables: paused_job_types has row security like jobs (the
// attempt history is in the jobs' rows); a tenant's transaction reaches only its own rows, even by
// statements without a tenant condition.
func TestRLSRepairTables(t *testing.T) {
	f := newRLSFixture(t)
	ctx := t.Context()
	for _, tenant := range []string{"acme", "globex"} {
		f.claim(t, tenant, 10, f.t0)
		f.pause(t, tenant, "data_sync", "ops@"+tenant, f.t0)
	}
	for _, table := range []string{"jobs", "paused_job_types"} {
		var enabled, forced bool
		err := f.owner.QueryRowContext(ctx,
			"SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = $1::regclass", table).Scan(&enabled, &forced)
		if err != nil || !enabled || !forced {
			t.Errorf("%s: row security enabled %v, forced %v (%v); want both", table, enabled, forced, err)
		}
	}
	err := f.db.InTenantTx(ctx, "acme", func(tx *sql.Tx) error {
		for query, want := range map[string]int64{
			"UPDATE jobs SET attempt_outcome = 'cancelled'": seededAcme,
			"DELETE FROM paused_job_types":                  1,
		} {
			res, err := tx.ExecContext(ctx, query)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n != want {
				t.Errorf("acme's %q changed %d rows, want its own %d", query, n, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var running, paused int
	if err := f.owner.QueryRowContext(ctx, "SELECT count(*) FROM jobs WHERE tenant_id = 'globex' AND attempt_outcome = 'running'").Scan(&running); err != nil {
		t.Fatal(err)
	}
	if err := f.owner.QueryRowContext(ctx, "SELECT count(*) FROM paused_job_types WHERE tenant_id = 'globex'").Scan(&paused); err != nil {
		t.Fatal(err)
	}
	if running != seededGlobex || paused != 1 {
		t.Errorf("globex after acme's statements: %d running attempts, %d pauses; want %d and 1", running, paused, seededGlobex)
	}
}
