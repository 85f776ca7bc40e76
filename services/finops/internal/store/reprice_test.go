package store_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/finops/internal/domain"
	"github.com/echopilot/echopilot/services/finops/internal/pricing"
	"github.com/echopilot/echopilot/services/finops/internal/store"
)

// prices parses a price table of the test's own.
func prices(t testing.TB, entries ...string) *pricing.Table {
	t.Helper()
	tab, err := pricing.Parse(strings.NewReader(`{"prices": [` + strings.Join(entries, ",") + `]}`))
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func service(st domain.Store, p domain.Pricer) *domain.Service {
	return domain.NewService(st, domain.Config{Prices: p, Rate: rate, Now: func() time.Time { return t0 }})
}

func (f fixture) reprice(t testing.TB, svc *domain.Service) int64 {
	t.Helper()
	n, err := svc.Reprice(t.Context())
	if err != nil {
		t.Fatalf("reprice: %v", err)
	}
	return n
}

// Usage of a model the table did not know is priced once a price covering
// its date is added, with the rollups; usage before the price's date stays
// unpriced; a second run changes nothing.
func TestRepriceUnpriced(t *testing.T) {
	eachBackend(t, func(t *testing.T, f fixture) {
		known := `{"model": "gpt-4o", "effective_from": "2020-01-01", "input_per_mtok": "1.00", "output_per_mtok": "1.00"}`
		// Across batches, two tenants, two days.
		n := domain.RepriceBatch + 7
		var acme []domain.UsageRecord
		for i := range n {
			acme = append(acme, unpriced(fmt.Sprintf("a%04d", i), "new-model", t0.Add(-time.Duration(i%2)*24*time.Hour), 1000, 500))
		}
		f.record(t, "acme", acme[:domain.MaxUsageBatch/2]...)
		f.record(t, "acme", acme[domain.MaxUsageBatch/2:]...)
		f.record(t, "globex", unpriced("g1", "new-model", t0, 2000, 0), usage("g2", t0, 10, 10, 42),
			unpriced("g-early", "new-model", t0.AddDate(-1, 0, 0), 1, 1))
		before := f.totals(t, all, around)
		if before.UnpricedJobs != int64(n)+1 || before.AICostMicros != 42 {
			t.Fatalf("before: %+v", before)
		}

		if got := f.reprice(t, service(f.st, prices(t, known))); got != 0 {
			t.Fatalf("reprice without the model's price priced %d", got)
		}
		// gpt-4o-mini's price, under another name, from a date before t0
		// but after g-early.
		added := prices(t, known, `{"model": "new-model", "effective_from": "`+t0.AddDate(0, -1, 0).Format(time.DateOnly)+
			`", "input_per_mtok": "0.15", "output_per_mtok": "0.60"}`)
		svc := service(f.st, added)
		if got := f.reprice(t, svc); got != int64(n)+1 {
			t.Fatalf("repriced %d, want %d", got, n+1)
		}
		after := f.totals(t, all, around)
		// 1000×0.15 + 500×0.60 = 450 µ$ a job; 2000×0.15 = 300 µ$.
		want := before
		want.AICostMicros += int64(n)*450 + 300
		want.UnpricedJobs, want.UnpricedInputTokens, want.UnpricedOutputTokens = 0, 0, 0
		if after != want {
			t.Errorf("after reprice %+v\nwant %+v", after, want)
		}
		if m := f.unpricedModels(t, all, around); len(m) != 0 {
			t.Errorf("unpriced models after reprice: %v", m)
		}
		if g := withoutAlloc(f.totals(t, scope("globex"), around)); g.AICostMicros != 342 || g.UnpricedJobs != 0 {
			t.Errorf("globex: %+v", g)
		}
		f.checkConsistent(t, all, around)
		f.checkConsistent(t, all, domain.Days{From: day0 - 400, To: day0})
		// The record before the price's date stays unpriced.
		if old := f.totals(t, all, domain.Days{From: day0 - 400, To: day0 - 300}); old.UnpricedJobs != 1 {
			t.Errorf("the year-old record: %+v", old)
		}

		if got := f.reprice(t, svc); got != 0 {
			t.Errorf("second reprice priced %d", got)
		}
		if again := f.totals(t, all, around); again != after {
			t.Errorf("second reprice moved totals: %+v\nfrom %+v", again, after)
		}
	})
}

// Two replicas re-pricing at once price each record once.
func TestRepriceReplicas(t *testing.T) {
	eachBackend(t, func(t *testing.T, f fixture) {
		var recs []domain.UsageRecord
		for i := range 300 {
			recs = append(recs, unpriced(fmt.Sprintf("j%03d", i), "new-model", t0, 1000, 500))
		}
		f.record(t, "acme", recs...)
		tab := prices(t, `{"model": "new-model", "effective_from": "2020-01-01", "input_per_mtok": "0.15", "output_per_mtok": "0.60"}`)
		other := store.New(storetest.Open(t, f.appURL))
		svcs := []*domain.Service{service(f.st, tab), service(other, tab), service(f.st, tab), service(other, tab)}
		counts := make([]int64, len(svcs))
		var fns []func() error
		for i, svc := range svcs {
			fns = append(fns, func() (err error) {
				counts[i], err = svc.Reprice(t.Context())
				return err
			})
		}
		parallel(t, fns)
		var sum int64
		for _, c := range counts {
			sum += c
		}
		got := withoutAlloc(f.totals(t, scope("acme"), around))
		if sum != 300 || got.AICostMicros != 300*450 || got.UnpricedJobs != 0 {
			t.Errorf("priced %v (sum %d), totals %+v", counts, sum, got)
		}
		f.checkConsistent(t, all, around)
	})
}
