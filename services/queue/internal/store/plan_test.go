package store_test

import (
	"database/sql"
	"slices"
	"strings"
	"testing"
	"time"

	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/platform/store/storetest"
)

// planRows is the size of the table the plans are checked against: mostly
// finished jobs of two tenants, with a small runnable and in-flight share,
// the shape retention keeps a busy queue in.
const planRows = 20000

// TestQueryPlans checks that leasing reads only the partial indexes of
// runnable and in-flight jobs, never the whole table, on both databases
// with statistics gathered (ANALYZE) as a production database has them.
func TestQueryPlans(t *testing.T) {
	eachBackend(t, func(t *testing.T, f fixture) {
		f.bulkJobs(t)
		now := time.Now().UTC()
		for _, q := range []struct {
			name, query string
			// indexes are those the query may read; each holds, or its
			// prefix selects, only the jobs the query is after.
			indexes []string
			args    []any
		}{
			{"claim", f.st.ClaimQuery(0), []string{"jobs_runnable"},
				[]any{"acme", now, "acme", 100, "w", 30, now, now, now, "acme"}},
			{"claim by type", f.st.ClaimQuery(2), []string{"jobs_runnable"},
				[]any{"acme", now, "ai_task", "data_sync", "acme", 100, "w", 30, now, now, now, "acme"}},
			{"expire leases", f.st.ExpireQuery(), []string{"jobs_leased", "jobs_state"},
				[]any{"acme", now, 1000, "lease expired", now, now, "acme"}},
		} {
			plan := f.explain(t, q.query, q.args...)
			if !slices.ContainsFunc(q.indexes, func(ix string) bool { return strings.Contains(plan, ix) }) {
				t.Errorf("%s uses none of %v:\n%s", q.name, q.indexes, plan)
			}
			if fullScan(f.db.Dialect, plan) {
				t.Errorf("%s scans the jobs table:\n%s", q.name, plan)
			}
		}
		// QueueStatus reads only the tenant's counter rows (and, on
		// PostgreSQL, its deltas not folded yet), never the jobs.
		plan := f.explain(t, f.st.CountsQuery(), "acme")
		if f.db.Dialect == pstore.SQLite {
			if !strings.Contains(plan, "SEARCH job_counts USING PRIMARY KEY (tenant_id=?)") || strings.Contains(plan, "jobs ") {
				t.Errorf("counts reads more than acme's counter rows:\n%s", plan)
			}
		} else if strings.Contains(plan, " on jobs") || !strings.Contains(plan, "job_counts") || !strings.Contains(plan, "job_count_deltas") {
			t.Errorf("counts reads more than acme's counters:\n%s", plan)
		}
	})
}

// bulkJobs inserts planRows jobs as the owner, in one statement, and
// gathers statistics.
func (f fixture) bulkJobs(t *testing.T) {
	t.Helper()
	// 1% queued, 0.5% processing, the rest completed.
	const cols = `tenant_id, id, type, prio, state, payload, max_attempts, run_at, created_at, updated_at, lease_expires_at`
	var insert string
	switch f.db.Dialect {
	case pstore.Postgres:
		insert = `INSERT INTO jobs (` + cols + `)
			SELECT CASE WHEN g % 2 = 0 THEN 'acme' ELSE 'globex' END, 'J' || lpad(g::text, 25, '0'),
				CASE WHEN g % 3 = 0 THEN 'data_sync' ELSE 'ai_task' END, g % 4,
				CASE WHEN g % 100 = 0 THEN 'queued' WHEN g % 200 = 1 THEN 'processing' ELSE 'completed' END,
				'{}', 3, now(), now(), now(), CASE WHEN g % 200 = 1 THEN now() END
			FROM generate_series(1, $1) g`
	default:
		insert = `INSERT INTO jobs (` + cols + `)
			WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < ?)
			SELECT CASE WHEN n % 2 = 0 THEN 'acme' ELSE 'globex' END, printf('J%025d', n),
				CASE WHEN n % 3 = 0 THEN 'data_sync' ELSE 'ai_task' END, n % 4,
				CASE WHEN n % 100 = 0 THEN 'queued' WHEN n % 200 = 1 THEN 'processing' ELSE 'completed' END,
				'{}', 3, unixepoch() * 1000000, unixepoch() * 1000000, unixepoch() * 1000000,
				CASE WHEN n % 200 = 1 THEN unixepoch() * 1000000 END
			FROM g`
	}
	rows := planRows
	if raceEnabled {
		rows /= 4
	}
	if _, err := f.owner.ExecContext(t.Context(), insert, rows); err != nil {
		t.Fatal(err)
	}
	if _, err := f.owner.ExecContext(t.Context(), "ANALYZE"); err != nil {
		t.Fatal(err)
	}
}

// explain returns the plan of query as the service's role would run it, in
// a transaction scoped to acme.
func (f fixture) explain(t *testing.T, query string, args ...any) string {
	t.Helper()
	var plan string
	err := f.db.InTenantReadTx(t.Context(), "acme", func(tx *sql.Tx) (err error) {
		plan, err = storetest.Plan(t.Context(), tx, f.db.Dialect, query, args...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

// fullScan reports whether a plan reads the jobs table row by row.
func fullScan(d pstore.Dialect, plan string) bool {
	for _, line := range strings.Split(plan, "\n") {
		line = strings.TrimSpace(line)
		if d == pstore.Postgres && strings.Contains(line, "Seq Scan on jobs") {
			return true
		}
		// "SCAN jobs USING INDEX …" walks an index; a bare "SCAN jobs" (or
		// one via the covering primary key) reads every row.
		if d == pstore.SQLite && strings.HasPrefix(line, "SCAN jobs") && !strings.Contains(line, "USING INDEX jobs_") {
			return true
		}
	}
	return false
}
