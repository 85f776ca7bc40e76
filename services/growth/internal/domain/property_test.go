package domain_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/growth/internal/domain"
)

const propTenant = "acme"

// propReferrers are created in this order in every run, so every run has
// the same codes; the last campaign has a rate of its own.
var propReferrers = []struct{ referrer, campaign string }{
	{"ann", "default"}, {"bob", "default"}, {"cy", "spring"}, {"dee", "spring"},
	{"eve", "default"}, {"ann", "spring"}, {"=cmd|' /C calc'!A0", "default"},
}

// history is a random stream of events over the last 40 days: clicks,
// signups, conversions (some by the referrer itself), refunds (partial,
// whole, over-refunds, some of conversions that come later, some of
// conversions that never come) and exact replays. Codes are typed the way
// people type them (lower case, with a hyphen). Every copy of an event is
// identical, as a replay is.
func history(r *rand.Rand, codes []string) []domain.EventInput {
	var evs, conversions []domain.EventInput
	typed := func(c string) string {
		if r.IntN(2) == 0 {
			return strings.ToLower(c[:4]) + "-" + c[4:]
		}
		return c
	}
	for i := range 160 {
		k := r.IntN(len(codes))
		c, referrer := codes[k], propReferrers[k].referrer
		when := at(time.Duration(r.IntN(40*24)) * time.Hour)
		id := fmt.Sprintf("ev-%03d", i)
		var e domain.EventInput
		switch p := r.IntN(20); {
		case p < 7:
			e = domain.EventInput{Code: typed(c), Type: "click", ID: id, OccurredAt: when}
		case p < 11:
			e = domain.EventInput{Code: typed(c), Type: "signup", ID: id, CustomerID: fmt.Sprintf("cust-%d", r.IntN(30)), OccurredAt: when}
		case p < 16:
			customer := fmt.Sprintf("cust-%d", r.IntN(30))
			if r.IntN(6) == 0 {
				customer = referrer
			}
			e = domain.EventInput{Code: typed(c), Type: "conversion", ID: id, CustomerID: customer,
				Revenue: float64(r.IntN(50000)) / 100, OccurredAt: when}
			conversions = append(conversions, e)
		default:
			of := fmt.Sprintf("ev-%03d", r.IntN(160)) // perhaps a later conversion, perhaps none
			if len(conversions) > 0 && r.IntN(2) == 0 {
				of = conversions[r.IntN(len(conversions))].ID
			}
			e = domain.EventInput{Type: "refund", ID: id, RefundOf: of, Revenue: float64(r.IntN(30000)) / 100, OccurredAt: when}
		}
		evs = append(evs, e)
		if r.IntN(8) == 0 {
			evs = append(evs, e) // a replay
		}
	}
	return evs
}

// apply records evs in batches of 1 to 5.
func apply(t *testing.T, svc *domain.Service, r *rand.Rand, evs []domain.EventInput) {
	t.Helper()
	for len(evs) > 0 {
		n := min(len(evs), 1+r.IntN(5))
		record(t, svc, propTenant, evs[:n]...)
		evs = evs[n:]
	}
}

// report is everything the service shows of the tenant's referrals.
func report(t *testing.T, svc *domain.Service) []byte {
	t.Helper()
	var out bytes.Buffer
	for _, q := range []domain.StatsQuery{
		{Days: 7}, {Days: 30}, {Days: 30, Filter: domain.Filter{Campaign: "spring"}},
		{Days: 30, Filter: domain.Filter{ReferrerID: "ann"}},
	} {
		out.Write(statsJSON(t, svc, propTenant, q))
		out.WriteByte('\n')
	}
	for _, days := range []int32{7, 30} {
		for _, minPayout := range []float64{0, 5} {
			out.Write(exportCSV(t, svc, propTenant, days, minPayout))
		}
	}
	return out.Bytes()
}

// The same events in any order, in any batches, replayed or not, give the
// same stats and the same CSV bytes, on SQLite and on PostgreSQL alike.
func TestAnyOrderSameReport(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			var want []byte
			for _, b := range storetest.Backends() {
				for run := range 3 {
					t.Run(fmt.Sprintf("%s/order%d", b.Name, run), func(t *testing.T) {
						svc := newService(t, b)
						rate := 0.15
						if _, err := svc.PutCampaign(t.Context(), domain.Caller{Tenant: propTenant}, domain.CampaignUpdate{Name: "spring", Rate: &rate}); err != nil {
							t.Fatal(err)
						}
						codes := make([]string, len(propReferrers))
						for i, p := range propReferrers {
							codes[i] = create(t, svc, propTenant, p.referrer, p.campaign)
						}
						r := rand.New(rand.NewPCG(seed, 0))
						evs := history(r, codes)
						order := rand.New(rand.NewPCG(seed, uint64(run)+1))
						switch run {
						case 1:
							for i, j := 0, len(evs)-1; i < j; i, j = i+1, j-1 {
								evs[i], evs[j] = evs[j], evs[i]
							}
						case 2:
							order.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
							evs = append(evs, evs[:len(evs)/3]...) // replay a third again
						}
						apply(t, svc, order, evs)
						got := report(t, svc)
						if want == nil {
							want = got
							checkNonTrivial(t, svc)
							return
						}
						if !bytes.Equal(got, want) {
							t.Fatalf("report differs from the first run's\n got %s\nwant %s", got, want)
						}
					})
				}
			}
		})
	}
}

// checkNonTrivial makes sure the history exercised what it should.
func checkNonTrivial(t *testing.T, svc *domain.Service) {
	t.Helper()
	st, err := svc.Stats(t.Context(), domain.Caller{Tenant: propTenant}, domain.StatsQuery{Days: 366})
	if err != nil {
		t.Fatal(err)
	}
	c := st.Totals
	if c.Clicks == 0 || c.Signups == 0 || c.Conversions == 0 || c.SelfReferrals == 0 || c.RefundedCents == 0 || c.PayoutCents == 0 {
		t.Fatalf("history too thin: %+v", c)
	}
}
