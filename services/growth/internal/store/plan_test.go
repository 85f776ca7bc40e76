package store_test

import (
	"database/sql"
	"regexp"
	"testing"
	"time"

	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/platform/store/storetest"
)

// The commission reads are ranges of an index led by the tenant: the
// listing its primary key, the export conversions_code (so each page of
// codes streams), a new batch and a batch's reads conversions_batch. SQLite's plans are
// checked; PostgreSQL's depend on statistics and are logged.
func TestCommissionQueryPlans(t *testing.T) {
	eachBackend(t, func(t *testing.T, f fixture) {
		now := time.Now().UTC()
		for name, use := range map[string]string{
			"commissions":       `SEARCH conversions USING PRIMARY KEY \(tenant_id=\? AND conversion_id>\?\)`,
			"state payouts":     `SEARCH conversions USING INDEX conversions_code \(tenant_id=\? AND referral_code>\?\)`,
			"batch payouts":     `SEARCH conversions USING INDEX conversions_(code|batch)`,
			"pay conversions":   `SEARCH conversions USING INDEX conversions_batch \(tenant_id=\? AND batch_id=\?\)`,
			"batch sums":        `SEARCH conversions USING INDEX conversions_batch \(tenant_id=\? AND batch_id=\?\)`,
			"batch conversions": `SEARCH conversions USING INDEX conversions_batch \(tenant_id=\? AND batch_id=\?\)`,
		} {
			args := map[string][]any{
				"commissions":       {1, now, "acme", "", "", 1, now, "", 100},
				"state payouts":     {0, 1 << 30, "acme", "", 0, 1 << 30, "approved", 1, now, "approved", 0, 1000, "acme"},
				"batch payouts":     {0, 1 << 30, "acme", "", 0, 1 << 30, "b1", 0, 1000, "acme"},
				"pay conversions":   {now, "acme", "b1"},
				"batch sums":        {"acme", "b1"},
				"batch conversions": {"b1", "acme", 1, now},
			}[name]
			var plan string
			err := f.db.InTenantReadTx(t.Context(), "acme", func(tx *sql.Tx) (err error) {
				plan, err = storetest.Plan(t.Context(), tx, f.db.Dialect, f.st.CommissionQueries()[name], args...)
				return err
			})
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			t.Logf("%s plan:\n%s", name, plan)
			if f.db.Dialect == pstore.SQLite && !regexp.MustCompile(use).MatchString(plan) {
				t.Errorf("%s does not use %s:\n%s", name, use, plan)
			}
		}
	})
}
