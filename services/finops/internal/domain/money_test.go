package domain_test

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/echopilot/echopilot/services/finops/internal/domain"
)

// Dollars keeps micro-dollars: JSON shows at most six decimals, so a cost
// below a cent (three gpt-4o-mini jobs: $0.00135) does not vanish.
func TestDollarsKeepsMicros(t *testing.T) {
	for _, c := range []struct {
		micros int64
		want   float64
		json   string
	}{
		{0, 0, "0"}, {4_200_000, 4.2, "4.2"}, {1_350, 0.00135, "0.00135"}, {1, 0.000001, "0.000001"},
		{-4_999, -0.004999, "-0.004999"}, {123_456_789, 123.456789, "123.456789"},
		{199_999, 0.199999, "0.199999"}, {98_600_001, 98.600001, "98.600001"},
		{math.MaxInt64, 9223372036854.775807, "9223372036854.775"},
	} {
		got := domain.Dollars(c.micros)
		b, _ := json.Marshal(got)
		if got != c.want || string(b) != c.json {
			t.Errorf("Dollars(%d) = %v (JSON %s), want %v (%s)", c.micros, got, b, c.want, c.json)
		}
	}
}

// No ratio is ever NaN or Inf, whatever the inputs: zero denominators give
// 0, as the seed's sample shows for margin without revenue.
func TestPercentNeverNaNOrInf(t *testing.T) {
	vals := []int64{0, 1, -1, 3, 4_200_000, math.MaxInt64, math.MinInt64}
	for _, n := range vals {
		for _, d := range vals {
			if p := domain.Percent(n, d); math.IsNaN(p) || math.IsInf(p, 0) {
				t.Errorf("Percent(%d, %d) = %v", n, d, p)
			}
		}
	}
	p := domain.NewProfit(0, 4_200_000)
	if p.MarginPct() != 0 || p.ROI() != -100 || domain.Dollars(p.ProfitMicros()) != -4.2 {
		t.Errorf("seed sample: margin %v, roi %v, profit %v", p.MarginPct(), p.ROI(), domain.Dollars(p.ProfitMicros()))
	}
	if got := domain.Percent(1, 3); got != 33.33 {
		t.Errorf("Percent(1, 3) = %v, want 33.33", got)
	}
}

// Merging is order-independent and idempotent: every permutation of the
// events of one payment, with repeats, gives the same payment.
func TestPaymentMergeCommutes(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	evs := []domain.PaymentEvent{
		{PaymentKey: "ch_1", Currency: "usd", GrossCents: 1000, At: at.Add(time.Hour)},
		{PaymentKey: "ch_1", Currency: "usd", GrossCents: 1000, RefundedCents: 300, At: at.Add(2 * time.Hour)},
		{PaymentKey: "ch_1", Currency: "usd", GrossCents: 1000, At: at},
		{PaymentKey: "ch_1", Currency: "usd", GrossCents: 1000, RefundedCents: 1000, At: at.Add(3 * time.Hour)},
	}
	want := domain.Payment{}
	for _, e := range evs {
		want = want.Merge(e)
	}
	if want.NetCents() != 0 || want.RefundCents() != 1000 || want.Counted() || !want.PaidAt.Equal(at) {
		t.Fatalf("merged = %+v", want)
	}
	for _, order := range [][]int{{3, 2, 1, 0}, {1, 3, 0, 2, 1}, {2, 2, 0, 3, 1, 3}} {
		got := domain.Payment{}
		for _, i := range order {
			got = got.Merge(evs[i])
		}
		if got != want {
			t.Errorf("order %v: %+v, want %+v", order, got, want)
		}
	}
}

func TestLastDays(t *testing.T) {
	now := time.Date(2026, 11, 29, 23, 59, 0, 0, time.UTC)
	d := domain.LastDays(now, 7)
	if d.Len() != 7 || domain.DayStart(d.To) != time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC) ||
		domain.DayStart(d.From) != time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC) {
		t.Fatalf("LastDays = %+v", d)
	}
}
