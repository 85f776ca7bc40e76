package domain

import "context"

// Store keeps payments, usage and their daily rollups. Implementations keep
// the rollups in the transaction that changes the raw rows, so the two never
// disagree (RawTotals checks it).
type Store interface {
	// RecordUsage stores the records whose job id is not stored yet for
	// their tenant (UsageRecord.TenantID), and adds them to the tenants'
	// daily rollups, in one transaction. It returns, for each record,
	// whether it was new.
	RecordUsage(ctx context.Context, recs []UsageRecord) ([]bool, error)

	// ApplyPaymentEvent records ev once by its EventID (later copies are
	// OutcomeDuplicate). The tenant is ev.TenantID, else the tenant an
	// earlier event tied ev.CustomerID to; with neither the event is
	// OutcomeHeld, and applied when an event naming the customer's tenant
	// arrives. Applying merges ev into its payment (Payment.Merge) and
	// moves the rollups by the difference, in one transaction.
	ApplyPaymentEvent(ctx context.Context, ev PaymentEvent) (PaymentOutcome, error)

	// Totals sums the rollups of scope over days. Alloc fields use rate:
	// each day, a tenant is allocated floor(rate × its jobs / all tenants'
	// jobs) of each part; Totals of every tenant sums those allocations.
	Totals(ctx context.Context, scope Scope, days Days, rate RateCard) (Totals, error)

	// TenantTotals lists Totals per tenant in scope with any rollup in days,
	// ordered by tenant id, after the tenant id after, at most limit.
	TenantTotals(ctx context.Context, scope Scope, days Days, rate RateCard, after string, limit int) ([]TenantTotals, error)

	// DayTotals calls fn with Totals per tenant and day in scope over days,
	// ordered by day then tenant, streaming (it never loads them all). Days
	// on which no tenant in scope has a rollup are skipped.
	DayTotals(ctx context.Context, scope Scope, days Days, rate RateCard, fn func(DayTotals) error) error

	// DaySeries lists, by day, the Totals of scope per day over days in
	// one grouped read: days without a rollup are absent. For one tenant
	// the Alloc fields are its daily allocation (as in DayTotals); for
	// every tenant they stay zero (the whole rate card applies).
	DaySeries(ctx context.Context, scope Scope, days Days, rate RateCard) ([]DayTotals, error)

	// UnpricedModels lists, sorted, the models of unpriced usage in scope
	// over days.
	UnpricedModels(ctx context.Context, scope Scope, days Days) ([]string, error)

	// RawTotals sums the raw payments and usage records of scope over days,
	// without the rollups (Alloc fields stay zero): a consistency check.
	RawTotals(ctx context.Context, scope Scope, days Days) (Totals, error)

	// UnpricedUsage lists unpriced usage records of every tenant, ordered
	// by tenant then job id, after the key (afterTenant, afterJob), at most
	// limit: the re-pricing job's batches.
	UnpricedUsage(ctx context.Context, afterTenant, afterJob string, limit int) ([]UsageRecord, error)

	// PriceUsage stores the prices of recs (each Priced, with its
	// CostMicros) on those of them still unpriced, and moves the rollups
	// by the difference, in one transaction. A record priced meanwhile (by
	// another replica's job) is left alone: it returns how many it priced.
	PriceUsage(ctx context.Context, recs []UsageRecord) (int64, error)

	// HeldEvents lists held Stripe events ordered by event id, after the
	// event id after, at most limit; only customer's when it is not empty.
	HeldEvents(ctx context.Context, customer, after string, limit int) ([]HeldEvent, error)

	// AssignCustomer ties customer to tenant unless it is tied already, and
	// then applies the customer's held events for tenant, in one
	// transaction. Tied already to tenant, it does nothing; to another
	// tenant, it returns an *AssignedError.
	AssignCustomer(ctx context.Context, customer, tenant string) (released int64, err error)

	// ImportInfra replaces the imported infrastructure of days with costs
	// (each on one of days) in one transaction, so importing the same
	// period again replaces it rather than adding to it; days are then
	// covered (see InfraDays).
	ImportInfra(ctx context.Context, source string, days []int64, costs []InfraCost) error

	// InfraDays lists, by day, the covered days within days with every
	// tenant's imported cost summed (unallocated included).
	InfraDays(ctx context.Context, days Days) ([]InfraDay, error)

	// Payments calls fn with every tenant's payments of days, ordered by
	// payment key, streaming: the Stripe reconciliation's side.
	Payments(ctx context.Context, days Days, fn func(Payment) error) error

	// GetBudget returns tenant's budget, ErrBudgetNotFound without one.
	GetBudget(ctx context.Context, tenant string) (Budget, error)
	// PutBudget creates or replaces b.TenantID's budget.
	PutBudget(ctx context.Context, b Budget) error
	// DeleteBudget removes tenant's budget; false when it had none.
	DeleteBudget(ctx context.Context, tenant string) (bool, error)
	// Budgets lists every budget, by tenant (one per tenant at most).
	Budgets(ctx context.Context) ([]Budget, error)

	// RecordAlert stores a unless an alert of its Key is stored already
	// (then it returns false): concurrent calls store it once.
	RecordAlert(ctx context.Context, a Alert) (bool, error)
	// Alerts lists the alerts of scope newest first (by ID descending),
	// with ID below before when before > 0, at most limit.
	Alerts(ctx context.Context, scope Scope, before int64, limit int) ([]Alert, error)
}
