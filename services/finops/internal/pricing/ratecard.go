package pricing

import (
	"fmt"

	"github.com/echopilot/echopilot/services/finops/internal/domain"
)

// ParseRateCard builds the rate card from decimal dollars per day, e.g.
// ("0.50", "0.10") -> {500000, 100000} µ$.
func ParseRateCard(computePerDay, databasePerDay string) (domain.RateCard, error) {
	c, err := parseDollars(computePerDay)
	if err != nil {
		return domain.RateCard{}, fmt.Errorf("rate card: compute per day: %w", err)
	}
	d, err := parseDollars(databasePerDay)
	if err != nil {
		return domain.RateCard{}, fmt.Errorf("rate card: database per day: %w", err)
	}
	return domain.RateCard{ComputeMicrosPerDay: c, DatabaseMicrosPerDay: d}, nil
}

// DefaultRateCard is $0.50 compute plus $0.10 database per day, the seed
// prototype's numbers.
func DefaultRateCard() domain.RateCard {
	return domain.RateCard{ComputeMicrosPerDay: 500_000, DatabaseMicrosPerDay: 100_000}
}
