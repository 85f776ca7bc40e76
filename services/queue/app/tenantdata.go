package app

import (
	"context"

	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/platform/tenantdata"
	"github.com/echopilot/echopilot/services/queue/internal/store"
)

// tenantDataRules are queue's exceptions to exporting and erasing every
// row of a tenant: nothing is kept. Worker tokens are stored by id and
// expiry only (the token is a signed JWT, never stored), so no column
// holds a secret. On PostgreSQL the job counters are written only by the
// owner's functions, so they are erased through one (after the jobs).
func tenantDataRules(db *pstore.DB) tenantdata.Rules {
	if db.Dialect != pstore.Postgres {
		return tenantdata.Rules{}
	}
	st := store.New(db)
	counts := func(ctx context.Context, tenant string, _ int) (int64, int64, error) {
		return st.EraseCounts(ctx, tenant)
	}
	return tenantdata.Rules{Erase: map[string]tenantdata.EraseFunc{"job_counts": counts, "job_count_deltas": counts}}
}
