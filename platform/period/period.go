// Package period reads the `days` parameter of the reports (finops
// summaries, growth stats): whole UTC days ending today.
package period

import "github.com/echopilot/echopilot/platform/apierr"

const (
	// DefaultDays is what days=0 (not given) means, as in the seed.
	DefaultDays = 7
	// MaxDays is the longest period, a leap year.
	MaxDays = 366
	// ReasonDaysOutOfRange is the ErrorInfo reason of a bad days value.
	ReasonDaysOutOfRange = "DAYS_OUT_OF_RANGE"
)

// Days is the period length asked for: DefaultDays for 0, an
// INVALID_ARGUMENT error in domain beyond 1..MaxDays.
func Days(days int32, domain string) (int, error) {
	switch {
	case days == 0:
		return DefaultDays, nil
	case days < 0 || days > MaxDays:
		return 0, apierr.InvalidArgument(ReasonDaysOutOfRange, "days must be between 1 and %d, got %d", MaxDays, days).InDomain(domain)
	}
	return int(days), nil
}
