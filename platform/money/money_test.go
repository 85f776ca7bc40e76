package money_test

import (
	"errors"
	"math"
	"math/big"
	"regexp"
	"strings"
	"testing"

	"github.com/echopilot/echopilot/platform/money"
)

// maxMicros is finops' bound on a price: $1,000,000,000.
const maxMicros = 1_000_000_000_000_000

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in    string
		scale money.Scale
		max   int64
		want  int64
		kind  error  // nil for success
		msg   string // substring of the error
	}{
		// Micro-dollars (finops prices and rate card).
		{in: "0.50", scale: money.Micros, max: maxMicros, want: 500_000},
		{in: "0.1", scale: money.Micros, max: maxMicros, want: 100_000},
		{in: "12", scale: money.Micros, max: maxMicros, want: 12_000_000},
		{in: "0.000001", scale: money.Micros, max: maxMicros, want: 1},
		{in: "0.000150", scale: money.Micros, max: maxMicros, want: 150},
		{in: "0", scale: money.Micros, max: maxMicros, want: 0},
		{in: "007.5", scale: money.Micros, max: maxMicros, want: 7_500_000},
		{in: "1000000000", scale: money.Micros, max: maxMicros, want: maxMicros},
		{in: "1000000000.000000", scale: money.Micros, max: maxMicros, want: maxMicros},
		{in: "0.0000001", scale: money.Micros, max: maxMicros, kind: money.ErrPrecision, msg: `amount "0.0000001": more than 6 fraction digits`},
		{in: "0.500000000", scale: money.Micros, max: maxMicros, kind: money.ErrPrecision, msg: "fraction digits"},
		{in: "-1", scale: money.Micros, max: maxMicros, kind: money.ErrNegative, msg: `amount "-1": negative`},
		{in: "+1", scale: money.Micros, max: maxMicros, kind: money.ErrSyntax, msg: "plain decimal (digits and one '.'): no sign"},
		{in: "1e3", scale: money.Micros, max: maxMicros, kind: money.ErrSyntax, msg: "no exponent"},
		{in: "1.5E-3", scale: money.Micros, max: maxMicros, kind: money.ErrSyntax, msg: "no exponent"},
		{in: "", scale: money.Micros, max: maxMicros, kind: money.ErrSyntax, msg: "amount is empty"},
		{in: ".5", scale: money.Micros, max: maxMicros, kind: money.ErrSyntax, msg: "before the decimal point"},
		{in: "5.", scale: money.Micros, max: maxMicros, kind: money.ErrSyntax, msg: "after the decimal point"},
		{in: ".", scale: money.Micros, max: maxMicros, kind: money.ErrSyntax, msg: "before the decimal point"},
		{in: " 1", scale: money.Micros, max: maxMicros, kind: money.ErrSyntax, msg: `unexpected ' ' at byte 0`},
		{in: "1 ", scale: money.Micros, max: maxMicros, kind: money.ErrSyntax, msg: `unexpected ' ' at byte 1`},
		{in: "1,000", scale: money.Micros, max: maxMicros, kind: money.ErrSyntax, msg: `unexpected ',' at byte 1`},
		{in: "1.2.3", scale: money.Micros, max: maxMicros, kind: money.ErrSyntax, msg: `unexpected '.' at byte 3`},
		{in: "0x10", scale: money.Micros, max: maxMicros, kind: money.ErrSyntax, msg: "plain decimal"},
		{in: "1_000", scale: money.Micros, max: maxMicros, kind: money.ErrSyntax, msg: "plain decimal"},
		{in: "1€", scale: money.Micros, max: maxMicros, kind: money.ErrSyntax, msg: `unexpected '€' at byte 1`},
		{in: "NaN", scale: money.Micros, max: maxMicros, kind: money.ErrSyntax, msg: "NaN and infinities"},
		{in: "-Inf", scale: money.Micros, max: maxMicros, kind: money.ErrSyntax, msg: "NaN and infinities"},
		{in: "infinity", scale: money.Micros, max: maxMicros, kind: money.ErrSyntax, msg: "NaN and infinities"},
		{in: "1000000000.000001", scale: money.Micros, max: maxMicros, kind: money.ErrRange, msg: "over the maximum of 1000000000"},
		{in: "1000000001", scale: money.Micros, max: maxMicros, kind: money.ErrRange, msg: "maximum"},
		{in: "99999999999999999999999999", scale: money.Micros, max: maxMicros, kind: money.ErrRange, msg: "maximum"},
		{in: strings.Repeat("0", 33), scale: money.Micros, max: maxMicros, kind: money.ErrRange, msg: "more than 32 digits before"},

		// Basis points (growth's commission rates).
		{in: "0.20", scale: money.BasisPoints, max: 10_000, want: 2000},
		{in: "0.2", scale: money.BasisPoints, max: 10_000, want: 2000},
		{in: "1", scale: money.BasisPoints, max: 10_000, want: 10_000},
		{in: "00.5000", scale: money.BasisPoints, max: 10_000, want: 5000},
		{in: "", scale: money.BasisPoints, max: 10_000, kind: money.ErrSyntax},
		{in: ".5", scale: money.BasisPoints, max: 10_000, kind: money.ErrSyntax},
		{in: "5.", scale: money.BasisPoints, max: 10_000, kind: money.ErrSyntax},
		{in: "1e-1", scale: money.BasisPoints, max: 10_000, kind: money.ErrSyntax},
		{in: " 0.2", scale: money.BasisPoints, max: 10_000, kind: money.ErrSyntax},
		{in: "+0.2", scale: money.BasisPoints, max: 10_000, kind: money.ErrSyntax},
		{in: "-0.2", scale: money.BasisPoints, max: 10_000, kind: money.ErrNegative},
		{in: "0.00001", scale: money.BasisPoints, max: 10_000, kind: money.ErrPrecision},
		{in: "2", scale: money.BasisPoints, max: 10_000, kind: money.ErrRange, msg: "over the maximum of 1"},
		{in: "9999999999999999999999", scale: money.BasisPoints, max: 10_000, kind: money.ErrRange},

		// Cents, and the int64 edges.
		{in: "19.99", scale: money.Cents, max: math.MaxInt64, want: 1999},
		{in: "92233720368547758.07", scale: money.Cents, max: math.MaxInt64, want: math.MaxInt64},
		{in: "92233720368547758.08", scale: money.Cents, max: math.MaxInt64, kind: money.ErrRange},
		{in: "9223372036854775807", scale: money.Units, max: math.MaxInt64, want: math.MaxInt64},
		{in: "9223372036854775808", scale: money.Units, max: math.MaxInt64, kind: money.ErrRange},
		{in: "1.5", scale: money.Units, max: math.MaxInt64, kind: money.ErrPrecision, msg: "more than 0 fraction digits"},
		{in: "9.223372036854775807", scale: money.MaxScale, max: math.MaxInt64, want: math.MaxInt64},
		{in: "9.223372036854775808", scale: money.MaxScale, max: math.MaxInt64, kind: money.ErrRange},
		{in: "0", scale: money.Cents, max: 0, want: 0},
		{in: "0.01", scale: money.Cents, max: 0, kind: money.ErrRange, msg: "over the maximum of 0"},
		{in: strings.Repeat("1", 100), scale: money.Cents, max: 0, kind: money.ErrRange, msg: `amount "1111111111111111111111111111111111111111…"`},
	} {
		got, err := money.Parse(tc.in, tc.scale, tc.max)
		switch {
		case tc.kind == nil && (err != nil || got != tc.want):
			t.Errorf("Parse(%q, %d) = %d, %v; want %d", tc.in, tc.scale, got, err, tc.want)
		case tc.kind != nil && (got != 0 || !errors.Is(err, tc.kind)):
			t.Errorf("Parse(%q, %d) = %d, %v; want an error of kind %v", tc.in, tc.scale, got, err, tc.kind)
		case tc.kind != nil && !strings.Contains(err.Error(), tc.msg):
			t.Errorf("Parse(%q, %d) error %q, want it to mention %q", tc.in, tc.scale, err, tc.msg)
		}
		if me, ok := errors.AsType[*money.Error](err); err != nil && !ok {
			t.Errorf("Parse(%q): error %T is not a *money.Error", tc.in, err)
		} else if ok && me.Detail == "" {
			t.Errorf("Parse(%q): error %v has no detail", tc.in, err)
		}
	}
}

func TestParsePanicsOnBadScale(t *testing.T) {
	for _, s := range []money.Scale{-1, money.MaxScale + 1} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Parse at scale %d did not panic", s)
				}
			}()
			money.Parse("1", s, 1)
		}()
	}
}

func TestFromFloat(t *testing.T) {
	for _, tc := range []struct {
		in    float64
		scale money.Scale
		max   int64
		want  int64
		kind  error
	}{
		{0, money.Cents, 1e9, 0, nil},
		{math.Copysign(0, -1), money.Cents, 1e9, 0, nil},
		{19.99, money.Cents, 1e9, 1999, nil},
		{0.1, money.Cents, 1e9, 10, nil},
		{0.29, money.Cents, 1e9, 29, nil}, // 0.29*100 is 28.999999999999996 in floats
		{1.005, money.Cents, 1e9, 0, money.ErrPrecision},
		{1e7, money.Cents, 1e9, 1e9, nil},
		{1e7 + 0.01, money.Cents, 1e9, 0, money.ErrRange},
		{1e300, money.Cents, 1e9, 0, money.ErrRange},
		{math.MaxFloat64, money.Cents, math.MaxInt64, 0, money.ErrRange},
		{-0.01, money.Cents, 1e9, 0, money.ErrNegative},
		{math.NaN(), money.Cents, 1e9, 0, money.ErrSyntax},
		{math.Inf(1), money.Cents, 1e9, 0, money.ErrSyntax},
		{math.Inf(-1), money.Cents, 1e9, 0, money.ErrSyntax},
		{5e-324, money.Cents, 1e9, 0, money.ErrPrecision},
		{0.125, money.BasisPoints, 10_000, 1250, nil},
		{1.0001, money.BasisPoints, 10_000, 0, money.ErrRange},
		{0.00015, money.Micros, 1e15, 150, nil},
	} {
		got, err := money.FromFloat(tc.in, tc.scale, tc.max)
		if got != tc.want || !errors.Is(err, tc.kind) || (err == nil) != (tc.kind == nil) {
			t.Errorf("FromFloat(%v, %d) = %d, %v; want %d, %v", tc.in, tc.scale, got, err, tc.want, tc.kind)
		}
	}
	if _, err := money.FromFloat(-2.5, money.Cents, 1e9); err == nil || err.Error() != `amount "-2.5": negative amounts are not accepted` {
		t.Errorf("FromFloat(-2.5) error %v", err)
	}
	if _, err := money.FromFloat(1e300, money.Cents, 1e9); err == nil || err.Error() != `amount "1e+300": over the maximum of 10000000` {
		t.Errorf("FromFloat(1e300) error %v", err)
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		in    int64
		scale money.Scale
		min   int
		want  string
	}{
		// Growth: cents with two decimals (payouts CSV).
		{0, money.Cents, 2, "0.00"},
		{5, money.Cents, 2, "0.05"},
		{1999, money.Cents, 2, "19.99"},
		{100000, money.Cents, 2, "1000.00"},
		{-250, money.Cents, 2, "-2.50"},
		{18638, money.Cents, 2, "186.38"},
		{1_000_000_000, money.Cents, 2, "10000000.00"},
		// Finops: micro-dollars, trimmed to at least two decimals (FOCUS CSV).
		{500_000, money.Micros, 2, "0.50"},
		{0, money.Micros, 2, "0.00"},
		{1, money.Micros, 2, "0.000001"},
		{150, money.Micros, 2, "0.00015"},
		{100_000, money.Micros, 2, "0.10"},
		{180_000, money.Micros, 2, "0.18"},
		{1_230_000, money.Micros, 2, "1.23"},
		{1_234_500, money.Micros, 2, "1.2345"},
		{12_000_000, money.Micros, 2, "12.00"},
		{-500_000, money.Micros, 2, "-0.50"},
		{-1, money.Micros, 2, "-0.000001"},
		{math.MaxInt64, money.Micros, 2, "9223372036854.775807"},
		{math.MinInt64, money.Micros, 2, "-9223372036854.775808"},
		// Other minimums and scales.
		{12_000_000, money.Micros, 0, "12"},
		{12_500_000, money.Micros, 0, "12.5"},
		{12_500_000, money.Micros, 6, "12.500000"},
		{12_500_000, money.Micros, 9, "12.500000"},
		{12_500_000, money.Micros, -1, "12.5"},
		{2000, money.BasisPoints, 0, "0.2"},
		{42, money.Units, 2, "42"},
		{math.MinInt64, money.Units, 0, "-9223372036854775808"},
		{math.MaxInt64, money.MaxScale, 0, "9.223372036854775807"},
		{1, money.MaxScale, 2, "0.000000000000000001"},
	} {
		if got := money.Format(tc.in, tc.scale, tc.min); got != tc.want {
			t.Errorf("Format(%d, %d, %d) = %q, want %q", tc.in, tc.scale, tc.min, got, tc.want)
		}
	}
}

// plainDecimal is the grammar of the package comment, as an independent
// oracle (fraction digits checked against the scale separately).
var plainDecimal = regexp.MustCompile(`^[0-9]{1,32}(\.[0-9]+)?$`)

// FuzzParse: Parse accepts exactly the grammar within the scale and max,
// the value is exactly the decimal written, every error is a *money.Error
// of one kind, and Parse∘Format round-trips.
func FuzzParse(f *testing.F) {
	f.Add("0.50", uint8(6), int64(maxMicros))
	f.Add("19.99", uint8(2), int64(1_000_000_000))
	f.Add("0.2", uint8(4), int64(10_000))
	f.Fuzz(func(t *testing.T, s string, sc uint8, max int64) {
		scale := money.Scale(sc % uint8(money.MaxScale+1))
		if max < 0 {
			max = -(max + 1)
		}
		v, err := money.Parse(s, scale, max)

		want := false
		exact := new(big.Rat)
		if m := plainDecimal.FindStringSubmatch(s); m != nil && len(m[1]) <= int(scale)+1 {
			exact.SetString(s)
			exact.Mul(exact, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil)))
			want = exact.Cmp(new(big.Rat).SetInt64(max)) <= 0
		}
		if (err == nil) != want {
			t.Fatalf("Parse(%q, %d, %d) = %d, %v; want accepted=%v", s, scale, max, v, err, want)
		}
		if err != nil {
			me, ok := errors.AsType[*money.Error](err)
			if !ok || v != 0 || me.Detail == "" {
				t.Fatalf("Parse(%q) = %d, %#v", s, v, err)
			}
			kinds := 0
			for _, k := range []error{money.ErrSyntax, money.ErrNegative, money.ErrPrecision, money.ErrRange} {
				if errors.Is(err, k) {
					kinds++
				}
			}
			if kinds != 1 {
				t.Fatalf("Parse(%q) error %v is of %d kinds", s, err, kinds)
			}
			return
		}
		if exact.Cmp(new(big.Rat).SetInt64(v)) != 0 {
			t.Fatalf("Parse(%q, %d) = %d, not the exact value", s, scale, v)
		}
		for _, minDec := range []int{0, 2, int(scale)} {
			text := money.Format(v, scale, minDec)
			back, err := money.Parse(text, scale, max)
			if err != nil || back != v {
				t.Fatalf("Parse(Format(%d, %d, %d) = %q) = %d, %v", v, scale, minDec, text, back, err)
			}
		}
	})
}

// FuzzFormat: Format∘Parse round-trips for every int64, at every scale and
// minimum of decimals, and the text has the documented shape.
func FuzzFormat(f *testing.F) {
	f.Add(int64(1999), uint8(2), uint8(2))
	f.Add(int64(150), uint8(6), uint8(2))
	f.Add(int64(math.MinInt64), uint8(6), uint8(2))
	f.Fuzz(func(t *testing.T, v int64, sc, minDec uint8) {
		scale := money.Scale(sc % uint8(money.MaxScale+1))
		text := money.Format(v, scale, int(minDec))
		digits := strings.TrimPrefix(text, "-")
		if (digits != text) != (v < 0) {
			t.Fatalf("Format(%d) = %q: sign", v, text)
		}
		minEff := min(int(minDec), int(scale))
		_, frac, ok := strings.Cut(digits, ".")
		if len(frac) < minEff || len(frac) > int(scale) || ok && frac == "" ||
			len(frac) > minEff && strings.HasSuffix(frac, "0") {
			t.Fatalf("Format(%d, %d, %d) = %q: decimals", v, scale, minDec, text)
		}
		back, err := money.Parse(digits, scale, math.MaxInt64)
		if v == math.MinInt64 {
			// -v does not fit: its digits are one past the maximum.
			if !errors.Is(err, money.ErrRange) {
				t.Fatalf("Parse(%q) = %d, %v; want ErrRange", digits, back, err)
			}
			return
		}
		if err != nil || back != max(v, -v) {
			t.Fatalf("Parse(Format(%d, %d, %d) = %q) = %d, %v", v, scale, minDec, text, back, err)
		}
		if v < 0 {
			if _, err := money.Parse(text, scale, math.MaxInt64); !errors.Is(err, money.ErrNegative) {
				t.Fatalf("Parse(%q) error %v, want ErrNegative", text, err)
			}
		}
	})
}
