package store_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/echopilot/echopilot/services/finops/internal/domain"
)

// parallel runs fns at once and fails t with their errors.
func parallel(t *testing.T, fns []func() error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(fns))
	start := make(chan struct{})
	for i, fn := range fns {
		wg.Go(func() {
			<-start
			errs[i] = fn()
		})
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// TestConcurrentEvents applies the events of one payment, and events of
// customers racing the event that names their tenant, all at once: on
// PostgreSQL concurrent transactions must serialize on the payment and the
// customer, or an update is lost or an event stays held for good.
func TestConcurrentEvents(t *testing.T) {
	eachBackend(t, func(t *testing.T, f fixture) {
		rounds := 5
		if raceEnabled {
			rounds = 2
		}
		var want domain.Totals
		for round := range rounds {
			var fns []func() error
			apply := func(ev domain.PaymentEvent) {
				fns = append(fns, func() error {
					_, err := f.st.ApplyPaymentEvent(t.Context(), ev)
					return err
				})
			}
			// One payment: charge, invoice, growing refunds, the earliest
			// time told by the last event.
			key := fmt.Sprintf("ch_%d", round)
			for i := range 8 {
				apply(charge(fmt.Sprintf("evt_%d_p%d", round, i), "charge.refunded", key, "acme", "",
					1000, int64(100*i), t0.Add(time.Duration(8-i)*time.Hour)))
			}
			want = add(want, payment(300, 700, 1))
			// Four customers, each with three events that name no tenant and
			// one that names acme.
			for c := range 4 {
				customer := fmt.Sprintf("cus_%d_%d", round, c)
				for i := range 4 {
					tenant := ""
					if i == 3 {
						tenant = "acme"
					}
					apply(charge(fmt.Sprintf("evt_%d_c%d_%d", round, c, i), "charge.succeeded",
						fmt.Sprintf("ch_%d_%d_%d", round, c, i), tenant, customer, 10, 0, t0))
				}
				want = add(want, payment(40, 0, 4))
			}
			parallel(t, fns)
		}
		if got := withoutAlloc(f.totals(t, scope("acme"), around)); got != want {
			t.Errorf("acme totals = %+v, want %+v", got, want)
		}
		f.checkConsistent(t, all, around)
		var held int
		if err := f.owner.QueryRowContext(t.Context(), "SELECT count(*) FROM stripe_events WHERE held").Scan(&held); err != nil || held != 0 {
			t.Errorf("%d events still held (%v), want 0", held, err)
		}
	})
}

// TestConcurrentUsage records batches of many tenants on the same days at
// once, some of one tenant sharing jobs in different orders: no deadlock,
// each job counted once, and the per-day totals of every tenant add up.
func TestConcurrentUsage(t *testing.T) {
	eachBackend(t, func(t *testing.T, f fixture) {
		var fns []func() error
		for tenant := range 12 {
			name := fmt.Sprintf("tenant-%02d", tenant)
			var recs []domain.UsageRecord
			for j := range 20 {
				recs = append(recs, usage(fmt.Sprintf("job-%d", j), t0.Add(time.Duration(j%3)*24*time.Hour), 10, 1, 100))
			}
			for copy := range 3 {
				batch := slices.Clone(recs)
				if copy%2 == 1 {
					slices.Reverse(batch)
				}
				fns = append(fns, func() error {
					_, err := f.st.RecordUsage(t.Context(), withTenant(name, batch))
					return err
				})
			}
		}
		parallel(t, fns)
		got := f.totals(t, all, around)
		if got.JobCount != 12*20 || got.AICostMicros != 12*20*100 {
			t.Errorf("all-tenant totals = %+v, want %d jobs", got, 12*20)
		}
		var sum domain.Totals
		for _, tt := range f.tenantTotals(t, all, around, "", 100) {
			sum = add(sum, tt.Totals)
		}
		if sum != got {
			t.Errorf("tenants sum to %+v, all tenants %+v", sum, got)
		}
		f.checkConsistent(t, all, around)
	})
}
