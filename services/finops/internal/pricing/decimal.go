package pricing

import (
	"errors"
	"fmt"
	"strings"

	"github.com/echopilot/echopilot/services/finops/internal/domain"
)

// MaxMicros is the largest amount ParseMicros accepts: $1,000,000,000. It
// keeps every parsed amount far from int64 overflow when summed.
const MaxMicros = 1_000_000_000 * domain.MicrosPerDollar

// fracDigits is the precision of a micro-dollar.
const fracDigits = 6

// ParseMicros parses an exact decimal dollar amount into micro-dollars.
//
// The grammar is digits, optionally followed by "." and 1 to 6 digits:
// "12", "0.50", "0.000150". Anything else is an error rather than a guess,
// because a config typo must not silently change a price: more than 6
// fraction digits (never rounded), a sign, an exponent, spaces, thousands
// separators, and a bare "." at either end (".5", "5."). Leading zeros are
// harmless and accepted. The value is at most MaxMicros.
func ParseMicros(s string) (int64, error) {
	if s == "" {
		return 0, errors.New("amount is empty")
	}
	whole, frac, hasPoint := strings.Cut(s, ".")
	if whole == "" {
		return 0, fmt.Errorf("amount %q: want digits before the decimal point", s)
	}
	if hasPoint && frac == "" {
		return 0, fmt.Errorf("amount %q: want digits after the decimal point", s)
	}
	if len(frac) > fracDigits {
		return 0, fmt.Errorf("amount %q: more than %d fraction digits", s, fracDigits)
	}
	var v int64
	for _, c := range []byte(whole) {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("amount %q: not a plain decimal (digits and one '.')", s)
		}
		v = v*10 + int64(c-'0')
		// Checked per digit so a long run of digits cannot overflow: v stays
		// below MaxMicros/1e6 before the multiply, far inside int64.
		if v > MaxMicros/domain.MicrosPerDollar {
			return 0, errOverMax(s)
		}
	}
	f := int64(0)
	for i := range fracDigits {
		f *= 10
		if i < len(frac) {
			c := frac[i]
			if c < '0' || c > '9' {
				return 0, fmt.Errorf("amount %q: not a plain decimal (digits and one '.')", s)
			}
			f += int64(c - '0')
		}
	}
	v = v*domain.MicrosPerDollar + f
	if v > MaxMicros {
		return 0, errOverMax(s)
	}
	return v, nil
}

func errOverMax(s string) error {
	return fmt.Errorf("amount %q: over the maximum of $%s", s, FormatMicros(MaxMicros))
}

// FormatMicros formats micro-dollars as an exact decimal dollar amount:
// trailing fraction zeros trimmed, but at least two decimals kept so it
// reads as money (500000 -> "0.50", 1 -> "0.000001", 12000000 -> "12.00").
// Negative amounts get a leading "-". ParseMicros reads back every
// non-negative result.
func FormatMicros(m int64) string { return domain.FormatMicros(m) }
