package store

import (
	"context"
	"database/sql"
	"fmt"

	pstore "github.com/echopilot/echopilot/platform/store"
)

// EraseCounts deletes tenant's job counters (job_counts and the deltas not
// folded yet) once the tenant has no jobs left, for a tenant erasure, and
// returns the counter rows it deleted and those left. PostgreSQL only:
// there only the owner's queue_erase_counts may write the counters; on
// SQLite the erasure deletes job_counts like any table.
func (s *Store) EraseCounts(ctx context.Context, tenant string) (deleted, remaining int64, err error) {
	if s.db.Dialect != pstore.Postgres {
		return 0, 0, fmt.Errorf("queue: EraseCounts is for PostgreSQL")
	}
	err = s.db.InTenantTx(ctx, tenant, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, "SELECT queue_erase_counts($1)", tenant).Scan(&deleted); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM job_counts WHERE tenant_id = $1)
			+ (SELECT count(*) FROM job_count_deltas WHERE tenant_id = $1)`, tenant).Scan(&remaining)
	})
	if err != nil {
		return 0, 0, fmt.Errorf("queue: erase counts of %s: %w", tenant, err)
	}
	return max(deleted, 0), remaining, nil
}
