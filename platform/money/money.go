// Package money reads and writes exact decimal amounts as integers: an
// amount is a count of minor units of an explicit Scale (Cents: 1/100,
// BasisPoints: 1/10,000, Micros: 1/1,000,000 for per-token prices), so no
// float arithmetic ever touches money.
//
// Parse reads the plain decimal grammar the services take in strings
// (config, price files): digits, optionally followed by "." and 1 to scale
// digits, e.g. "12", "0.50", "0.000150". Anything else is an error rather
// than a guess, because a typo must not silently change an amount: a sign,
// an exponent, NaN or infinities, spaces, digit separators, a bare "." at
// either end (".5", "5."), more fraction digits than the scale (never
// rounded, even zeros), more than MaxWholeDigits digits before the point,
// and a value above the caller's maximum. Leading zeros are accepted.
// FromFloat reads a JSON number by the same rules, and Format writes an
// amount back as the decimal the services' CSV and messages show.
//
// Every error is an *Error, which names the input and what is wrong with it
// and wraps one of ErrSyntax, ErrNegative, ErrPrecision or ErrRange, so a
// service maps those to its own error reasons.
package money

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Scale is the number of decimals of a minor unit: an amount v at scale s
// is v × 10^-s.
type Scale int

// The scales the services use.
const (
	Units       Scale = 0
	Cents       Scale = 2 // dollars as cents
	BasisPoints Scale = 4 // rates as 1/10,000
	Micros      Scale = 6 // micro-dollars, e.g. prices per token
	// MaxScale is the finest scale: 10^18 still fits an int64.
	MaxScale Scale = 18
)

// MaxWholeDigits bounds the digits before the decimal point, leading zeros
// included: any int64 has 19, so more is a typo (and is not scanned).
const MaxWholeDigits = 32

// The kinds of error, wrapped by every *Error.
var (
	ErrSyntax    = errors.New("not a decimal number")
	ErrNegative  = errors.New("negative")
	ErrPrecision = errors.New("too many decimals")
	ErrRange     = errors.New("out of range")
)

// Error is a rejected amount.
type Error struct {
	// Input is the text read (for FromFloat, the float's shortest decimal
	// form), clipped to 40 bytes.
	Input string
	// Err is the kind: ErrSyntax, ErrNegative, ErrPrecision or ErrRange.
	Err error
	// Detail says what is wrong, e.g. "more than 2 fraction digits".
	Detail string
}

func (e *Error) Error() string {
	if e.Input == "" {
		return "amount is empty"
	}
	return fmt.Sprintf("amount %q: %s", e.Input, e.Detail)
}

func (e *Error) Unwrap() error { return e.Err }

const maxInput = 40

func fail(input string, kind error, format string, args ...any) error {
	if len(input) > maxInput {
		input = input[:maxInput] + "…"
	}
	return &Error{Input: input, Err: kind, Detail: fmt.Sprintf(format, args...)}
}

// Parse reads the decimal s (the grammar of the package comment) as a
// count of 10^-scale units, at most max. It panics on a scale outside
// [0, MaxScale] or a negative max: both are constants of the caller.
func Parse(s string, scale Scale, max int64) (int64, error) {
	pow := pow10(scale)
	if max < 0 {
		panic("money: negative maximum")
	}
	if s == "" {
		return 0, fail(s, ErrSyntax, "empty")
	}
	whole, frac, hasPoint := strings.Cut(s, ".")
	if err := checkSyntax(s, whole, frac, hasPoint); err != nil {
		return 0, err
	}
	if len(frac) > int(scale) {
		return 0, fail(s, ErrPrecision, "more than %d fraction digits", scale)
	}
	if len(whole) > MaxWholeDigits {
		return 0, fail(s, ErrRange, "more than %d digits before the decimal point", MaxWholeDigits)
	}
	// Whole units, checked per digit so that no run of digits overflows.
	limit := max / pow
	var w int64
	for i := range len(whole) {
		d := int64(whole[i] - '0')
		if w > (limit-d)/10 {
			return 0, errOverMax(s, scale, max)
		}
		w = w*10 + d
	}
	var f int64
	for i := range int(scale) {
		f *= 10
		if i < len(frac) {
			f += int64(frac[i] - '0')
		}
	}
	if w*pow > max-f { // w*pow <= max by the loop; max-f cannot overflow
		return 0, errOverMax(s, scale, max)
	}
	return w*pow + f, nil
}

// checkSyntax reports the first thing that makes s other than digits with
// at most one '.' between digits, naming it.
func checkSyntax(s, whole, frac string, hasPoint bool) error {
	if digits(whole) && digits(frac) {
		switch {
		case whole == "":
			return fail(s, ErrSyntax, "want digits before the decimal point")
		case hasPoint && frac == "":
			return fail(s, ErrSyntax, "want digits after the decimal point")
		}
		return nil
	}
	body := s
	if s[0] == '+' || s[0] == '-' {
		body = s[1:]
	}
	switch {
	case strings.EqualFold(body, "nan") || strings.EqualFold(body, "inf") || strings.EqualFold(body, "infinity"):
		return fail(s, ErrSyntax, "NaN and infinities are not amounts")
	case s[0] == '-' && plain(body):
		return fail(s, ErrNegative, "negative amounts are not accepted")
	case s[0] == '+' || s[0] == '-':
		return fail(s, ErrSyntax, "not a plain decimal (digits and one '.'): no sign")
	case strings.ContainsAny(s, "eE") && plain(strings.Map(dropExponent, s)):
		return fail(s, ErrSyntax, "not a plain decimal (digits and one '.'): no exponent")
	}
	i := strings.IndexFunc(s, func(r rune) bool { return r != '.' && (r < '0' || r > '9') })
	if i < 0 { // only digits and points: the second point
		i = len(whole) + 1 + strings.IndexByte(frac, '.')
	}
	r, _ := utf8.DecodeRuneInString(s[i:])
	return fail(s, ErrSyntax, "not a plain decimal (digits and one '.'): unexpected %q at byte %d", r, i)
}

// dropExponent maps the exponent marks of "1.5e+3" away, leaving digits and
// points, so an exponent is recognised by what remains.
func dropExponent(r rune) rune {
	if r == 'e' || r == 'E' || r == '+' || r == '-' {
		return -1
	}
	return r
}

// plain reports whether s has the grammar: digits, optionally "." digits.
func plain(s string) bool {
	whole, frac, hasPoint := strings.Cut(s, ".")
	return whole != "" && digits(whole) && digits(frac) && (!hasPoint || frac != "")
}

func digits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func errOverMax(s string, scale Scale, max int64) error {
	return fail(s, ErrRange, "over the maximum of %s", Format(max, scale, 0))
}

func pow10(scale Scale) int64 {
	if scale < 0 || scale > MaxScale {
		panic(fmt.Sprintf("money: scale %d outside [0, %d]", scale, MaxScale))
	}
	p := int64(1)
	for range scale {
		p *= 10
	}
	return p
}

// FromFloat reads a JSON number as Parse reads a string: through the
// shortest decimal that reads back as v, which is the literal the client
// wrote for any literal of up to 15 significant digits. -0 is 0; NaN and
// infinities are ErrSyntax, other negative values ErrNegative.
func FromFloat(v float64, scale Scale, max int64) (int64, error) {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return 0, fail(strconv.FormatFloat(v, 'g', -1, 64), ErrSyntax, "NaN and infinities are not amounts")
	case v == 0: // also -0
		return 0, nil
	case v < 0:
		return 0, fail(strconv.FormatFloat(v, 'g', -1, 64), ErrNegative, "negative amounts are not accepted")
	case v > float64(max): // keeps FormatFloat from writing hundreds of digits; Parse checks exactly
		return 0, fail(strconv.FormatFloat(v, 'g', -1, 64), ErrRange, "over the maximum of %s", Format(max, scale, 0))
	}
	return Parse(strconv.FormatFloat(v, 'f', -1, 64), scale, max)
}

// Format writes v units of the scale as a decimal: a "-" for a negative
// amount, the whole units, and the fraction with its trailing zeros
// trimmed down to minDecimals (clamped to [0, scale]); no point when no
// decimal is left. Format(1999, Cents, 2) is "19.99", Format(500000,
// Micros, 2) is "0.50", Format(150, Micros, 2) is "0.00015". Parse reads
// every non-negative result back as v.
func Format(v int64, scale Scale, minDecimals int) string {
	pow := uint64(pow10(scale))
	minDecimals = min(max(minDecimals, 0), int(scale))
	u := uint64(v)
	if v < 0 {
		u = -u // two's complement: exact even for math.MinInt64
	}
	var b strings.Builder
	if v < 0 {
		b.WriteByte('-')
	}
	b.WriteString(strconv.FormatUint(u/pow, 10))
	if scale == 0 {
		return b.String()
	}
	frac := strconv.FormatUint(u%pow+pow, 10)[1:] // scale digits, zero padded
	frac = strings.TrimRight(frac, "0")
	if len(frac) < minDecimals {
		frac += strings.Repeat("0", minDecimals-len(frac))
	}
	if frac != "" {
		b.WriteByte('.')
		b.WriteString(frac)
	}
	return b.String()
}
