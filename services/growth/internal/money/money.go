// Package money binds the service's amounts to platform/money: dollars as
// integer cents, commission rates as integer basis points. JSON brings
// amounts as numbers, which arrive here as float64; they are read through
// their shortest decimal form (platform/money.FromFloat), which is the
// literal the client wrote for any literal of up to 15 significant digits,
// so no float arithmetic ever touches money.
package money

import (
	"github.com/echopilot/echopilot/platform/money"
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

// Errors of the parsers: the kinds of platform/money's errors, which every
// error below wraps.
var (
	ErrSyntax    = money.ErrSyntax
	ErrNegative  = money.ErrNegative
	ErrPrecision = money.ErrPrecision
	ErrRange     = money.ErrRange
)

// Cents reads a dollar amount in [0, MaxCents] cents.
func Cents(dollars float64) (int64, error) { return CentsUpTo(dollars, MaxCents) }

// CentsUpTo reads a dollar amount in [0, max] cents.
func CentsUpTo(dollars float64, max int64) (int64, error) {
	return money.FromFloat(dollars, money.Cents, max)
}

// BPS reads a rate in [0, 1] with at most four decimals as basis points.
func BPS(rate float64) (int64, error) { return money.FromFloat(rate, money.BasisPoints, BPSPerUnit) }

// ParseBPS reads a rate written as a decimal ("0.20") as BPS does.
func ParseBPS(rate string) (int64, error) { return money.Parse(rate, money.BasisPoints, BPSPerUnit) }

// Commission is floor(cents × bps / 10000).
func Commission(cents, bps int64) int64 { return cents * bps / BPSPerUnit }

// Dollars shows cents as a JSON number of dollars.
func Dollars(cents int64) float64 { return float64(cents) / 100 }

// Rate shows basis points as a fraction (2000 → 0.2).
func Rate(bps int64) float64 { return float64(bps) / BPSPerUnit }

// Format writes cents as dollars with two decimals: 1999 → "19.99".
func Format(cents int64) string { return money.Format(cents, money.Cents, 2) }
