package store_test

import (
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/outbox"
	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/finops/internal/domain"
	"github.com/echopilot/echopilot/services/finops/internal/store"
)

// fixture is a migrated database of one backend: st works as the service
// does (the app role on PostgreSQL); owner sees every row.
type fixture struct {
	st    *store.Store
	db    *pstore.DB
	owner *pstore.DB
	// appURL is the service's connection URL, for a second replica.
	appURL string
}

func newFixture(t testing.TB, b storetest.Backend) fixture {
	t.Helper()
	migrateURL, appURL := b.NewDB(t)
	owner := storetest.Open(t, migrateURL)
	for _, m := range []pstore.Migrations{store.Migrations, outbox.Migrations} {
		if err := owner.Migrate(t.Context(), m); err != nil {
			t.Fatalf("migrate %s: %v", b.Name, err)
		}
	}
	db := storetest.Open(t, appURL)
	return fixture{st: store.New(db), db: db, owner: owner, appURL: appURL}
}

// eachBackend runs fn as one subtest per backend, each on a fresh database.
func eachBackend(t *testing.T, fn func(t *testing.T, f fixture)) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) { fn(t, newFixture(t, b)) })
	}
}

// t0 is the tests' clock origin, noon UTC; day0 its day.
var (
	t0   = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	day0 = domain.DayOf(t0)
	// around covers the days the tests write to.
	around = domain.Days{From: day0 - 10, To: day0 + 10}
	rate   = domain.RateCard{ComputeMicrosPerDay: 500000, DatabaseMicrosPerDay: 100000}
	all    = domain.Scope{All: true}
)

func scope(tenant string) domain.Scope { return domain.Scope{Tenant: tenant} }

func usage(job string, at time.Time, in, out, cost int64) domain.UsageRecord {
	return domain.UsageRecord{JobID: job, JobType: "ai_task", Model: "gpt-4o", InputTokens: in, OutputTokens: out,
		DurationMS: 100, CompletedAt: at, Priced: true, CostMicros: cost}
}

func unpriced(job, model string, at time.Time, in, out int64) domain.UsageRecord {
	return domain.UsageRecord{JobID: job, JobType: "ai_task", Model: model, InputTokens: in, OutputTokens: out,
		DurationMS: 100, CompletedAt: at}
}

// record stores recs as tenant's.
func (f fixture) record(t testing.TB, tenant string, recs ...domain.UsageRecord) []bool {
	t.Helper()
	isNew, err := f.st.RecordUsage(t.Context(), withTenant(tenant, recs))
	if err != nil {
		t.Fatalf("record usage: %v", err)
	}
	return isNew
}

func (f fixture) apply(t testing.TB, ev domain.PaymentEvent) domain.PaymentOutcome {
	t.Helper()
	out, err := f.st.ApplyPaymentEvent(t.Context(), ev)
	if err != nil {
		t.Fatalf("apply %s: %v", ev.EventID, err)
	}
	return out
}

// wantOutcome applies ev and checks what it did.
func (f fixture) wantOutcome(t testing.TB, ev domain.PaymentEvent, outcome, tenant string) {
	t.Helper()
	if got := f.apply(t, ev); got != (domain.PaymentOutcome{Outcome: outcome, TenantID: tenant}) {
		t.Errorf("apply %s = %+v, want %s for %q", ev.EventID, got, outcome, tenant)
	}
}

func (f fixture) totals(t testing.TB, sc domain.Scope, days domain.Days) domain.Totals {
	t.Helper()
	got, err := f.st.Totals(t.Context(), sc, days, rate)
	if err != nil {
		t.Fatalf("totals: %v", err)
	}
	return got
}

func (f fixture) raw(t testing.TB, sc domain.Scope, days domain.Days) domain.Totals {
	t.Helper()
	got, err := f.st.RawTotals(t.Context(), sc, days)
	if err != nil {
		t.Fatalf("raw totals: %v", err)
	}
	return got
}

func (f fixture) tenantTotals(t testing.TB, sc domain.Scope, days domain.Days, after string, limit int) []domain.TenantTotals {
	t.Helper()
	got, err := f.st.TenantTotals(t.Context(), sc, days, rate, after, limit)
	if err != nil {
		t.Fatalf("tenant totals: %v", err)
	}
	return got
}

func (f fixture) dayTotals(t testing.TB, sc domain.Scope, days domain.Days) []domain.DayTotals {
	t.Helper()
	var out []domain.DayTotals
	err := f.st.DayTotals(t.Context(), sc, days, rate, func(d domain.DayTotals) error {
		out = append(out, d)
		return nil
	})
	if err != nil {
		t.Fatalf("day totals: %v", err)
	}
	return out
}

func (f fixture) unpricedModels(t testing.TB, sc domain.Scope, days domain.Days) []string {
	t.Helper()
	got, err := f.st.UnpricedModels(t.Context(), sc, days)
	if err != nil {
		t.Fatalf("unpriced models: %v", err)
	}
	return got
}

// checkConsistent fails unless the rollups of sc agree with its raw rows.
func (f fixture) checkConsistent(t testing.TB, sc domain.Scope, days domain.Days) {
	t.Helper()
	got, raw := withoutAlloc(f.totals(t, sc, days)), f.raw(t, sc, days)
	if got != raw {
		t.Errorf("%+v: rollups %+v\n  disagree with raw rows %+v", sc, got, raw)
	}
}

func withoutAlloc(t domain.Totals) domain.Totals {
	t.AllocComputeMicros, t.AllocDatabaseMicros = 0, 0
	return t
}

// add returns the field by field sum.
func add(a, b domain.Totals) domain.Totals {
	return domain.Totals{
		RevenueCents: a.RevenueCents + b.RevenueCents, RefundedCents: a.RefundedCents + b.RefundedCents,
		PaymentCount: a.PaymentCount + b.PaymentCount, AICostMicros: a.AICostMicros + b.AICostMicros,
		JobCount: a.JobCount + b.JobCount, InputTokens: a.InputTokens + b.InputTokens,
		OutputTokens: a.OutputTokens + b.OutputTokens, UnpricedJobs: a.UnpricedJobs + b.UnpricedJobs,
		UnpricedInputTokens:  a.UnpricedInputTokens + b.UnpricedInputTokens,
		UnpricedOutputTokens: a.UnpricedOutputTokens + b.UnpricedOutputTokens,
		AllocComputeMicros:   a.AllocComputeMicros + b.AllocComputeMicros,
		AllocDatabaseMicros:  a.AllocDatabaseMicros + b.AllocDatabaseMicros,
	}
}

// charge is a charge event of payment key for tenant (metadata) and
// customer.
func charge(id, typ, key, tenant, customer string, gross, refunded int64, at time.Time) domain.PaymentEvent {
	return domain.PaymentEvent{EventID: id, Type: typ, CustomerID: customer, TenantID: tenant, PaymentKey: key,
		Currency: "usd", GrossCents: gross, RefundedCents: refunded, At: at}
}

// withTenant returns copies of recs belonging to tenant.
func withTenant(tenant string, recs []domain.UsageRecord) []domain.UsageRecord {
	out := make([]domain.UsageRecord, len(recs))
	for i, r := range recs {
		r.TenantID = tenant
		out[i] = r
	}
	return out
}
