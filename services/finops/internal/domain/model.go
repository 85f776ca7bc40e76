// Package domain holds the finops use cases: payments from Stripe events,
// priced usage of completed jobs, the rate card, and the reports built on
// daily rollups. It owns the Store interface its storage implements.
package domain

import "time"

// Money units. Revenue and the rate card are kept in cents; AI cost in
// micro-dollars, because one job's tokens often cost less than a cent.
const (
	MicrosPerCent   = 10_000
	MicrosPerDollar = 1_000_000
)

// Currency is the one currency finops reports in (ISO 4217, lower case as
// Stripe spells it).
const Currency = "usd"

// Scope is what a read covers: one tenant, or every tenant for a platform
// admin's view.
type Scope struct {
	Tenant string
	All    bool
}

// Days is an inclusive range of UTC days, each counted as whole days since
// the Unix epoch (the rollups' key).
type Days struct {
	From, To int64
}

// Len is the number of days in the range.
func (d Days) Len() int64 { return d.To - d.From + 1 }

// DayOf returns the UTC day number of t.
func DayOf(t time.Time) int64 {
	return t.UTC().Unix() / 86400
}

// DayStart returns the start (00:00 UTC) of day.
func DayStart(day int64) time.Time { return time.Unix(day*86400, 0).UTC() }

// LastDays is the n whole UTC days ending with the day of now.
func LastDays(now time.Time, n int) Days {
	to := DayOf(now)
	return Days{From: to - int64(n) + 1, To: to}
}

// RateCard is the infrastructure cost per day, in micro-dollars.
type RateCard struct {
	ComputeMicrosPerDay  int64
	DatabaseMicrosPerDay int64
}

// PerDay is the whole rate card for one day.
func (r RateCard) PerDay() int64 { return r.ComputeMicrosPerDay + r.DatabaseMicrosPerDay }

// UsageRecord is the usage of one completed job. CostMicros is set when
// Priced; a record whose model has no price at CompletedAt is stored
// unpriced with its token counts, never as zero cost.
type UsageRecord struct {
	TenantID     string
	JobID        string
	JobType      string
	Model        string
	InputTokens  int64
	OutputTokens int64
	DurationMS   int64
	CompletedAt  time.Time
	Priced       bool
	CostMicros   int64
}

// PaymentEvent is what one Stripe event says about one payment: a charge,
// or an invoice paid without a charge. Several events describe the same
// payment (invoice.paid and charge.succeeded of the same charge,
// charge.refunded later); Payment.Merge combines them.
type PaymentEvent struct {
	EventID    string
	Type       string
	CustomerID string
	// TenantID comes from the object's metadata.tenant_id; empty when the
	// event does not say.
	TenantID string
	// PaymentKey is the charge id, or the invoice id of an invoice paid
	// without a charge.
	PaymentKey string
	Currency   string
	// GrossCents is the amount paid.
	GrossCents int64
	// RefundedCents is the amount refunded so far (Stripe's amount_refunded,
	// cumulative), 0 when the event does not say.
	RefundedCents int64
	// At is when the payment happened as the event tells it.
	At time.Time
}

// Payment is the merged state of one payment.
type Payment struct {
	Key           string
	TenantID      string
	Currency      string
	GrossCents    int64
	RefundedCents int64
	PaidAt        time.Time
}

// Merge folds ev into p. It is commutative, associative and idempotent
// (maxima and a minimum), so events in any order, or replayed, give the
// same payment. p is the zero Payment for the first event.
func (p Payment) Merge(ev PaymentEvent) Payment {
	if p.Key == "" {
		p.Key = ev.PaymentKey
	}
	if p.Currency == "" {
		p.Currency = ev.Currency
	}
	p.GrossCents = max(p.GrossCents, ev.GrossCents)
	p.RefundedCents = max(p.RefundedCents, ev.RefundedCents)
	at := ev.At.UTC().Truncate(time.Second)
	if p.PaidAt.IsZero() || at.Before(p.PaidAt) {
		p.PaidAt = at
	}
	return p
}

// NetCents is the revenue the payment still brings: gross less refunds,
// never below zero.
func (p Payment) NetCents() int64 { return max(0, p.GrossCents-p.RefundedCents) }

// RefundCents is the refund already subtracted from the gross.
func (p Payment) RefundCents() int64 { return p.GrossCents - p.NetCents() }

// Counted reports whether the payment counts in payment_count: a payment
// refunded in full no longer does.
func (p Payment) Counted() bool { return p.NetCents() > 0 }

// Day is the rollup day of the payment: revenue counts on the day it was
// paid, and a later refund reduces that day.
func (p Payment) Day() int64 { return DayOf(p.PaidAt) }

// Outcomes of a Stripe event.
const (
	OutcomeApplied   = "applied"
	OutcomeDuplicate = "duplicate"
	OutcomeIgnored   = "ignored"
	OutcomeHeld      = "held"
)

// PaymentOutcome is what applying one event did.
type PaymentOutcome struct {
	Outcome  string
	TenantID string
}

// Totals are sums over a scope and a range of days. The Alloc fields are
// the infrastructure allocated to the tenants in scope (see the allocation
// rule on FinOpsService in finops.proto).
type Totals struct {
	RevenueCents         int64
	RefundedCents        int64
	PaymentCount         int64
	AICostMicros         int64
	JobCount             int64
	InputTokens          int64
	OutputTokens         int64
	UnpricedJobs         int64
	UnpricedInputTokens  int64
	UnpricedOutputTokens int64
	AllocComputeMicros   int64
	AllocDatabaseMicros  int64
}

// TenantTotals are one tenant's Totals.
type TenantTotals struct {
	TenantID string
	Totals
}

// DayTotals are one tenant's Totals on one day.
type DayTotals struct {
	TenantID string
	Day      int64
	Totals
}

// InfraCost is imported infrastructure cost of one tenant on one day;
// TenantID "" is cost no rule mapped to a tenant (unallocated).
type InfraCost struct {
	Day            int64
	TenantID       string
	ComputeMicros  int64
	DatabaseMicros int64
}

// InfraDay is the imported infrastructure of every tenant on one covered
// day, unallocated cost included.
type InfraDay struct {
	Day            int64
	ComputeMicros  int64
	DatabaseMicros int64
}
