package store

import "github.com/echopilot/echopilot/services/finops/internal/domain"

// Queries, for the query plan tests.

// TotalsQuery is the Totals statement of every tenant (all) or of one.
func (s *Store) TotalsQuery(all bool) string { return s.q.totals.of(domain.Scope{All: all}) }

// UnpricedQuery is the UnpricedModels statement of every tenant or of one.
func (s *Store) UnpricedQuery(all bool) string { return s.q.unpriced.of(domain.Scope{All: all}) }

// DaySeriesQuery is the DaySeries statement of every tenant or of one.
func (s *Store) DaySeriesQuery(all bool) string { return s.q.daySeries.of(domain.Scope{All: all}) }

// UnpricedUsageQuery is the re-pricing job's batch statement.
func (s *Store) UnpricedUsageQuery() string { return s.q.unpricedUsage }
