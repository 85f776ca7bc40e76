package store_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/page"
	"github.com/echopilot/echopilot/services/finops/internal/domain"
)

// An import replaces the rate card on the days it covers, per tenant per
// day: a tenant's infrastructure is its imported cost, cost no rule
// mapped is the platform's, and days not covered keep the share of jobs.
func TestImportInfra(t *testing.T) {
	eachBackend(t, func(t *testing.T, f fixture) {
		ctx := t.Context()
		f.record(t, "acme", usage("a1", t0, 10, 10, 100), usage("a0", t0.Add(-24*time.Hour), 10, 10, 100))
		f.record(t, "globex", usage("g1", t0, 10, 10, 100), usage("g0", t0.Add(-24*time.Hour), 10, 10, 100))
		costs := []domain.InfraCost{
			{Day: day0, TenantID: "", ComputeMicros: 1_000_000},
			{Day: day0, TenantID: "acme", ComputeMicros: 2_000_000, DatabaseMicros: 300_000},
			{Day: day0, TenantID: "initech", ComputeMicros: 700_000}, // no usage that day
		}
		// Twice: the second import replaces the first, never adds to it.
		for range 2 {
			if err := f.st.ImportInfra(ctx, "focus test.csv", []int64{day0}, costs); err != nil {
				t.Fatal(err)
			}
		}
		two := domain.Days{From: day0 - 1, To: day0}
		// The day before keeps the rate card, half each by jobs.
		want := map[string][2]int64{
			"acme":    {250_000 + 2_000_000, 50_000 + 300_000},
			"globex":  {250_000, 50_000},
			"initech": {700_000, 0},
		}
		for tenant, w := range want {
			got := f.totals(t, scope(tenant), two)
			if got.AllocComputeMicros != w[0] || got.AllocDatabaseMicros != w[1] {
				t.Errorf("%s: alloc %d/%d, want %d/%d", tenant, got.AllocComputeMicros, got.AllocDatabaseMicros, w[0], w[1])
			}
		}
		everyone := f.totals(t, all, two)
		if everyone.AllocComputeMicros != 500_000+2_700_000 || everyone.AllocDatabaseMicros != 100_000+300_000 {
			t.Errorf("all: alloc %d/%d", everyone.AllocComputeMicros, everyone.AllocDatabaseMicros)
		}
		f.checkConsistent(t, all, two)
		var listed []string
		for _, r := range f.tenantTotals(t, all, two, "", 10) {
			listed = append(listed, r.TenantID)
		}
		if !slices.Equal(listed, []string{"acme", "globex", "initech"}) {
			t.Errorf("listed %v", listed)
		}
		days, err := f.st.InfraDays(ctx, around)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(days, []domain.InfraDay{{Day: day0, ComputeMicros: 3_700_000, DatabaseMicros: 300_000}}) {
			t.Errorf("infra days %+v", days)
		}

		// The service's reports: the platform cost is exactly the
		// unallocated line on the covered day, and the rate card's rest on
		// the other.
		svc := domain.NewService(f.st, domain.Config{Rate: rate, Now: func() time.Time { return t0 }})
		admin := domain.Caller{Tenant: "default", PlatformAdmin: true}
		sum, err := svc.Summary(ctx, admin, 2)
		if err != nil {
			t.Fatal(err)
		}
		if sum.ComputeMicros != 500_000+3_700_000 || sum.DatabaseMicros != 100_000+300_000 || sum.PlatformMicros != 1_000_000 {
			t.Errorf("summary: compute %d database %d platform %d", sum.ComputeMicros, sum.DatabaseMicros, sum.PlatformMicros)
		}
		pg, err := svc.TenantCosts(ctx, admin, domain.TenantCostsRequest{Days: 2, Request: page.Request{}})
		if err != nil {
			t.Fatal(err)
		}
		if pg.PlatformMicros != 1_000_000 {
			t.Errorf("tenant costs: platform %d", pg.PlatformMicros)
		}
		ts, err := svc.Timeseries(ctx, admin, 2)
		if err != nil {
			t.Fatal(err)
		}
		if got := []int64{ts.Points[0].InfraMicros, ts.Points[1].InfraMicros}; !slices.Equal(got, []int64{600_000, 4_000_000}) {
			t.Errorf("series infra %v", got)
		}

		var csv strings.Builder
		if err := svc.Export(ctx, admin, 2, &csv); err != nil {
			t.Fatal(err)
		}
		day := domain.DayStart(day0).Format(time.RFC3339)
		for _, want := range []string{
			day + `,` + domain.DayStart(day0+1).Format(time.RFC3339) + `,USD,acme,acme,Compute,Compute,Usage,2.00,2.00,,,1,0,imported`,
			`,USD,,platform (unallocated),Compute,Compute,Usage,1.00,1.00,,,,,unallocated`,
			`,USD,globex,globex,Compute,Compute,Usage,0.25,0.25,,,1,0,share_of_jobs`,
		} {
			if !strings.Contains(csv.String(), want) {
				t.Errorf("export lacks %q:\n%s", want, csv.String())
			}
		}

		// Re-importing the day without acme's line leaves it nothing there.
		if err := f.st.ImportInfra(ctx, "again", []int64{day0}, costs[:1]); err != nil {
			t.Fatal(err)
		}
		if got := f.totals(t, scope("acme"), domain.Days{From: day0, To: day0}); got.AllocComputeMicros != 0 || got.AllocDatabaseMicros != 0 {
			t.Errorf("acme after re-import: %+v", got)
		}
	})
}

// A refund moving a payment away must not drop the rollup that carries a
// tenant's imported cost.
func TestImportedRollupKept(t *testing.T) {
	eachBackend(t, func(t *testing.T, f fixture) {
		f.apply(t, charge("ev1", "charge.succeeded", "ch_1", "acme", "", 500, 0, t0))
		if err := f.st.ImportInfra(t.Context(), "t", []int64{day0}, []domain.InfraCost{{Day: day0, TenantID: "acme", ComputeMicros: 42}}); err != nil {
			t.Fatal(err)
		}
		f.apply(t, charge("ev2", "charge.refunded", "ch_1", "acme", "", 500, 500, t0))
		if got := f.totals(t, scope("acme"), around); got.AllocComputeMicros != 42 || got.RevenueCents != 0 {
			t.Errorf("after refund: %+v", got)
		}
	})
}
