// Package catalog checks the PostgreSQL schemas the services migrate to, by
// reading pg_catalog rather than the migrations' text: every relation with a
// tenant_id column must be guarded by row-level security (DESIGN.md §2 rule
// 7), unless it is one of the few deliberate exceptions listed, with their
// reasons, in rls_catalog_test.go.
//
// It is a package of its own, without the e2e package's TestMain, so it
// builds no binaries: it imports each service's app.Spec and applies the
// migrations the binary would.
package catalog

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/echopilot/echopilot/platform/store"
)

// The problems checkRLS reports. Policy problems name the policy and are
// built by policyProblem.
const (
	problemNotEnabled = "row-level security is not ENABLEd"
	problemNotForced  = "row-level security is not FORCEd (the owner bypasses it)"
	problemNoSelect   = "no permissive policy applying to " + store.AppRole + " covers SELECT"
	problemView       = "view without security_invoker: it reads the tables with its owner's rights"
	problemMatview    = "materialized view: it cannot have row-level security"
)

// tenantSetting is what every policy expression must read: the tenant a
// transaction is scoped to (platform/store InTenantTx).
const tenantSetting = "'app.tenant_id'"

// relation is a table or view with a tenant_id column, and what is wrong
// with its row-level security (nothing when Problems is empty).
type relation struct {
	Schema, Name string
	Kind         string // pg_class.relkind: r, p, v or m
	Problems     []string
}

// key names the relation in the exception list: service.table, or
// service.schema.table outside the public schema.
func (r relation) key(service string) string {
	if r.Schema == "public" {
		return service + "." + r.Name
	}
	return service + "." + r.Schema + "." + r.Name
}

// relationsQuery lists every table (plain or partitioned, partitions
// included), view and materialized view of every non-system schema that has
// a tenant_id column.
const relationsQuery = `
SELECT c.oid, n.nspname, c.relname, c.relkind::text, c.relrowsecurity, c.relforcerowsecurity,
	COALESCE((SELECT option_value FROM pg_catalog.pg_options_to_table(c.reloptions)
		WHERE option_name = 'security_invoker'), '')
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm')
	AND n.nspname <> 'information_schema'
	AND n.nspname NOT LIKE 'pg\_%'
	AND EXISTS (SELECT FROM pg_catalog.pg_attribute a
		WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND a.attnum > 0 AND NOT a.attisdropped)
ORDER BY n.nspname, c.relname`

// policiesQuery lists a table's policies: command, whether it is permissive
// and applies to role $2 (PUBLIC, or a role $2 is a member of), and its
// expressions.
const policiesQuery = `
SELECT p.polname, p.polcmd::text, p.polpermissive,
	0 = ANY (p.polroles) OR EXISTS (SELECT FROM unnest(p.polroles) r WHERE pg_catalog.pg_has_role($2::name, r, 'MEMBER')),
	COALESCE(pg_catalog.pg_get_expr(p.polqual, p.polrelid), ''),
	COALESCE(pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid), '')
FROM pg_catalog.pg_policy p
WHERE p.polrelid = $1
ORDER BY p.polname`

// checkRLS lists the relations of db with a tenant_id column and what is
// wrong with each: a table must have row-level security enabled and forced,
// a permissive policy that lets store.AppRole SELECT, and policies whose
// every USING and WITH CHECK expression reads app.tenant_id; a view must be
// security_invoker; a materialized view is always a problem.
func checkRLS(ctx context.Context, db *store.DB) ([]relation, error) {
	type row struct {
		oid uint32
		relation
		enabled, forced bool
		invoker         string
	}
	rows, err := db.QueryContext(ctx, relationsQuery)
	if err != nil {
		return nil, fmt.Errorf("list relations: %w", err)
	}
	var found []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.oid, &r.Schema, &r.Name, &r.Kind, &r.enabled, &r.forced, &r.invoker); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list relations: %w", err)
		}
		found = append(found, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list relations: %w", err)
	}

	rels := make([]relation, 0, len(found))
	for _, r := range found {
		switch r.Kind {
		case "v":
			if !isTrue(r.invoker) {
				r.Problems = append(r.Problems, problemView)
			}
		case "m":
			r.Problems = append(r.Problems, problemMatview)
		default:
			if !r.enabled {
				r.Problems = append(r.Problems, problemNotEnabled)
			}
			if !r.forced {
				r.Problems = append(r.Problems, problemNotForced)
			}
			p, err := policyProblems(ctx, db, r.oid)
			if err != nil {
				return nil, fmt.Errorf("%s.%s: %w", r.Schema, r.Name, err)
			}
			r.Problems = append(r.Problems, p...)
		}
		rels = append(rels, r.relation)
	}
	return rels, nil
}

// policyProblems checks the policies of the table with oid.
func policyProblems(ctx context.Context, db *store.DB, oid uint32) ([]string, error) {
	rows, err := db.QueryContext(ctx, policiesQuery, oid, store.AppRole)
	if err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	defer rows.Close()
	var (
		problems  []string
		selecting bool
	)
	for rows.Next() {
		var (
			name, cmd, using, check string
			permissive, applies     bool
		)
		if err := rows.Scan(&name, &cmd, &permissive, &applies, &using, &check); err != nil {
			return nil, fmt.Errorf("list policies: %w", err)
		}
		// polcmd: r SELECT, a INSERT, w UPDATE, d DELETE, * ALL.
		if permissive && applies && (cmd == "r" || cmd == "*") {
			selecting = true
		}
		if using == "" && check == "" {
			problems = append(problems, policyProblem(name, "has no USING or WITH CHECK expression"))
		}
		if using != "" && !strings.Contains(using, tenantSetting) {
			problems = append(problems, policyProblem(name, "USING does not read app.tenant_id: "+using))
		}
		if check != "" && !strings.Contains(check, tenantSetting) {
			problems = append(problems, policyProblem(name, "WITH CHECK does not read app.tenant_id: "+check))
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	if !selecting {
		problems = append(problems, problemNoSelect)
	}
	return problems, nil
}

func policyProblem(policy, what string) string { return "policy " + policy + " " + what }

// isTrue reads a boolean reloption as PostgreSQL does.
func isTrue(v string) bool {
	switch strings.ToLower(v) {
	case "true", "on", "yes", "1", "t", "y":
		return true
	}
	return false
}

// judge compares the relations checkRLS found in service's database with
// exceptions (service.table → reason) and returns what fails: relations with
// problems and no exception, and exceptions of this service that excuse
// nothing (the table is gone, lost its tenant_id, or is now guarded), so
// the list cannot outlive its reasons.
func judge(service string, rels []relation, exceptions map[string]string) []string {
	var failures []string
	seen := map[string]bool{}
	for _, r := range rels {
		key := r.key(service)
		seen[key] = true
		_, excused := exceptions[key]
		switch {
		case len(r.Problems) > 0 && !excused:
			failures = append(failures, key+": "+strings.Join(r.Problems, "; "))
		case len(r.Problems) == 0 && excused:
			failures = append(failures, key+": listed as an exception but guarded by row-level security now: remove the exception")
		}
	}
	for key := range exceptions {
		if strings.HasPrefix(key, service+".") && !seen[key] {
			failures = append(failures, key+": listed as an exception but there is no such relation with a tenant_id column: remove the exception")
		}
	}
	slices.Sort(failures)
	return failures
}
