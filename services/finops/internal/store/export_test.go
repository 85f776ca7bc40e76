package store

// Queries, for the query plan tests.

// TotalsQuery is the Totals statement of every tenant (all) or of one.
func (s *Store) TotalsQuery(all bool) string { return s.q.totals[variant(all)] }

// UnpricedQuery is the UnpricedModels statement of every tenant or of one.
func (s *Store) UnpricedQuery(all bool) string { return s.q.unpriced[variant(all)] }

func variant(all bool) int {
	if all {
		return 0
	}
	return 1
}
