package store_test

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/finops/internal/domain"
)

// op is one store write of a generated history: a usage batch or a Stripe
// event.
type op struct {
	tenant string
	recs   []domain.UsageRecord
	ev     *domain.PaymentEvent
}

func (o op) run(t *testing.T, f fixture) {
	t.Helper()
	if o.ev != nil {
		f.apply(t, *o.ev)
	} else {
		f.record(t, o.tenant, o.recs...)
	}
}

var propTenants = []string{"t1", "t2", "t3", "t4"}

// history generates a random history over days day0..day0+5: usage batches
// (with records repeated within and across batches, and the same job id at
// other tenants), and payments seen through charge.succeeded, invoice.paid
// and cumulative charge.refunded events, some telling a later day. Events
// name their tenant only sometimes; the rest are resolved through their
// customer, or stay held: customers of no tenant and events of neither.
// Every repeated record or event is an exact copy, as a replay is, so any
// order gives the same state.
func history(r *rand.Rand) []op {
	at := func() time.Time {
		return t0.Add(time.Duration(r.IntN(6*24*3600)) * time.Second)
	}
	var ops []op
	jobs := make(map[string][]domain.UsageRecord)
	used := make(map[string]bool) // tenant/job id
	job := 0
	for range 40 {
		tenant := propTenants[r.IntN(len(propTenants))]
		var recs []domain.UsageRecord
		for range 1 + r.IntN(12) {
			switch p := r.IntN(10); {
			case p == 0 && len(jobs[tenant]) > 0: // a job recorded before
				recs = append(recs, jobs[tenant][r.IntN(len(jobs[tenant]))])
			case p == 1 && len(recs) > 0: // twice in one batch
				recs = append(recs, recs[len(recs)-1])
			default:
				job++
				id := fmt.Sprintf("job-%d", job)
				if other := fmt.Sprintf("job-%d", 1+r.IntN(job)); p == 2 && !used[tenant+"/"+other] {
					id = other // another tenant's job id, new to this one
				}
				used[tenant+"/"+id] = true
				rec := usage(id, at(), int64(r.IntN(5000)), int64(r.IntN(2000)), int64(r.IntN(90000)))
				if r.IntN(5) == 0 {
					rec = unpriced(id, fmt.Sprintf("mystery-%d", r.IntN(3)), rec.CompletedAt, rec.InputTokens, rec.OutputTokens)
				}
				recs = append(recs, rec)
				jobs[tenant] = append(jobs[tenant], rec)
			}
		}
		ops = append(ops, op{tenant: tenant, recs: recs})
	}
	event := 0
	for p := range 50 {
		// Customers belong to one tenant each (cus-<tenant>-<n>); cus-lost
		// never gets one; "" has no customer.
		tenant := propTenants[r.IntN(len(propTenants))]
		customer := fmt.Sprintf("cus-%s-%d", tenant, r.IntN(2))
		switch r.IntN(10) {
		case 0:
			customer = "cus-lost"
		case 1:
			customer = ""
		}
		key := fmt.Sprintf("ch_%d", p)
		gross, paid := 100+int64(r.IntN(10000)), at()
		var types []string
		if r.IntN(10) > 0 {
			types = append(types, "charge.succeeded")
		}
		if r.IntN(3) == 0 {
			types = append(types, "invoice.paid")
		}
		refunded := int64(0)
		for range r.IntN(3) {
			refunded = min(gross, refunded+1+int64(r.IntN(int(gross))))
			types = append(types, "charge.refunded")
		}
		for i, typ := range types {
			event++
			ev := charge(fmt.Sprintf("evt_%d", event), typ, key, "", customer, gross, 0, paid)
			if typ == "charge.refunded" {
				ev.RefundedCents = refunded - int64(len(types)-1-i) // cumulative
				ev.RefundedCents = max(ev.RefundedCents, 1)
			}
			if r.IntN(5) == 0 { // an event telling less than the whole amount
				ev.GrossCents -= int64(r.IntN(int(gross)))
			}
			if r.IntN(5) == 0 {
				ev.At = paid.Add(time.Duration(1+r.IntN(2)) * 24 * time.Hour)
			}
			if customer != "cus-lost" && (customer == "" && r.IntN(4) > 0 || r.IntN(3) == 0) {
				ev.TenantID = tenant
			}
			ops = append(ops, op{ev: &ev})
		}
	}
	return ops
}

// TestPropertyOrderIndependent applies random histories in order to one
// database and shuffled, with replays, to another: the reports must be the
// same, add up, and agree with the raw rows.
func TestPropertyOrderIndependent(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			for _, seed := range []uint64{1, 2, 3} {
				t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
					r := rand.New(rand.NewPCG(seed, seed))
					ops := history(r)
					a, c := newFixture(t, b), newFixture(t, b)
					for _, o := range ops {
						o.run(t, a)
					}
					shuffled := slices.Clone(ops)
					for range len(ops) / 4 {
						shuffled = append(shuffled, ops[r.IntN(len(ops))])
					}
					r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
					for _, o := range shuffled {
						o.run(t, c)
					}
					checkSame(t, a, c)
					checkModel(t, a, ops)
				})
			}
		})
	}
}

func checkSame(t *testing.T, a, c fixture) {
	for _, days := range []domain.Days{around, {From: day0 + 1, To: day0 + 3}} {
		allA, allC := a.totals(t, all, days), c.totals(t, all, days)
		if allA != allC {
			t.Errorf("%v: all-tenant totals differ:\n  in order %+v\n  shuffled %+v", days, allA, allC)
		}
		if allA.JobCount == 0 || allA.RevenueCents == 0 || allA.RefundedCents == 0 || allA.UnpricedJobs == 0 {
			t.Errorf("%v: history too thin to test: %+v", days, allA)
		}
		listA, listC := a.tenantTotals(t, all, days, "", 100), c.tenantTotals(t, all, days, "", 100)
		if !slices.Equal(listA, listC) {
			t.Errorf("%v: tenant totals differ:\n  in order %+v\n  shuffled %+v", days, listA, listC)
		}
		if daysA, daysC := a.dayTotals(t, all, days), c.dayTotals(t, all, days); !slices.Equal(daysA, daysC) {
			t.Errorf("%v: day totals differ:\n  in order %+v\n  shuffled %+v", days, daysA, daysC)
		}
		if ma, mc := a.unpricedModels(t, all, days), c.unpricedModels(t, all, days); !slices.Equal(ma, mc) {
			t.Errorf("%v: unpriced models differ: %v, %v", days, ma, mc)
		}
		for _, f := range []fixture{a, c} {
			var sum, daySum domain.Totals
			for _, tt := range f.tenantTotals(t, all, days, "", 100) {
				sum = add(sum, tt.Totals)
				if own := f.totals(t, scope(tt.TenantID), days); own != tt.Totals {
					t.Errorf("%v: %s's totals %+v, in the list %+v", days, tt.TenantID, own, tt.Totals)
				}
				f.checkConsistent(t, scope(tt.TenantID), days)
			}
			for _, d := range f.dayTotals(t, all, days) {
				daySum = add(daySum, d.Totals)
			}
			every := f.totals(t, all, days)
			if sum != every || daySum != every {
				t.Errorf("%v: tenants sum to %+v, days to %+v, all tenants %+v", days, sum, daySum, every)
			}
			f.checkConsistent(t, all, days)
		}
	}
}

// checkModel compares the in-order database with totals worked out from the
// history directly: Payment.Merge per payment of the resolved tenant, each
// job once, and the allocation rule day by day.
func checkModel(t *testing.T, f fixture, ops []op) {
	t.Helper()
	owner := make(map[string]string) // customer → tenant, from metadata
	for _, o := range ops {
		if o.ev != nil && o.ev.TenantID != "" && o.ev.CustomerID != "" && owner[o.ev.CustomerID] == "" {
			owner[o.ev.CustomerID] = o.ev.TenantID
		}
	}
	want := make(map[string]domain.Totals)
	payments := make(map[[2]string]domain.Payment)
	jobs := make(map[string]map[int64]int64) // tenant → day → jobs
	seen := make(map[string]bool)
	for _, o := range ops {
		if o.ev == nil {
			for _, rec := range o.recs {
				if seen[o.tenant+"/"+rec.JobID] {
					continue
				}
				seen[o.tenant+"/"+rec.JobID] = true
				w := want[o.tenant]
				w.JobCount++
				w.InputTokens += rec.InputTokens
				w.OutputTokens += rec.OutputTokens
				if rec.Priced {
					w.AICostMicros += rec.CostMicros
				} else {
					w.UnpricedJobs++
					w.UnpricedInputTokens += rec.InputTokens
					w.UnpricedOutputTokens += rec.OutputTokens
				}
				want[o.tenant] = w
				if jobs[o.tenant] == nil {
					jobs[o.tenant] = make(map[int64]int64)
				}
				jobs[o.tenant][domain.DayOf(rec.CompletedAt)]++
			}
			continue
		}
		tenant := cmp.Or(o.ev.TenantID, owner[o.ev.CustomerID])
		if tenant == "" || seen[o.ev.EventID] {
			continue // held for good, or a replay
		}
		seen[o.ev.EventID] = true
		k := [2]string{tenant, o.ev.PaymentKey}
		payments[k] = payments[k].Merge(*o.ev)
	}
	for k, p := range payments {
		w := want[k[0]]
		w.RevenueCents += p.NetCents()
		w.RefundedCents += p.RefundCents()
		if p.Counted() {
			w.PaymentCount++
		}
		want[k[0]] = w
	}
	dayJobs := make(map[int64]int64)
	for _, byDay := range jobs {
		for day, n := range byDay {
			dayJobs[day] += n
		}
	}
	var every domain.Totals
	for _, tenant := range propTenants {
		w := want[tenant]
		for day, n := range jobs[tenant] {
			w.AllocComputeMicros += rate.ComputeMicrosPerDay * n / dayJobs[day]
			w.AllocDatabaseMicros += rate.DatabaseMicrosPerDay * n / dayJobs[day]
		}
		if got := f.totals(t, scope(tenant), around); got != w {
			t.Errorf("%s: totals %+v, model %+v", tenant, got, w)
		}
		every = add(every, w)
	}
	if got := f.totals(t, all, around); got != every {
		t.Errorf("all tenants: totals %+v, model %+v", got, every)
	}
}
