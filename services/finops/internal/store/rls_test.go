package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"

	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/platform/store/storetest"
)

// tenantTables are the tables under row-level security.
var tenantTables = []string{"usage_records", "payments", "daily_rollups"}

// newRLSFixture is a PostgreSQL fixture with one usage record and one
// payment (so one rollup) for each of acme and globex.
func newRLSFixture(t *testing.T) fixture {
	t.Helper()
	f := newFixture(t, storetest.Backends()[1])
	for _, tenant := range []string{"acme", "globex"} {
		f.record(t, tenant, usage("job-"+tenant, t0, 10, 10, 100))
		f.apply(t, charge("evt_"+tenant, "charge.succeeded", "ch_"+tenant, tenant, "cus_"+tenant, 1000, 0, t0))
	}
	return f
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func count(t *testing.T, q queryer, table, where string) int {
	t.Helper()
	var n int
	if err := q.QueryRowContext(t.Context(), "SELECT count(*) FROM "+table+" "+where).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRLSRejectsForeignWrites(t *testing.T) {
	f := newRLSFixture(t)
	storetest.RLSRefusesWrites(t, f.db, "acme", map[string]string{
		"usage for another tenant": `INSERT INTO usage_records (tenant_id, job_id, job_type, model, input_tokens,
			output_tokens, duration_ms, completed_at, day, priced, cost_micros)
			VALUES ('globex', 'x', 'ai_task', 'm', 1, 1, 1, now(), 1, true, 1)`,
		"payment for another tenant": `INSERT INTO payments (tenant_id, payment_key, currency, gross_cents,
			refunded_cents, paid_at, day) VALUES ('globex', 'x', 'usd', 1, 0, now(), 1)`,
		"rollup for another tenant": "INSERT INTO daily_rollups (tenant_id, day, revenue_cents) VALUES ('globex', 1, 1)",
		"upsert into another tenant's rollup": fmt.Sprintf(`INSERT INTO daily_rollups (tenant_id, day, revenue_cents)
			VALUES ('globex', %d, 1) ON CONFLICT (tenant_id, day) DO UPDATE SET revenue_cents = 0`, day0),
		"move own usage":   "UPDATE usage_records SET tenant_id = 'globex' WHERE tenant_id = 'acme'",
		"move own payment": "UPDATE payments SET tenant_id = 'globex' WHERE tenant_id = 'acme'",
		"move own rollup":  "UPDATE daily_rollups SET tenant_id = 'globex' WHERE tenant_id = 'acme'",
	})
	var hide []string
	for _, table := range tenantTables {
		hide = append(hide,
			"UPDATE "+table+" SET day = 0 WHERE tenant_id = 'globex'",
			"DELETE FROM "+table+" WHERE tenant_id = 'globex'",
			"DELETE FROM "+table+" WHERE tenant_id <> 'acme'")
	}
	storetest.RLSHidesForeignRows(t, f.db, "acme", hide)
	for _, table := range tenantTables {
		if n := count(t, f.owner, table, fmt.Sprintf("WHERE tenant_id = 'globex' AND day = %d", day0)); n != 1 {
			t.Errorf("globex has %d rows of %s left, want 1", n, table)
		}
	}
}

func TestRLSNoTenantSeesNothing(t *testing.T) {
	f := newRLSFixture(t)
	ctx := t.Context()
	err := f.db.InTx(ctx, func(tx *sql.Tx) error {
		for _, table := range tenantTables {
			if n := count(t, tx, table, ""); n != 0 {
				t.Errorf("unscoped transaction counts %d rows of %s, want 0", n, table)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = f.db.InTenantReadTx(ctx, "acme", func(tx *sql.Tx) error {
		for _, table := range tenantTables {
			// No WHERE: row-level security alone hides globex's row.
			if n := count(t, tx, table, ""); n != 1 {
				t.Errorf("acme's transaction counts %d rows of %s, want its own 1", n, table)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The all-tenants read the reports use sees every row and writes none:
	// it is read-only, and write policies ignore app.all_tenants.
	err = f.db.InAllTenantsReadTx(ctx, func(tx *sql.Tx) error {
		if n := count(t, tx, "daily_rollups", ""); n != 2 {
			t.Errorf("all-tenants read counts %d rollups, want 2", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	storetest.RLSAllTenantsReadCannotWrite(t, f.db, "UPDATE daily_rollups SET revenue_cents = 0")
}

func TestRLSAppRoleIsUnprivileged(t *testing.T) {
	f := newRLSFixture(t)
	for _, table := range tenantTables {
		var enabled, forced bool
		err := f.owner.QueryRowContext(t.Context(),
			"SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = $1::regclass", table).Scan(&enabled, &forced)
		if err != nil || !enabled || !forced {
			t.Errorf("%s: row security enabled %v, forced %v (%v); want both", table, enabled, forced, err)
		}
	}
	if err := pstore.RoleSafety(t.Context(), f.db); err != nil {
		t.Errorf("RoleSafety(app) = %v", err)
	}
}
