package store

import "github.com/echopilot/echopilot/services/audit/internal/domain"

// SearchSQL is the statement a search runs, and its arguments.
func (s *Store) SearchSQL(tenant string, q domain.Query) (string, []any) {
	return s.searchSQL(tenant, q)
}
