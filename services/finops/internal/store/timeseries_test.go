package store_test

import (
	"testing"
	"time"

	"github.com/echopilot/echopilot/services/finops/internal/domain"
)

// The time series has a point for every day of the period, zeros on days
// without data, each day's point is that day's summary, and the points sum
// to the summary of the whole period, for every tenant and for each one.
func TestTimeseriesSumsToSummary(t *testing.T) {
	eachBackend(t, func(t *testing.T, f fixture) {
		// Data on days 0, -1 and -4 of a 7-day window, and on day -9,
		// outside it; nothing on days -2, -3, -5 and -6.
		f.record(t, "acme", usage("a1", t0, 100, 10, 12_345), usage("a2", t0.Add(-24*time.Hour), 5, 5, 777),
			unpriced("a3", "mystery", t0.Add(-24*time.Hour), 40, 2))
		f.record(t, "globex", usage("g1", t0, 1, 1, 1), usage("g2", t0.Add(-4*24*time.Hour), 1, 1, 999_999),
			usage("g3", t0.Add(-9*24*time.Hour), 1, 1, 5))
		f.apply(t, charge("evt_1", "charge.succeeded", "ch_1", "acme", "cus_a", 10_050, 0, t0))
		f.apply(t, charge("evt_2", "charge.succeeded", "ch_2", "globex", "cus_g", 3_333, 1_000, t0.Add(-4*24*time.Hour)))
		f.apply(t, charge("evt_3", "charge.succeeded", "ch_3", "globex", "cus_g", 700, 0, t0.Add(-9*24*time.Hour)))

		svc := domain.NewService(f.st, domain.Config{Rate: rate, Now: func() time.Time { return t0 }})
		empty := map[int64]bool{day0 - 2: true, day0 - 3: true, day0 - 5: true, day0 - 6: true}
		for _, c := range []domain.Caller{
			{Tenant: "default", PlatformAdmin: true}, {Tenant: "acme"}, {Tenant: "globex"}, {Tenant: "nobody"},
		} {
			ts, err := svc.Timeseries(t.Context(), c, 7)
			if err != nil {
				t.Fatalf("%+v: %v", c, err)
			}
			sum, err := svc.Summary(t.Context(), c, 7)
			if err != nil {
				t.Fatalf("%+v: %v", c, err)
			}
			if len(ts.Points) != 7 || ts.Days != 7 {
				t.Fatalf("%+v: %d points over %d days, want 7", c, len(ts.Points), ts.Days)
			}
			var tot domain.Totals
			var infra, revenue, costs int64
			for i, p := range ts.Points {
				if p.Day != day0-6+int64(i) {
					t.Fatalf("%+v: point %d is day %d, want %d", c, i, p.Day, day0-6+int64(i))
				}
				if empty[p.Day] && p.Totals != (domain.Totals{}) {
					t.Errorf("%+v: day %d has no data but %+v", c, p.Day, p.Totals)
				}
				// Each point is the summary of its own day.
				day := f.totals(t, ts.Scope, domain.Days{From: p.Day, To: p.Day})
				if !ts.Scope.All && p.Totals != day {
					t.Errorf("%+v: day %d = %+v, want %+v", c, p.Day, p.Totals, day)
				}
				if ts.Scope.All && (withoutAlloc(p.Totals) != withoutAlloc(day) || p.InfraMicros != rate.PerDay()) {
					t.Errorf("%+v: day %d = %+v (infra %d), want %+v and the rate card", c, p.Day, p.Totals, p.InfraMicros, day)
				}
				tot = add(tot, p.Totals)
				infra += p.InfraMicros
				revenue += p.Profit().RevenueMicros
				costs += p.Profit().CostMicros
			}
			if ts.Scope.All {
				tot.AllocComputeMicros, tot.AllocDatabaseMicros = sum.Totals.AllocComputeMicros, sum.Totals.AllocDatabaseMicros
			}
			if tot != sum.Totals || infra != sum.InfraMicros() {
				t.Errorf("%+v: days sum to %+v (infra %d),\n  summary is %+v (infra %d)", c, tot, infra, sum.Totals, sum.InfraMicros())
			}
			if p := sum.Profit(); revenue != p.RevenueMicros || costs != p.CostMicros {
				t.Errorf("%+v: days' revenue %d and costs %d, summary's %d and %d", c, revenue, costs, p.RevenueMicros, p.CostMicros)
			}
		}
		// The figures themselves, for one tenant: the series is not only
		// consistent but right.
		ts, err := svc.Timeseries(t.Context(), domain.Caller{Tenant: "acme"}, 2)
		if err != nil {
			t.Fatal(err)
		}
		if y, d := ts.Points[0].Totals, ts.Points[1].Totals; y.AICostMicros != 777 || y.UnpricedJobs != 1 || y.JobCount != 2 ||
			d.AICostMicros != 12_345 || d.RevenueCents != 10_050 || d.PaymentCount != 1 {
			t.Errorf("acme's last two days = %+v, %+v", y, d)
		}
		// days=0 is a month; beyond the range is refused.
		if ts, err := svc.Timeseries(t.Context(), domain.Caller{Tenant: "acme"}, 0); err != nil || len(ts.Points) != domain.DefaultSeriesDays {
			t.Errorf("default period: %d points, %v", len(ts.Points), err)
		}
		for _, d := range []int32{-1, domain.MaxDays + 1} {
			if _, err := svc.Timeseries(t.Context(), domain.Caller{Tenant: "acme"}, d); err == nil {
				t.Errorf("days=%d accepted", d)
			}
		}
	})
}
