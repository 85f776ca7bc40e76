package pricing_test

import (
	"math"
	"math/big"
	"regexp"
	"strings"
	"testing"

	"github.com/echopilot/echopilot/services/finops/internal/pricing"
)

func TestParseMicros(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  string // substring of the error; "" for success
	}{
		{in: "0.50", want: 500_000},
		{in: "0.1", want: 100_000},
		{in: "12", want: 12_000_000},
		{in: "0.000001", want: 1},
		{in: "0.000150", want: 150},
		{in: "0", want: 0},
		{in: "007.5", want: 7_500_000},
		{in: "1000000000", want: pricing.MaxMicros},
		{in: "1000000000.000000", want: pricing.MaxMicros},
		{in: "0.0000001", err: "fraction digits"},
		{in: "0.500000000", err: "fraction digits"},
		{in: "-1", err: "plain decimal"},
		{in: "+1", err: "plain decimal"},
		{in: "1e3", err: "plain decimal"},
		{in: "", err: "empty"},
		{in: ".5", err: "before the decimal point"},
		{in: "5.", err: "after the decimal point"},
		{in: ".", err: "before the decimal point"},
		{in: " 1", err: "plain decimal"},
		{in: "1 ", err: "plain decimal"},
		{in: "1,000", err: "plain decimal"},
		{in: "1.2.3", err: "plain decimal"},
		{in: "0x10", err: "plain decimal"},
		{in: "1_000", err: "plain decimal"},
		{in: "1000000000.000001", err: "maximum"},
		{in: "1000000001", err: "maximum"},
		{in: "99999999999999999999999999", err: "maximum"},
	} {
		got, err := pricing.ParseMicros(tc.in)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("ParseMicros(%q): %v", tc.in, err)
		case tc.err == "" && got != tc.want:
			t.Errorf("ParseMicros(%q) = %d, want %d", tc.in, got, tc.want)
		case tc.err != "" && err == nil:
			t.Errorf("ParseMicros(%q) = %d, want an error", tc.in, got)
		case tc.err != "" && !strings.Contains(err.Error(), tc.err):
			t.Errorf("ParseMicros(%q) error %q, want it to mention %q", tc.in, err, tc.err)
		}
	}
}

func TestFormatMicros(t *testing.T) {
	for _, tc := range []struct {
		in   int64
		want string
	}{
		{500_000, "0.50"},
		{0, "0.00"},
		{1, "0.000001"},
		{150, "0.00015"},
		{100_000, "0.10"},
		{1_230_000, "1.23"},
		{1_234_500, "1.2345"},
		{12_000_000, "12.00"},
		{-500_000, "-0.50"},
		{-1, "-0.000001"},
		{math.MaxInt64, "9223372036854.775807"},
		{math.MinInt64, "-9223372036854.775808"},
	} {
		if got := pricing.FormatMicros(tc.in); got != tc.want {
			t.Errorf("FormatMicros(%d) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// plainDecimal is the grammar ParseMicros documents, as an independent oracle.
var plainDecimal = regexp.MustCompile(`^[0-9]+(\.[0-9]{1,6})?$`)

func FuzzParseMicros(f *testing.F) {
	for _, s := range []string{"0.50", "12", ".5", "1e3", "1000000000", "-0.000001"} {
		f.Add(s)
	}
	million := big.NewRat(1_000_000, 1)
	maxRat := new(big.Rat).SetInt64(pricing.MaxMicros)
	f.Fuzz(func(t *testing.T, s string) {
		v, err := pricing.ParseMicros(s)

		// Accepted exactly when the grammar matches and the value is in range.
		want := false
		if plainDecimal.MatchString(s) {
			r, _ := new(big.Rat).SetString(s)
			want = r.Mul(r, million).Cmp(maxRat) <= 0
		}
		if (err == nil) != want {
			t.Fatalf("ParseMicros(%q) = %d, %v; want accepted=%v", s, v, err, want)
		}
		if err != nil {
			return
		}

		// The value is exactly the decimal written, in micro-dollars.
		r, ok := new(big.Rat).SetString(s)
		if !ok || r.Mul(r, million).Cmp(new(big.Rat).SetInt64(v)) != 0 {
			t.Fatalf("ParseMicros(%q) = %d, not the exact value", s, v)
		}
		// And it survives a round trip through FormatMicros.
		text := pricing.FormatMicros(v)
		back, err := pricing.ParseMicros(text)
		if err != nil || back != v {
			t.Fatalf("ParseMicros(FormatMicros(%d) = %q) = %d, %v", v, text, back, err)
		}
	})
}
