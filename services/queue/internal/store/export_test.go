package store

// Queries, for the query plan tests.

func (s *Store) ClaimQuery(types int) string { return s.claimQuery(types) }

func (s *Store) ExpireQuery() string { return s.q.expire }

func (s *Store) CountsQuery() string { return s.q.counts }
