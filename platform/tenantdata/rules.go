// Package tenantdata serves TenantDataService over a service's database:
// it exports one tenant's rows and erases them, kind by kind, where a kind
// is a table that has a tenant_id column (found in the database catalog,
// so a table added later is covered without a list to keep). A service
// declares only its exceptions in Rules.
package tenantdata

import "context"

// The erasure rules a kind reports.
const (
	ActionDelete       = "delete"
	ActionKeep         = "keep"
	ActionPseudonymise = "pseudonymise"
)

// Rules are a service's exceptions to "export every row, erase every row".
// A table named here that does not exist (yet) is ignored.
type Rules struct {
	// Redact lists, per table, columns left out of the export (secrets,
	// hashes of secrets).
	Redact map[string][]string
	// Skip lists tables left out of the export, each with why.
	Skip map[string]string
	// Keep lists tables an erasure keeps or pseudonymises instead of
	// deleting.
	Keep map[string]Rule
	// Erase lists tables whose rows the service deletes its own way
	// instead of by DELETE (counters only a database function may write);
	// they are reported as deleted.
	Erase map[string]EraseFunc
	// BeforeErase runs at the start of every EraseTenantData call, before
	// any row is touched; it must be safe to repeat (it gets the same
	// erasure id on a re-run).
	BeforeErase func(ctx context.Context, tenant, erasureID string) error
	// AfterErase runs when a call finds nothing left to erase (so also on
	// every re-run after that); it must be safe to repeat.
	AfterErase func(ctx context.Context, tenant, erasureID string) error
}

// Rule is what an erasure does to a kind instead of deleting its rows.
type Rule struct {
	// Action is ActionKeep (rows stay as they are) or ActionPseudonymise
	// (the tenant columns get the erasure's pseudonym and Blank is blanked).
	Action string
	// Reason is why, reported with the kind's progress and documented.
	Reason string
	// Where, when set, is a SQL predicate over the table's columns that
	// selects the rows the rule applies to; the tenant's other rows are
	// deleted.
	Where string
	// Blank lists text columns set to '' when a row is pseudonymised.
	Blank []string
}

// EraseFunc deletes up to limit of tenant's rows of a table and returns
// how many it deleted and how many are left.
type EraseFunc func(ctx context.Context, tenant string, limit int) (deleted, remaining int64, err error)
