package store_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/growth/internal/domain"
)

// tenantTables are the tables under row-level security: every table but
// the code registry.
var tenantTables = []string{"referrals", "campaigns", "referral_events", "conversions", "referral_daily", "payout_batches"}

// newRLSFixture is a PostgreSQL fixture where acme and globex each have a
// referral, a campaign, a conversion refunded in part (so a row in every
// tenant table), a payout batch of a second conversion and a
// referral-link click.
func newRLSFixture(t *testing.T) fixture {
	t.Helper()
	f := newFixture(t, storetest.Backends()[1])
	for _, tenant := range []string{"acme", "globex"} {
		c := f.create(t, tenant, "ref-"+tenant, "default")
		rate := int64(1000)
		if err := f.st.PutCampaign(t.Context(), tenant, domain.Campaign{Name: "default", RateBPS: &rate, UpdatedAt: t0}, 10); err != nil {
			t.Fatal(err)
		}
		f.record(t, tenant, conversion("conv-"+tenant, c, "cust", 5000), refund("ref-"+tenant, "conv-"+tenant, 100))
		f.linkClick(t, tenant, domain.LinkClick{ID: "click-" + tenant, Code: c, OccurredAt: t0, VisitorKeys: []string{key(len(tenant))}}, t0)
		f.record(t, tenant, conversion("paid-"+tenant, c, "cust", 1000))
		if b, err := f.st.CreateBatch(t.Context(), tenant, "batch-"+tenant, domain.Clock{Now: t0.Add(time.Hour)}); err != nil || b.Count != 2 {
			t.Fatalf("batch of %s = %+v, %v", tenant, b, err)
		}
	}
	return f
}

func count(t *testing.T, q interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}, table, where string) int {
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
		"referral for another tenant": `INSERT INTO referrals (tenant_id, referral_code, referrer_id, campaign, created_at)
			VALUES ('globex', 'ZZZZZZZZ', 'x', 'default', now())`,
		"campaign for another tenant": `INSERT INTO campaigns (tenant_id, campaign, rate_bps, landing_url, updated_at)
			VALUES ('globex', 'evil', 10000, '', now())`,
		"event for another tenant": `INSERT INTO referral_events (tenant_id, source, event_id, type, referral_code, customer_id,
			amount_cents, refund_of, occurred_at) VALUES ('globex', 'tenant', 'x', 'click', 'ZZZZZZZZ', '', 0, '', now())`,
		"link click for another tenant": `INSERT INTO referral_events (tenant_id, source, event_id, type, referral_code, customer_id,
			amount_cents, refund_of, occurred_at) VALUES ('globex', 'link', 'x', 'click', 'ZZZZZZZZ', '', 0, '', now())`,
		"conversion for another tenant": `INSERT INTO conversions (tenant_id, conversion_id, known, referral_code, day,
			revenue_cents, rate_bps, self_referral, refund_cents, refund_all)
			VALUES ('globex', 'x', true, 'ZZZZZZZZ', 1, 1, 1, false, 0, false)`,
		"rollup for another tenant": "INSERT INTO referral_daily (tenant_id, referral_code, day, payout_cents) VALUES ('globex', 'ZZZZZZZZ', 1, 1)",
		"upsert into another tenant's campaign": `INSERT INTO campaigns (tenant_id, campaign, rate_bps, landing_url, updated_at)
			VALUES ('globex', 'default', 10000, '', now()) ON CONFLICT (tenant_id, campaign) DO UPDATE SET rate_bps = 10000`,
		"move own referral":   "UPDATE referrals SET tenant_id = 'globex' WHERE tenant_id = 'acme'",
		"move own campaign":   "UPDATE campaigns SET tenant_id = 'globex' WHERE tenant_id = 'acme'",
		"move own event":      "UPDATE referral_events SET tenant_id = 'globex' WHERE tenant_id = 'acme'",
		"move own conversion": "UPDATE conversions SET tenant_id = 'globex' WHERE tenant_id = 'acme'",
		"move own rollup":     "UPDATE referral_daily SET tenant_id = 'globex' WHERE tenant_id = 'acme'",
		"batch for another tenant": `INSERT INTO payout_batches (tenant_id, batch_id, created_at, commission_count, payout_cents)
			VALUES ('globex', 'x', now(), 1, 1)`,
		"move own batch": "UPDATE payout_batches SET tenant_id = 'globex' WHERE tenant_id = 'acme'",
	})
	var hide []string
	for _, table := range tenantTables {
		hide = append(hide,
			"UPDATE "+table+" SET tenant_id = 'acme' WHERE tenant_id = 'globex'")
		if table != "payout_batches" { // never deleted: the app role may not
			hide = append(hide, "DELETE FROM "+table+" WHERE tenant_id = 'globex'",
				"DELETE FROM "+table+" WHERE tenant_id <> 'acme'")
		}
	}
	hide = append(hide, "UPDATE payout_batches SET paid_at = now() WHERE tenant_id = 'globex'",
		"UPDATE conversions SET paid_at = now() WHERE tenant_id = 'globex'",
		"UPDATE referral_daily SET payout_cents = 0 WHERE tenant_id = 'globex'",
		"UPDATE campaigns SET rate_bps = 10000 WHERE tenant_id = 'globex'")
	storetest.RLSHidesForeignRows(t, f.db, "acme", hide)
	err := f.db.InTenantReadTx(t.Context(), "globex", func(tx *sql.Tx) error {
		for _, table := range tenantTables {
			if n := count(t, tx, table, ""); n == 0 {
				t.Errorf("globex lost its rows of %s", table)
			}
		}
		if n := count(t, tx, "referral_daily", "WHERE payout_cents = 590"); n != 1 {
			t.Errorf("globex's rollup changed")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
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
		// The registry is deployment-wide on purpose: a click resolves a
		// code before it knows the tenant.
		if n := count(t, tx, "referral_codes", ""); n != 2 {
			t.Errorf("registry shows %d codes, want both tenants' 2", n)
		}
		// So are the visitor marks of clicks: keyed hashes, no tenant.
		if n := count(t, tx, "click_dedup", ""); n != 2 {
			t.Errorf("click_dedup shows %d marks, want both tenants' 2", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = f.db.InTenantReadTx(ctx, "acme", func(tx *sql.Tx) error {
		for _, table := range tenantTables {
			// No WHERE: row-level security alone hides globex's rows.
			if n := count(t, tx, table, "WHERE tenant_id <> 'acme'"); n != 0 {
				t.Errorf("acme's transaction sees %d foreign rows of %s", n, table)
			}
			if n := count(t, tx, table, ""); n == 0 {
				t.Errorf("acme's transaction sees none of its own rows of %s", table)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The all-tenants setting of a platform admin's view is not honoured:
	// growth has no cross-tenant view.
	err = f.db.InAllTenantsReadTx(ctx, func(tx *sql.Tx) error {
		if n := count(t, tx, "referral_daily", ""); n != 0 {
			t.Errorf("all-tenants read counts %d rollups, want 0", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRLSAppRoleIsUnprivileged(t *testing.T) {
	f := newRLSFixture(t)
	for _, table := range tenantTables {
		var enabled, forced bool
		err := f.db.QueryRowContext(t.Context(),
			"SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = $1::regclass", table).Scan(&enabled, &forced)
		if err != nil || !enabled || !forced {
			t.Errorf("%s: row security enabled %v, forced %v (%v); want both", table, enabled, forced, err)
		}
	}
	if err := pstore.RoleSafety(t.Context(), f.db); err != nil {
		t.Errorf("RoleSafety(app) = %v", err)
	}
	// The registry cannot be rewritten: a code never changes tenant.
	err := f.db.InTx(t.Context(), func(tx *sql.Tx) error {
		_, err := tx.ExecContext(t.Context(), "UPDATE referral_codes SET tenant_id = 'acme'")
		return err
	})
	if code := storetest.PGCode(err); code != "42501" {
		t.Errorf("updating the registry: %v (SQLSTATE %q), want permission denied", err, code)
	}
	// Nor the deployment's keys.
	if _, err := f.st.DeploymentKey(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{"UPDATE deployment_keys SET key_hex = repeat('0', 64)", "DELETE FROM deployment_keys"} {
		err = f.db.InTx(t.Context(), func(tx *sql.Tx) error {
			_, err := tx.ExecContext(t.Context(), stmt)
			return err
		})
		if code := storetest.PGCode(err); code != "42501" {
			t.Errorf("%s: %v (SQLSTATE %q), want permission denied", stmt, err, code)
		}
	}
}
