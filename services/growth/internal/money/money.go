// Package money reads and writes the service's amounts exactly: dollars as
// integer cents, commission rates as integer basis points. JSON brings
// amounts as numbers, which arrive here as float64; they are read through
// their shortest decimal form, which is the literal the client wrote for
// any literal of up to 15 significant digits, so no float arithmetic ever
// touches money.
package money

import (
	"errors"
	"math"
	"strconv"
	"strings"
)

// Bounds of the amounts the service accepts.
const (
	// MaxCents is the largest amount of one event: $10,000,000.00. Far above
	// any real order, and small enough that commission arithmetic
	// (cents × basis points) cannot overflow.
	MaxCents = 1_000_000_000
	// BPSPerUnit is 100%: rates are basis points, 1/10000.
	BPSPerUnit = 10_000
)

// Errors of the parsers.
var (
	ErrSyntax    = errors.New("not a decimal number")
	ErrNegative  = errors.New("negative")
	ErrPrecision = errors.New("too many decimals")
	ErrRange     = errors.New("out of range")
)

// ParseDecimal reads a non-negative decimal such as "12", "0.2" or "19.99"
// as an integer count of 10^-scale units, at most max. It takes no sign,
// exponent, spaces or digit separators.
func ParseDecimal(s string, scale int, max int64) (int64, error) {
	if strings.HasPrefix(s, "-") {
		return 0, ErrNegative
	}
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" || hasDot && frac == "" || !digits(whole) || !digits(frac) {
		return 0, ErrSyntax
	}
	frac = strings.TrimRight(frac, "0")
	if len(frac) > scale {
		return 0, ErrPrecision
	}
	whole = strings.TrimLeft(whole, "0")
	if len(whole) > 15 { // beyond any max this package is used with
		return 0, ErrRange
	}
	w, _ := strconv.ParseInt("0"+whole, 10, 64)
	f, _ := strconv.ParseInt("0"+frac+strings.Repeat("0", scale-len(frac)), 10, 64)
	v := w*pow10(scale) + f
	if v > max {
		return 0, ErrRange
	}
	return v, nil
}

func digits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func pow10(n int) int64 {
	p := int64(1)
	for range n {
		p *= 10
	}
	return p
}

// FromFloat reads a JSON number as ParseDecimal does: through the shortest
// decimal that reads back as v. NaN and infinities are ErrSyntax.
func FromFloat(v float64, scale int, max int64) (int64, error) {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return 0, ErrSyntax
	case v == 0: // also -0
		return 0, nil
	case v < 0:
		return 0, ErrNegative
	case v > float64(max): // keeps FormatFloat from writing hundreds of digits
		return 0, ErrRange
	}
	return ParseDecimal(strconv.FormatFloat(v, 'f', -1, 64), scale, max)
}

// Cents reads a dollar amount in [0, MaxCents] cents.
func Cents(dollars float64) (int64, error) { return FromFloat(dollars, 2, MaxCents) }

// BPS reads a rate in [0, 1] with at most four decimals as basis points.
func BPS(rate float64) (int64, error) { return FromFloat(rate, 4, BPSPerUnit) }

// Commission is floor(cents × bps / 10000).
func Commission(cents, bps int64) int64 { return cents * bps / BPSPerUnit }

// Dollars shows cents as a JSON number of dollars.
func Dollars(cents int64) float64 { return float64(cents) / 100 }

// Rate shows basis points as a fraction (2000 → 0.2).
func Rate(bps int64) float64 { return float64(bps) / BPSPerUnit }

// Format writes cents as dollars with two decimals: 1999 → "19.99".
func Format(cents int64) string {
	sign := ""
	u := uint64(cents)
	if cents < 0 {
		sign, u = "-", -u
	}
	frac := strconv.FormatUint(u%100+100, 10)[1:]
	return sign + strconv.FormatUint(u/100, 10) + "." + frac
}
