package money

import (
	"errors"
	"math"
	"strconv"
	"testing"
)

func TestCents(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want int64
		err  error
	}{
		{0, 0, nil},
		{math.Copysign(0, -1), 0, nil},
		{19.99, 1999, nil},
		{0.1, 10, nil},
		{0.29, 29, nil}, // 0.29*100 is 28.999999999999996 in floats
		{1.005, 0, ErrPrecision},
		{100, 10000, nil},
		{1e7, 1_000_000_000, nil},
		{1e7 + 0.01, 0, ErrRange},
		{1e300, 0, ErrRange},
		{-0.01, 0, ErrNegative},
		{math.NaN(), 0, ErrSyntax},
		{math.Inf(1), 0, ErrSyntax},
		{5e-324, 0, ErrPrecision},
	} {
		got, err := Cents(tc.in)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("Cents(%v) = %d, %v; want %d, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestBPSAndCommission(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want int64
		err  error
	}{
		{0.2, 2000, nil}, {0.125, 1250, nil}, {1, 10000, nil}, {0, 0, nil},
		{0.12345, 0, ErrPrecision}, {1.0001, 0, ErrRange}, {-0.1, 0, ErrNegative},
	} {
		got, err := BPS(tc.in)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("BPS(%v) = %d, %v; want %d, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
	if c := Commission(1999, 2000); c != 399 { // 399.8 rounds down
		t.Errorf("Commission(19.99, 20%%) = %d cents, want 399", c)
	}
	if c := Commission(MaxCents, BPSPerUnit); c != MaxCents {
		t.Errorf("Commission at the bounds = %d", c)
	}
}

func TestFormat(t *testing.T) {
	for cents, want := range map[int64]string{0: "0.00", 5: "0.05", 1999: "19.99", 100000: "1000.00", -250: "-2.50"} {
		if got := Format(cents); got != want {
			t.Errorf("Format(%d) = %q, want %q", cents, got, want)
		}
	}
}

// FuzzCents: every accepted amount is in range and is the cents the float
// shows; every amount with at most two decimals in range is accepted.
func FuzzCents(f *testing.F) {
	for _, v := range []float64{0, 0.01, 19.99, 0.29, 1.005, 1e7, -1, math.MaxFloat64} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v float64) {
		c, err := Cents(v)
		if err != nil {
			if c != 0 {
				t.Fatalf("Cents(%v) = %d with error %v", v, c, err)
			}
			return
		}
		if c < 0 || c > MaxCents {
			t.Fatalf("Cents(%v) = %d out of range", v, c)
		}
		if back, _ := strconv.ParseFloat(Format(c), 64); back != v && !(v == 0 && back == 0) {
			t.Fatalf("Cents(%v) = %d, which shows as %s", v, c, Format(c))
		}
	})
}
