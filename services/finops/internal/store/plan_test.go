package store_test

import (
	"database/sql"
	"regexp"
	"strings"
	"testing"

	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/finops/internal/domain"
)

// Shape of the plan test's data: a year of rollups of planTenants tenants,
// read 30 days at a time, as a busy deployment without retention has them.
const (
	planTenants = 100
	planDays    = 365
)

// TestQueryPlans checks that the summary's queries read ranges of their
// indexes, never a whole table, on both databases with statistics gathered
// (ANALYZE) as a production database has them: every tenant's summary sums
// daily_totals and allocates through daily_rollups_day; a tenant's reads its
// own rollups by the primary key.
func TestQueryPlans(t *testing.T) {
	eachBackend(t, func(t *testing.T, f fixture) {
		tenants := planTenants
		if raceEnabled {
			tenants /= 4
		}
		f.bulk(t, tenants, day0-planDays+1, day0)
		last30 := domain.LastDays(t0, 30)
		// Each day's totals of every tenant come by daily_totals' key
		// range, in either database's words.
		const totalsRange = `daily_totals_pkey|SEARCH daily_totals USING PRIMARY KEY \(day>\? AND day<\?\)`
		for _, q := range []struct {
			name, query string
			// uses are patterns of the index accesses the plan must show.
			uses []string
			all  bool
			args []any
		}{
			{"all-tenant totals", f.st.TotalsQuery(true),
				[]string{totalsRange, `daily_rollups_day`}, true,
				[]any{last30.From, last30.To, 500000, 100000, last30.From, last30.To}},
			{"tenant totals", f.st.TotalsQuery(false),
				[]string{totalsRange, `daily_rollups_pkey|SEARCH r USING PRIMARY KEY \(tenant_id=\? AND day>\? AND day<\?\)`}, false,
				[]any{last30.From, last30.To, 500000, 100000, last30.From, last30.To, "t0007"}},
			{"all-tenant day series", f.st.DaySeriesQuery(true),
				[]string{totalsRange}, true, []any{last30.From, last30.To}},
			{"tenant day series", f.st.DaySeriesQuery(false),
				[]string{totalsRange, `daily_rollups_pkey|SEARCH r USING PRIMARY KEY \(tenant_id=\? AND day>\? AND day<\?\)`}, false,
				[]any{last30.From, last30.To, 500000, 100000, last30.From, last30.To, "t0007"}},
			{"all-tenant unpriced models", f.st.UnpricedQuery(true),
				[]string{`usage_records_unpriced_day`}, true, []any{last30.From, last30.To}},
			{"tenant unpriced models", f.st.UnpricedQuery(false),
				[]string{`usage_records_unpriced\b[^_]`}, false, []any{"t0007", last30.From, last30.To}},
			// The re-pricing job reads the unpriced records by key, in order.
			{"unpriced usage batch", f.st.UnpricedUsageQuery(),
				[]string{`usage_records_unpriced_key`}, true, []any{"t0050", "job-1", 500}},
		} {
			plan := f.explain(t, q.all, q.query, q.args...)
			t.Logf("%s plan:\n%s", q.name, plan)
			for _, use := range q.uses {
				if !regexp.MustCompile(use).MatchString(plan) {
					t.Errorf("%s does not use %s:\n%s", q.name, use, plan)
				}
			}
			if table := fullScan(f.db.Dialect, plan); table != "" {
				t.Errorf("%s scans %s:\n%s", q.name, table, plan)
			}
		}
	})
}

// explain returns the plan of query as the service's role runs it: in an
// all-tenants read for all, else scoped to tenant t0007.
func (f fixture) explain(t *testing.T, all bool, query string, args ...any) string {
	t.Helper()
	var plan string
	run := func(tx *sql.Tx) (err error) {
		plan, err = storetest.Plan(t.Context(), tx, f.db.Dialect, query, args...)
		return err
	}
	var err error
	if all {
		err = f.db.InAllTenantsReadTx(t.Context(), run)
	} else {
		err = f.db.InTenantReadTx(t.Context(), "t0007", run)
	}
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

// SQLite names a full scan "SCAN <table or alias>" without an index (the
// scan of a materialized CTE, d, reads the CTE's own rows).
var sqliteScan = regexp.MustCompile(`^SCAN (daily_rollups|daily_totals|usage_records|payments|r)\b`)

// fullScan returns the table a plan reads row by row, or "".
func fullScan(d pstore.Dialect, plan string) string {
	for _, line := range strings.Split(plan, "\n") {
		line = strings.TrimSpace(line)
		if d == pstore.Postgres {
			// infra_days, one row per imported day, is read whole once
			// per query into a hashed subplan: smaller than any range.
			if _, table, ok := strings.Cut(line, "Seq Scan on "); ok && !strings.HasPrefix(table, "infra_days ") {
				return table
			}
		} else if m := sqliteScan.FindStringSubmatch(line); m != nil && !strings.Contains(line, " INDEX ") {
			return m[1]
		}
	}
	return ""
}

// bulk inserts, as the owner in one statement each, a rollup for every one
// of tenants tenants (t0001…) and day of from..to, and one usage record per
// tenant and day, every tenth unpriced; then gathers statistics.
func (f fixture) bulk(t testing.TB, tenants int, from, to int64) {
	t.Helper()
	var rollups, records string
	switch f.db.Dialect {
	case pstore.Postgres:
		rollups = `INSERT INTO daily_rollups (tenant_id, day, revenue_cents, payment_count, ai_cost_micros, job_count,
				input_tokens, output_tokens)
			SELECT 't' || lpad(n::text, 4, '0'), d, 1000 + n, 1, 5000 * n, 1 + (n + d) % 7, 100 * n, 10 * n
			FROM generate_series(1, $1) n, generate_series($2::integer, $3::integer) d`
		records = `INSERT INTO usage_records (tenant_id, job_id, job_type, model, input_tokens, output_tokens,
				duration_ms, completed_at, day, priced, cost_micros)
			SELECT 't' || lpad(n::text, 4, '0'), 'job-' || d, 'ai_task', 'model-' || (n % 5), 100, 10, 1,
				to_timestamp(d * 86400), d, (n + d) % 10 <> 0, CASE WHEN (n + d) % 10 <> 0 THEN 5000 ELSE 0 END
			FROM generate_series(1, $1) n, generate_series($2::integer, $3::integer) d`
	default:
		const series = `WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < ?),
				d(d) AS (SELECT ? UNION ALL SELECT d + 1 FROM d WHERE d < ?) `
		rollups = series + `INSERT INTO daily_rollups (tenant_id, day, revenue_cents, payment_count, ai_cost_micros,
				job_count, input_tokens, output_tokens)
			SELECT printf('t%04d', n), d, 1000 + n, 1, 5000 * n, 1 + (n + d) % 7, 100 * n, 10 * n FROM t, d`
		records = series + `INSERT INTO usage_records (tenant_id, job_id, job_type, model, input_tokens,
				output_tokens, duration_ms, completed_at, day, priced, cost_micros)
			SELECT printf('t%04d', n), 'job-' || d, 'ai_task', 'model-' || (n % 5), 100, 10, 1, d * 86400000000, d,
				(n + d) % 10 <> 0, CASE WHEN (n + d) % 10 <> 0 THEN 5000 ELSE 0 END FROM t, d`
	}
	// Infrastructure imported for every seventh day, for every tenant.
	var infraDays, infraCosts string
	switch f.db.Dialect {
	case pstore.Postgres:
		infraDays = `INSERT INTO infra_days (day, source, imported_at)
			SELECT d, 'bulk', now() FROM generate_series($2::integer, $3::integer) d WHERE d % 7 = 0 AND $1 > 0`
		infraCosts = `INSERT INTO infra_costs (day, tenant_id, compute_micros, database_micros)
			SELECT d, 't' || lpad(n::text, 4, '0'), 1000 * n, 100 * n
			FROM generate_series(1, $1) n, generate_series($2::integer, $3::integer) d WHERE d % 7 = 0`
	default:
		const series = `WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < ?),
				d(d) AS (SELECT ? UNION ALL SELECT d + 1 FROM d WHERE d < ?) `
		infraDays = series + `INSERT INTO infra_days (day, source, imported_at) SELECT d, 'bulk', 0 FROM d WHERE d % 7 = 0 AND (SELECT max(n) FROM t) > 0`
		infraCosts = series + `INSERT INTO infra_costs (day, tenant_id, compute_micros, database_micros)
			SELECT d, printf('t%04d', n), 1000 * n, 100 * n FROM t, d WHERE d % 7 = 0`
	}
	// Reads sum a day's shards, so any shard will do.
	cols := []string{"revenue_cents", "refunded_cents", "payment_count", "ai_cost_micros", "job_count",
		"input_tokens", "output_tokens", "unpriced_jobs", "unpriced_input_tokens", "unpriced_output_tokens"}
	totals := `INSERT INTO daily_totals (day, shard, ` + strings.Join(cols, ", ") + `)
		SELECT day, CAST(substr(tenant_id, 2) AS integer) % 16 AS s, SUM(` + strings.Join(cols, "), SUM(") + `)
		FROM daily_rollups GROUP BY day, s`
	for _, q := range []string{rollups, records, totals, infraDays, infraCosts, "ANALYZE"} {
		args := []any{tenants, from, to}
		if q == "ANALYZE" || q == totals {
			args = nil
		}
		if _, err := f.owner.ExecContext(t.Context(), q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}
