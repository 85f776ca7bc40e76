package domain_test

import (
	"math"
	"testing"
	"time"

	"github.com/echopilot/echopilot/services/finops/internal/domain"
)

func TestDollarsRoundsToCents(t *testing.T) {
	for _, c := range []struct {
		micros int64
		want   float64
	}{
		{0, 0}, {4_200_000, 4.2}, {4_999, 0}, {5_000, 0.01}, {-5_000, -0.01}, {-4_999, 0},
		{123_456_789, 123.46}, {math.MaxInt64, 9223372036854.78}, {math.MinInt64 + 1, -9223372036854.78},
	} {
		if got := domain.Dollars(c.micros); got != c.want {
			t.Errorf("Dollars(%d) = %v, want %v", c.micros, got, c.want)
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
