package catalog

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/echopilot/echopilot/platform/devstack"
	"github.com/echopilot/echopilot/platform/service"
	"github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/platform/store/storetest"
	auditapp "github.com/echopilot/echopilot/services/audit/app"
	finopsapp "github.com/echopilot/echopilot/services/finops/app"
	growthapp "github.com/echopilot/echopilot/services/growth/app"
	queueapp "github.com/echopilot/echopilot/services/queue/app"
	tenancyapp "github.com/echopilot/echopilot/services/tenancy/app"
)

// exceptions are the relations with a tenant_id column that deliberately
// have no row-level security, keyed service.table, each with its reason. An
// entry that excuses nothing (the table is gone or now guarded) fails the
// test. Keep it short: a tenant's data belongs behind a policy.
var exceptions = map[string]string{
	// The transactional outbox (platform/outbox) is infrastructure: the relay
	// claims and delivers every tenant's events from a transaction scoped to
	// no tenant, and the consumer gets tenant_id with each event.
	"tenancy.outbox": "outbox: the relay reads across tenants",
	"audit.outbox":   "outbox: the relay reads across tenants",
	"queue.outbox":   "outbox: the relay reads across tenants",
	"finops.outbox":  "outbox: the relay reads across tenants",
	// The Stripe inbox is written before an event's tenant is known
	// (tenant_id is '' until then) and held events are released by customer,
	// across tenants.
	"finops.stripe_events": "Stripe inbox: written before the tenant is known",
	// Stripe customer → tenant, read to find the tenant of an event.
	"finops.stripe_customers": "Stripe customer map: read to find the tenant",
	// Imported infrastructure cost (finops-import): the operator's import
	// replaces a whole day, every tenant's rows and the unallocated ('')
	// one, in one transaction; the service's reads name the tenant and day.
	"finops.infra_costs": "imported infrastructure cost: a day is replaced across tenants",
	// The deployment-wide code registry: codes are unique across tenants and
	// a public click must find a code's tenant before anything is scoped to
	// it; a row says only which tenant a code belongs to, which clicking the
	// code tells anyone anyway.
	"growth.referral_codes": "code registry: looked up before the tenant is known",
}

// specs are the services whose schemas are checked, as their binaries
// define them: the same Migrations and ExtraMigrations service.Run applies.
func specs() []service.Spec {
	return []service.Spec{
		tenancyapp.Spec(), finopsapp.Spec(), auditapp.Spec(), queueapp.Spec(), growthapp.Spec(),
	}
}

// Every table, view and materialized view with a tenant_id column in every
// service's PostgreSQL schema is guarded by row-level security, or is one of
// the exceptions.
func TestTenantTablesHaveRowLevelSecurity(t *testing.T) {
	if os.Getenv(storetest.EnvPostgresURL) == "" {
		// Skip here, not per service: the stale-exception check needs them all.
		t.Skip(storetest.EnvPostgresURL + " not set: skipping the PostgreSQL row-level security catalog check")
	}
	specs := specs()
	var names, stack []string
	for _, s := range specs {
		names = append(names, s.Name)
	}
	for _, s := range devstack.Services() {
		stack = append(stack, s.Name)
	}
	slices.Sort(names)
	slices.Sort(stack)
	if !slices.Equal(names, stack) {
		t.Fatalf("checked services %v, the stack runs %v: add the missing app.Spec to specs", names, stack)
	}
	for key := range exceptions {
		if !slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(key, n+".") }) {
			t.Errorf("exception %s names no service", key)
		}
	}

	for _, spec := range specs {
		t.Run(spec.Name, func(t *testing.T) {
			migrateURL, appURL := storetest.Postgres(t)
			owner := storetest.Open(t, migrateURL)
			for _, m := range append([]store.Migrations{spec.Migrations}, spec.ExtraMigrations...) {
				if err := owner.Migrate(t.Context(), m); err != nil {
					t.Fatal(err)
				}
			}
			rels, err := checkRLS(t.Context(), owner)
			if err != nil {
				t.Fatal(err)
			}
			guarded := 0
			for _, r := range rels {
				switch reason, excused := exceptions[r.key(spec.Name)]; {
				case len(r.Problems) == 0:
					guarded++
				case excused:
					t.Logf("%s: no row-level security, by exception (%s)", r.key(spec.Name), reason)
				}
			}
			if guarded == 0 {
				t.Errorf("no relation with a tenant_id column is guarded: did the migrations run? %+v", rels)
			}
			t.Logf("%d relations with a tenant_id column, %d guarded by row-level security", len(rels), guarded)
			for _, f := range judge(spec.Name, rels, exceptions) {
				t.Error(f)
			}
			// The role the service connects as is subject to all of it.
			if err := store.RoleSafety(t.Context(), storetest.Open(t, appURL)); err != nil {
				t.Error(err)
			}
		})
	}
}

// The checker reports each way a tenant table can escape row-level
// security, in any schema, and nothing for a guarded one.
func TestCheckRLSReportsGaps(t *testing.T) {
	migrateURL, _ := storetest.Postgres(t)
	db := storetest.Open(t, migrateURL)
	const policy = "(tenant_id = current_setting('app.tenant_id', true))"
	for _, stmt := range []string{
		// Guarded: ENABLE, FORCE and a policy for every command.
		`CREATE TABLE guarded (tenant_id text NOT NULL, v int)`,
		`ALTER TABLE guarded ENABLE ROW LEVEL SECURITY`,
		`ALTER TABLE guarded FORCE ROW LEVEL SECURITY`,
		`CREATE POLICY guarded_all ON guarded USING ` + policy + ` WITH CHECK ` + policy,
		// No tenant_id, or a dropped one: not a tenant table.
		`CREATE TABLE settings (k text, v text)`,
		`CREATE TABLE dropped (tenant_id text, v int)`,
		`ALTER TABLE dropped DROP COLUMN tenant_id`,
		// Nothing at all.
		`CREATE TABLE no_rls (tenant_id text NOT NULL, v int)`,
		// ENABLE and a policy, but the owner is not bound.
		`CREATE TABLE not_forced (tenant_id text NOT NULL)`,
		`ALTER TABLE not_forced ENABLE ROW LEVEL SECURITY`,
		`CREATE POLICY not_forced_all ON not_forced USING ` + policy,
		// ENABLE and FORCE, but no policy: nothing readable.
		`CREATE TABLE no_policy (tenant_id text NOT NULL)`,
		`ALTER TABLE no_policy ENABLE ROW LEVEL SECURITY`,
		`ALTER TABLE no_policy FORCE ROW LEVEL SECURITY`,
		// Policies that do not scope to the tenant.
		`CREATE TABLE loose (tenant_id text NOT NULL)`,
		`ALTER TABLE loose ENABLE ROW LEVEL SECURITY`,
		`ALTER TABLE loose FORCE ROW LEVEL SECURITY`,
		`CREATE POLICY loose_select ON loose FOR SELECT USING (true)`,
		`CREATE POLICY loose_insert ON loose FOR INSERT WITH CHECK (tenant_id <> '')`,
		// Policies only for writes, or for a role the app is not in.
		`CREATE TABLE insert_only (tenant_id text NOT NULL)`,
		`ALTER TABLE insert_only ENABLE ROW LEVEL SECURITY`,
		`ALTER TABLE insert_only FORCE ROW LEVEL SECURITY`,
		`CREATE POLICY insert_only_insert ON insert_only FOR INSERT WITH CHECK ` + policy,
		`CREATE TABLE other_role (tenant_id text NOT NULL)`,
		`ALTER TABLE other_role ENABLE ROW LEVEL SECURITY`,
		`ALTER TABLE other_role FORCE ROW LEVEL SECURITY`,
		`CREATE POLICY other_role_all ON other_role TO pg_monitor USING ` + policy,
		// Partitioned: the parent and its partition are checked.
		`CREATE TABLE parted (tenant_id text NOT NULL) PARTITION BY LIST (tenant_id)`,
		`CREATE TABLE parted_acme PARTITION OF parted FOR VALUES IN ('acme')`,
		// Another schema.
		`CREATE SCHEMA scratch`,
		`CREATE TABLE scratch.hidden (tenant_id text NOT NULL)`,
		// Views read with their owner's rights unless security_invoker.
		`CREATE VIEW definer_view AS SELECT tenant_id FROM guarded`,
		`CREATE VIEW invoker_view WITH (security_invoker = on) AS SELECT tenant_id FROM guarded`,
		`CREATE MATERIALIZED VIEW snapshot AS SELECT tenant_id FROM guarded`,
	} {
		if _, err := db.ExecContext(t.Context(), stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	rels, err := checkRLS(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	missingAll := []string{problemNotEnabled, problemNotForced, problemNoSelect}
	want := map[string][]string{
		"guarded":     nil,
		"no_rls":      missingAll,
		"not_forced":  {problemNotForced},
		"no_policy":   {problemNoSelect},
		"insert_only": {problemNoSelect},
		"other_role":  {problemNoSelect},
		"loose": {
			policyProblem("loose_insert", "WITH CHECK does not read app.tenant_id: (tenant_id <> ''::text)"),
			policyProblem("loose_select", "USING does not read app.tenant_id: true"),
		},
		"parted":         missingAll,
		"parted_acme":    missingAll,
		"scratch.hidden": missingAll,
		"definer_view":   {problemView},
		"invoker_view":   nil,
		"snapshot":       {problemMatview},
	}
	got := map[string][]string{}
	for _, r := range rels {
		name := r.Name
		if r.Schema != "public" {
			name = r.Schema + "." + r.Name
		}
		got[name] = r.Problems
	}
	for name, problems := range want {
		p, ok := got[name]
		if !ok {
			t.Errorf("%s: not listed", name)
		} else if !slices.Equal(p, problems) {
			t.Errorf("%s: problems %q, want %q", name, p, problems)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: listed, but it has no tenant_id column", name)
		}
	}
}

// judge fails unexcused gaps and exceptions that excuse nothing; it needs
// no database.
func TestJudgeKeepsExceptionsHonest(t *testing.T) {
	rels := []relation{
		{Schema: "public", Name: "guarded", Kind: "r"},
		{Schema: "public", Name: "outbox", Kind: "r", Problems: []string{problemNotEnabled}},
		{Schema: "public", Name: "leaky", Kind: "r", Problems: []string{problemNotForced}},
		{Schema: "public", Name: "fixed", Kind: "r"},
		{Schema: "extra", Name: "leaky", Kind: "r", Problems: []string{problemNoSelect}},
	}
	exceptions := map[string]string{
		"svc.outbox":    "excused",
		"svc.fixed":     "was excused, now guarded",
		"svc.gone":      "was excused, now dropped",
		"other.missing": "another service's: not judged here",
	}
	got := judge("svc", rels, exceptions)
	want := []string{
		"svc.extra.leaky: " + problemNoSelect,
		"svc.fixed: listed as an exception but guarded by row-level security now: remove the exception",
		"svc.gone: listed as an exception but there is no such relation with a tenant_id column: remove the exception",
		"svc.leaky: " + problemNotForced,
	}
	if !slices.Equal(got, want) {
		t.Errorf("judge:\n got %q\nwant %q", got, want)
	}
}
