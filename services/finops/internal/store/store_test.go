package store_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/services/finops/internal/domain"
)

func TestUsageIdempotent(t *testing.T) {
	eachBackend(t, func(t *testing.T, f fixture) {
		a := usage("job-a", t0, 100, 10, 2000)
		b := unpriced("job-b", "mystery-1", t0, 50, 5)
		// Priced false: a cost the caller left set is not stored.
		b.CostMicros = 999
		if got := f.record(t, "acme", a, b); !slices.Equal(got, []bool{true, true}) {
			t.Errorf("first batch new = %v, want [true true]", got)
		}
		c := usage("job-c", t0.Add(24*time.Hour), 7, 3, 300)
		if got := f.record(t, "acme", a, c, c); !slices.Equal(got, []bool{false, true, false}) {
			t.Errorf("replayed batch new = %v, want [false true false]", got)
		}
		if got := f.record(t, "acme"); len(got) != 0 {
			t.Errorf("empty batch = %v", got)
		}
		// Job ids are per tenant.
		if got := f.record(t, "globex", a); !slices.Equal(got, []bool{true}) {
			t.Errorf("another tenant's job-a new = %v, want [true]", got)
		}
		want := domain.Totals{AICostMicros: 2300, JobCount: 3, InputTokens: 157, OutputTokens: 18,
			UnpricedJobs: 1, UnpricedInputTokens: 50, UnpricedOutputTokens: 5}
		if got := withoutAlloc(f.totals(t, scope("acme"), around)); got != want {
			t.Errorf("acme totals = %+v, want %+v", got, want)
		}
		f.checkConsistent(t, scope("acme"), around)
		f.checkConsistent(t, all, around)
		if got := f.unpricedModels(t, scope("acme"), around); !slices.Equal(got, []string{"mystery-1"}) {
			t.Errorf("unpriced models = %v", got)
		}
		if _, err := f.st.RecordUsage(t.Context(), []domain.UsageRecord{a}); !errors.Is(err, pstore.ErrNoTenant) {
			t.Errorf("record without tenant: %v, want ErrNoTenant", err)
		}
	})
}

// payment is the non-usage part of Totals.
func payment(revenue, refunded, count int64) domain.Totals {
	return domain.Totals{RevenueCents: revenue, RefundedCents: refunded, PaymentCount: count}
}

func TestPayments(t *testing.T) {
	eachBackend(t, func(t *testing.T, f fixture) {
		check := func(name string, tenant string, want domain.Totals) {
			t.Helper()
			if got := withoutAlloc(f.totals(t, scope(tenant), around)); got != want {
				t.Errorf("%s: totals = %+v, want %+v", name, got, want)
			}
			f.checkConsistent(t, scope(tenant), around)
		}

		// Charge, then refunded in full: nothing left, not counted.
		f.wantOutcome(t, charge("evt_1", "charge.succeeded", "ch_1", "t1", "", 1000, 0, t0), domain.OutcomeApplied, "t1")
		check("charge", "t1", payment(1000, 0, 1))
		f.wantOutcome(t, charge("evt_2", "charge.refunded", "ch_1", "t1", "", 1000, 1000, t0), domain.OutcomeApplied, "t1")
		check("full refund", "t1", payment(0, 1000, 0))
		// A replay is a duplicate and changes nothing.
		f.wantOutcome(t, charge("evt_1", "charge.succeeded", "ch_1", "t1", "", 1000, 0, t0), domain.OutcomeDuplicate, "t1")
		check("replay", "t1", payment(0, 1000, 0))

		// Partial refund.
		f.apply(t, charge("evt_3", "charge.succeeded", "ch_2", "t2", "", 1000, 0, t0))
		f.apply(t, charge("evt_4", "charge.refunded", "ch_2", "t2", "", 1000, 300, t0))
		check("partial refund", "t2", payment(700, 300, 1))

		// invoice.paid and charge.succeeded of the same charge: one payment.
		f.apply(t, charge("evt_5", "invoice.paid", "ch_3", "t3", "", 500, 0, t0))
		f.apply(t, charge("evt_6", "charge.succeeded", "ch_3", "t3", "", 500, 0, t0.Add(time.Second)))
		check("invoice and charge", "t3", payment(500, 0, 1))

		// The refund comes first, telling a later day; the charge then moves
		// the payment to its own day and leaves no row on the later one.
		f.apply(t, charge("evt_7", "charge.refunded", "ch_4", "t4", "", 800, 200, t0.Add(48*time.Hour)))
		f.apply(t, charge("evt_8", "charge.succeeded", "ch_4", "t4", "", 800, 0, t0))
		check("refund first", "t4", payment(600, 200, 1))
		days := f.dayTotals(t, scope("t4"), around)
		if len(days) != 1 || days[0].Day != day0 || withoutAlloc(days[0].Totals) != payment(600, 200, 1) {
			t.Errorf("t4 day totals = %+v, want one row on day %d", days, day0)
		}
		f.checkConsistent(t, all, around)
	})
}

func TestHeldEvents(t *testing.T) {
	eachBackend(t, func(t *testing.T, f fixture) {
		// No tenant and no customer known: held, counted nowhere.
		f.wantOutcome(t, charge("evt_1", "charge.succeeded", "ch_1", "", "cus_1", 1000, 0, t0), domain.OutcomeHeld, "")
		f.wantOutcome(t, charge("evt_2", "charge.refunded", "ch_1", "", "cus_1", 1000, 100, t0), domain.OutcomeHeld, "")
		f.wantOutcome(t, charge("evt_1", "charge.succeeded", "ch_1", "", "cus_1", 1000, 0, t0), domain.OutcomeDuplicate, "")
		f.wantOutcome(t, charge("evt_x", "charge.succeeded", "ch_x", "", "", 5000, 0, t0), domain.OutcomeHeld, "")
		if got := f.totals(t, all, around); got != (domain.Totals{}) {
			t.Errorf("totals with only held events = %+v, want zero", got)
		}
		if got := f.raw(t, all, around); got != (domain.Totals{}) {
			t.Errorf("raw totals with only held events = %+v, want zero", got)
		}

		// An event naming the customer's tenant releases them.
		f.wantOutcome(t, charge("evt_3", "invoice.paid", "in_2", "acme", "cus_1", 300, 0, t0), domain.OutcomeApplied, "acme")
		want := payment(900+300, 100, 2)
		if got := withoutAlloc(f.totals(t, scope("acme"), around)); got != want {
			t.Errorf("acme totals = %+v, want %+v", got, want)
		}
		f.checkConsistent(t, all, around)
		// Released events report their tenant when replayed.
		f.wantOutcome(t, charge("evt_1", "charge.succeeded", "ch_1", "", "cus_1", 1000, 0, t0), domain.OutcomeDuplicate, "acme")
		// Later events of the customer go to its tenant; metadata still wins
		// for an event that names another, and the first mapping stays.
		f.wantOutcome(t, charge("evt_4", "charge.succeeded", "ch_5", "", "cus_1", 50, 0, t0), domain.OutcomeApplied, "acme")
		f.wantOutcome(t, charge("evt_5", "charge.succeeded", "ch_6", "globex", "cus_1", 70, 0, t0), domain.OutcomeApplied, "globex")
		f.wantOutcome(t, charge("evt_6", "charge.succeeded", "ch_7", "", "cus_1", 20, 0, t0), domain.OutcomeApplied, "acme")
		if got := withoutAlloc(f.totals(t, scope("acme"), around)); got != add(want, payment(70, 0, 2)) {
			t.Errorf("acme totals = %+v, want %+v", got, add(want, payment(70, 0, 2)))
		}
		if got := withoutAlloc(f.totals(t, scope("globex"), around)); got != payment(70, 0, 1) {
			t.Errorf("globex totals = %+v", got)
		}
		f.checkConsistent(t, all, around)
	})
}

func TestAllocation(t *testing.T) {
	eachBackend(t, func(t *testing.T, f fixture) {
		f.record(t, "acme", usage("a1", t0, 1, 1, 1))
		f.record(t, "globex", usage("g1", t0, 1, 1, 1), usage("g2", t0, 1, 1, 1))
		// acme also has a rollup on the day before, without jobs.
		f.apply(t, charge("evt_1", "charge.succeeded", "ch_1", "acme", "", 100, 0, t0.Add(-24*time.Hour)))
		days := domain.Days{From: day0 - 1, To: day0}

		acme, globex, every := f.totals(t, scope("acme"), days), f.totals(t, scope("globex"), days), f.totals(t, all, days)
		if acme.AllocComputeMicros != 500000/3 || acme.AllocDatabaseMicros != 100000/3 {
			t.Errorf("acme allocated %d, %d; want %d, %d", acme.AllocComputeMicros, acme.AllocDatabaseMicros, 500000/3, 100000/3)
		}
		if globex.AllocComputeMicros != 500000*2/3 || globex.AllocDatabaseMicros != 100000*2/3 {
			t.Errorf("globex allocated %d, %d; want %d, %d", globex.AllocComputeMicros, globex.AllocDatabaseMicros, 500000*2/3, 100000*2/3)
		}
		if sum := add(acme, globex); sum != every {
			t.Errorf("tenants sum to %+v, all tenants %+v", sum, every)
		}
		// The day without jobs allocates nothing; rounding leaves 1 each.
		platformCompute := rate.ComputeMicrosPerDay*days.Len() - every.AllocComputeMicros
		platformDatabase := rate.DatabaseMicrosPerDay*days.Len() - every.AllocDatabaseMicros
		if platformCompute != 500000+1 || platformDatabase != 100000+1 {
			t.Errorf("platform keeps %d, %d; want %d, %d", platformCompute, platformDatabase, 500001, 100001)
		}

		// The same by tenant, paged, and by day.
		page1 := f.tenantTotals(t, all, days, "", 1)
		page2 := f.tenantTotals(t, all, days, "acme", 5)
		if len(page1) != 1 || page1[0].TenantID != "acme" || page1[0].Totals != acme ||
			len(page2) != 1 || page2[0].TenantID != "globex" || page2[0].Totals != globex {
			t.Errorf("tenant pages = %+v, %+v", page1, page2)
		}
		if rest := f.tenantTotals(t, all, days, "globex", 5); len(rest) != 0 {
			t.Errorf("after the last tenant: %+v", rest)
		}
		var got []string
		var sum domain.Totals
		for _, d := range f.dayTotals(t, all, days) {
			got = append(got, d.TenantID)
			sum = add(sum, d.Totals)
			if d.Day == day0-1 && (d.AllocComputeMicros != 0 || d.AllocDatabaseMicros != 0) {
				t.Errorf("day without jobs allocated %+v", d)
			}
		}
		if !slices.Equal(got, []string{"acme", "acme", "globex"}) || sum != every {
			t.Errorf("day totals tenants %v summing to %+v; want acme, acme, globex summing to %+v", got, sum, every)
		}

		// A callback error stops the stream and is returned.
		stop := errors.New("stop")
		calls := 0
		err := f.st.DayTotals(t.Context(), all, days, rate, func(domain.DayTotals) error { calls++; return stop })
		if !errors.Is(err, stop) || calls != 1 {
			t.Errorf("DayTotals with a failing callback: %v after %d calls", err, calls)
		}
		// Nothing in range, nothing divided by zero.
		if got := f.totals(t, all, domain.Days{From: day0 + 5, To: day0 + 6}); got != (domain.Totals{}) {
			t.Errorf("empty range totals = %+v", got)
		}
	})
}

// TestTenantIsolation checks, on both backends, that a tenant's reads see
// only its own rows: SQLite has no row-level security, so this rests on the
// store's WHERE clauses.
func TestTenantIsolation(t *testing.T) {
	eachBackend(t, func(t *testing.T, f fixture) {
		f.record(t, "acme", usage("a1", t0, 10, 1, 100), unpriced("a2", "acme-model", t0, 5, 5))
		f.record(t, "globex", usage("g1", t0, 20, 2, 200), unpriced("g2", "globex-model", t0, 7, 7))
		f.apply(t, charge("evt_a", "charge.succeeded", "ch_a", "acme", "cus_a", 1000, 0, t0))
		f.apply(t, charge("evt_g", "charge.succeeded", "ch_g", "globex", "cus_g", 3000, 0, t0))
		// A held event of globex's customer is released to globex only.
		f.wantOutcome(t, charge("evt_g2", "charge.succeeded", "ch_g2", "", "cus_g", 500, 0, t0), domain.OutcomeApplied, "globex")

		want := domain.Totals{RevenueCents: 1000, PaymentCount: 1, AICostMicros: 100, JobCount: 2, InputTokens: 15,
			OutputTokens: 6, UnpricedJobs: 1, UnpricedInputTokens: 5, UnpricedOutputTokens: 5}
		if got := withoutAlloc(f.totals(t, scope("acme"), around)); got != want {
			t.Errorf("acme totals = %+v, want %+v", got, want)
		}
		if got := f.raw(t, scope("acme"), around); got != want {
			t.Errorf("acme raw totals = %+v, want %+v", got, want)
		}
		if got := f.unpricedModels(t, scope("acme"), around); !slices.Equal(got, []string{"acme-model"}) {
			t.Errorf("acme unpriced models = %v", got)
		}
		if got := f.unpricedModels(t, all, around); !slices.Equal(got, []string{"acme-model", "globex-model"}) {
			t.Errorf("all unpriced models = %v", got)
		}
		for _, tt := range f.tenantTotals(t, scope("acme"), around, "", 10) {
			if tt.TenantID != "acme" {
				t.Errorf("acme's tenant totals list %q", tt.TenantID)
			}
		}
		for _, d := range f.dayTotals(t, scope("acme"), around) {
			if d.TenantID != "acme" {
				t.Errorf("acme's day totals list %q", d.TenantID)
			}
		}
		if got := f.totals(t, scope("nobody"), around); got != (domain.Totals{}) {
			t.Errorf("unknown tenant totals = %+v", got)
		}
		if _, err := f.st.Totals(t.Context(), domain.Scope{}, around, rate); !errors.Is(err, pstore.ErrNoTenant) {
			t.Errorf("totals of an empty scope: %v, want ErrNoTenant", err)
		}
		if _, err := f.st.RawTotals(t.Context(), domain.Scope{}, around); !errors.Is(err, pstore.ErrNoTenant) {
			t.Errorf("raw totals of an empty scope: %v, want ErrNoTenant", err)
		}
	})
}

// One batch may mix tenants: each record lands with its own tenant, and a
// job id is per tenant.
func TestRecordUsageMixedTenants(t *testing.T) {
	eachBackend(t, func(t *testing.T, f fixture) {
		recs := append(withTenant("globex", []domain.UsageRecord{usage("j1", t0, 10, 1, 100)}),
			withTenant("acme", []domain.UsageRecord{usage("j1", t0, 20, 2, 100), usage("j2", t0, 30, 3, 100)})...)
		isNew, err := f.st.RecordUsage(t.Context(), recs)
		if err != nil || !slices.Equal(isNew, []bool{true, true, true}) {
			t.Fatalf("isNew = %v, %v", isNew, err)
		}
		isNew, err = f.st.RecordUsage(t.Context(), recs[:2])
		if err != nil || !slices.Equal(isNew, []bool{false, false}) {
			t.Fatalf("again: isNew = %v, %v", isNew, err)
		}
		day := domain.Days{From: domain.DayOf(t0), To: domain.DayOf(t0)}
		for tenant, jobs := range map[string]int64{"acme": 2, "globex": 1} {
			tot, err := f.st.Totals(t.Context(), scope(tenant), day, domain.RateCard{})
			if err != nil || tot.JobCount != jobs {
				t.Errorf("%s: %d jobs (%v), want %d", tenant, tot.JobCount, err, jobs)
			}
		}
	})
}
