package store

// Queries, for the query plan tests.

// CommissionQueries are the commission statements by name.
func (s *Store) CommissionQueries() map[string]string {
	return map[string]string{
		"commissions": s.q.commissions, "state payouts": s.q.stateCommissionPayouts,
		"batch payouts": s.q.batchCommissionPayouts, "pay conversions": s.q.payConversions, "batch sums": s.q.batchSums,
		"batch conversions": s.q.batchConversions,
	}
}
