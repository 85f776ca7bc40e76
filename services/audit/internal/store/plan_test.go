package store_test

import (
	"database/sql"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/audit/internal/domain"
	"github.com/echopilot/echopilot/services/audit/internal/store"
)

// Shape of the plan test's data: planTenants logs of planEntries entries.
const (
	planTenants = 40
	planEntries = 2500
)

// planT0 is the time of every tenant's entry 1; entry n is n seconds later.
var planT0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// TestSearchPlans checks that every search filter reads a range of its
// index (migration 00009), never the whole log, on both databases with
// statistics gathered (ANALYZE) as a production database has them, for the
// statements the store runs (a first page and a page after a cursor, in
// both orders), as the service's role under row-level security.
func TestSearchPlans(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			migrateURL, appURL := b.NewDB(t)
			owner := storetest.Open(t, migrateURL)
			if err := owner.Migrate(t.Context(), store.Migrations); err != nil {
				t.Fatal(err)
			}
			planBulk(t, owner)
			db := storetest.Open(t, appURL)
			st := store.New(db)
			for _, c := range []struct {
				name   string
				filter domain.Filter
				index  string
			}{
				{"event type", domain.Filter{EventType: "type7"}, "audit_entries_event_type"},
				{"user", domain.Filter{User: "user42"}, "audit_entries_user"},
				{"resource", domain.Filter{Resource: "res13"}, "audit_entries_resource"},
				{"severity", domain.Filter{MinSeverity: "high"}, "audit_entries_severity"},
				{"one severity", domain.Filter{MinSeverity: "critical"}, "audit_entries_severity"},
				{"since", domain.Filter{Since: planT0.Add((planEntries - 150) * time.Second)}, "audit_entries_ts"},
				{"time range", domain.Filter{Since: planT0.Add(1000 * time.Second), Until: planT0.Add(1100 * time.Second)},
					"audit_entries_ts"},
			} {
				for _, q := range []domain.Query{
					{Filter: c.filter, Limit: 100, Max: planEntries},
					{Filter: c.filter, Limit: 100, Max: planEntries, After: 500},
					{Filter: c.filter, Desc: true, Limit: 100, Max: planEntries},
					{Filter: c.filter, Desc: true, Limit: 100, Max: planEntries, Before: 2000},
				} {
					query, args := st.SearchSQL("t0007", q)
					plan := explain(t, db, query, args...)
					uses := regexp.MustCompile(`(Index Scan|Index Scan Backward|Index Only Scan|Index Only Scan Backward|Bitmap Index Scan) (using|on) ` + c.index +
						`\b|USING (COVERING )?INDEX ` + c.index + `\b`)
					if !uses.MatchString(plan) {
						t.Errorf("%s (desc %v, after %d, before %d) does not use %s:\n%s\n%s", c.name, q.Desc, q.After,
							q.Before, c.index, query, plan)
					}
					// Every read of the log is of the filter's index (a
					// severity minimum reads it once per severity).
					for _, line := range strings.Split(plan, "\n") {
						if strings.Contains(line, "audit_entries") && strings.Contains(line, "PRIMARY KEY") ||
							strings.Contains(line, "audit_entries_pkey") {
							t.Errorf("%s reads the log by seq:\n%s", c.name, plan)
						}
					}
					if table := wholeScan(db.Dialect, plan); table != "" {
						t.Errorf("%s scans %s:\n%s", c.name, table, plan)
					}
				}
			}
		})
	}
}

// explain is the plan of query as the service's role runs it for t0007.
func explain(t *testing.T, db *pstore.DB, query string, args ...any) string {
	t.Helper()
	var plan string
	err := db.InTenantReadTx(t.Context(), "t0007", func(tx *sql.Tx) (err error) {
		plan, err = storetest.Plan(t.Context(), tx, db.Dialect, query, args...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

// wholeScan returns the table a plan reads row by row, or "".
func wholeScan(d pstore.Dialect, plan string) string {
	for _, line := range strings.Split(plan, "\n") {
		line = strings.TrimSpace(line)
		if d == pstore.Postgres {
			if _, table, ok := strings.Cut(line, "Seq Scan on "); ok {
				return table
			}
		} else if strings.HasPrefix(line, "SCAN audit_entries") && !strings.Contains(line, " INDEX ") {
			return "audit_entries"
		}
	}
	return ""
}

// planBulk inserts, as the owner, planEntries entries for each of
// planTenants tenants (t0001…): 50 event types, 200 users, 100 resources,
// mostly low severity (high every 20th, critical every 100th), one second
// apart; then gathers statistics.
func planBulk(t *testing.T, owner *pstore.DB) {
	t.Helper()
	var q string
	args := []any{planTenants, planEntries}
	switch owner.Dialect {
	case pstore.Postgres:
		q = `INSERT INTO audit_entries (tenant_id, seq, ts, event_type, user_name, action, resource, details,
				severity, prev_hash, hash)
			SELECT 't' || lpad(t::text, 4, '0'), n, $3::timestamptz + n * interval '1 second', 'type' || (n % 50),
				'user' || (n % 200), 'act', 'res' || (n % 100), '{}',
				CASE WHEN n % 100 = 0 THEN 'critical' WHEN n % 20 = 0 THEN 'high' WHEN n % 4 = 0 THEN 'medium' ELSE 'low' END,
				md5(n::text), md5((n + 1)::text)
			FROM generate_series(1, $1) t, generate_series(1, $2) n`
		args = append(args, planT0)
	default:
		q = `WITH RECURSIVE t(t) AS (SELECT 1 UNION ALL SELECT t + 1 FROM t WHERE t < ?),
				n(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM n WHERE n < ?)
			INSERT INTO audit_entries (tenant_id, seq, ts, event_type, user_name, action, resource, details,
				severity, prev_hash, hash)
			SELECT printf('t%04d', t), n, strftime('%Y-%m-%d %H:%M:%S', '2026-01-01', '+' || n || ' seconds'),
				'type' || (n % 50), 'user' || (n % 200), 'act', 'res' || (n % 100), '{}',
				CASE WHEN n % 100 = 0 THEN 'critical' WHEN n % 20 = 0 THEN 'high' WHEN n % 4 = 0 THEN 'medium' ELSE 'low' END,
				hex(n), hex(n + 1)
			FROM t, n`
	}
	for _, stmt := range []string{q, "ANALYZE"} {
		var a []any
		if stmt == q {
			a = args
		}
		if _, err := owner.ExecContext(t.Context(), stmt, a...); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
}

// TestTreeHashesGenericPlan checks the proof read of migration 00013 on
// PostgreSQL: audit_tree_hashes plans its query once per connection
// (plan_cache_mode = force_generic_plan, set on the function), so its
// generic plan must read both tables by primary key, whatever the
// arguments, as the service's role under row-level security.
func TestTreeHashesGenericPlan(t *testing.T) {
	migrateURL, appURL := storetest.Postgres(t)
	owner := storetest.Open(t, migrateURL)
	if err := owner.Migrate(t.Context(), store.Migrations); err != nil {
		t.Fatal(err)
	}
	planBulk(t, owner)
	if _, err := owner.ExecContext(t.Context(), `INSERT INTO audit_nodes (tenant_id, level, idx, hash)
		SELECT 't' || lpad(t::text, 4, '0'), l, i, sha256(i::text::bytea)
		FROM generate_series(1, 40) t, generate_series(4, 8) l, generate_series(0, (2500 >> l)) i`); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.ExecContext(t.Context(), "ANALYZE"); err != nil {
		t.Fatal(err)
	}
	var body, config string
	err := owner.QueryRowContext(t.Context(), `SELECT prosrc, array_to_string(coalesce(proconfig, '{}'), ',') FROM pg_proc
		WHERE proname = 'audit_tree_hashes'`).Scan(&body, &config)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(strings.Split(config, ","), "plan_cache_mode=force_generic_plan") {
		t.Fatalf("audit_tree_hashes sets %v, want plan_cache_mode=force_generic_plan", config)
	}
	// The function's query, its arguments numbered as a prepared
	// statement's: EXPLAIN EXECUTE under force_generic_plan shows the plan
	// the function runs.
	_, query, ok := strings.Cut(body, "RETURN QUERY")
	if query, _, ok = strings.Cut(query, ";"); !ok {
		t.Fatalf("no query in audit_tree_hashes:\n%s", body)
	}
	query = regexp.MustCompile(`\b(t|levels|idxs|los|his)\b`).ReplaceAllStringFunc(query, func(arg string) string {
		return map[string]string{"t": "$1", "levels": "$2", "idxs": "$3", "los": "$4", "his": "$5"}[arg]
	})
	db := storetest.Open(t, appURL)
	var plan string
	err = db.InTenantReadTx(t.Context(), "t0007", func(tx *sql.Tx) error {
		for _, stmt := range []string{"SET LOCAL plan_cache_mode = force_generic_plan",
			"PREPARE tree_hashes(text, integer[], bigint[], bigint[], bigint[]) AS " + query} {
			if _, err := tx.ExecContext(t.Context(), stmt); err != nil {
				return fmt.Errorf("%s: %w", stmt, err)
			}
		}
		var err error
		plan, err = storetest.Plan(t.Context(), tx, pstore.Postgres,
			`EXECUTE tree_hashes('t0007', '{4,5,6,7,8}', '{1,0,3,1,0}', '{17,1201}', '{32,1216}')`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plan, "$1") {
		t.Fatalf("not the generic plan:\n%s", plan)
	}
	for _, index := range []string{"audit_nodes_pkey", "audit_entries_pkey"} {
		if !strings.Contains(plan, "Index Scan using "+index) && !strings.Contains(plan, "Index Only Scan using "+index) {
			t.Errorf("the generic plan does not read by %s:\n%s", index, plan)
		}
	}
	if table := wholeScan(pstore.Postgres, plan); table != "" {
		t.Errorf("the generic plan scans %s:\n%s", table, plan)
	}
}
