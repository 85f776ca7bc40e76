package domain

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/page"
)

// Commission states. A conversion that earns a commission (known, not a
// self-referral) is in exactly one:
//
//	paid      its payout batch was marked paid (final: never refunded);
//	refunded  refunds cover its whole revenue (final: refunds only add up);
//	pending   before its HoldUntil (the conversion's time plus the hold the
//	          service had when the conversion was recorded);
//	approved  from HoldUntil on, until it is paid.
//
// Approved is derived from the clock rather than written by a job when the
// hold ends: nothing has to run on time, no row changes under a reader, and
// a batch takes exactly the commissions approved at the moment it is made.
// The two final states are written (paid_at, the refund columns) in the
// transaction that makes them true. The store evaluates the same rules in
// SQL (to filter); StateAt is their Go form.
const (
	StatePending  = "pending"
	StateApproved = "approved"
	StatePaid     = "paid"
	StateRefunded = "refunded"
	// StateAll is the filter that matches every state.
	StateAll = "all"
)

// DefaultCommissionHold is how long a new commission stays pending unless
// the service is configured otherwise: two weeks, a common refund window.
const DefaultCommissionHold = 14 * 24 * time.Hour

// Error reasons of commissions and payouts.
const (
	ReasonCommissionPaid         = "COMMISSION_ALREADY_PAID"
	ReasonCommissionStateInvalid = "COMMISSION_STATE_INVALID"
	ReasonPayoutEmpty            = "PAYOUT_EMPTY"
	ReasonBatchNotFound          = "PAYOUT_BATCH_NOT_FOUND"
	ReasonBatchIDInvalid         = "PAYOUT_BATCH_ID_INVALID"
)

// ErrCommissionPaid is returned (wrapped) by Store.RecordEvents for a
// refund of a conversion whose commission was paid.
var ErrCommissionPaid = apierr.FailedPrecondition(ReasonCommissionPaid,
	"the conversion's commission was paid: it cannot be refunded here").InDomain(Domain)

// ErrBatchNotFound is returned (wrapped) by the store for a payout batch the
// tenant does not have.
var ErrBatchNotFound = errors.New("no such payout batch")

// StateAt is the state of st's commission at c.Now.
func (st ConversionState) StateAt(c Clock) string {
	switch {
	case st.Paid:
		return StatePaid
	case st.Refunded():
		return StateRefunded
	case st.HoldUntil.IsZero() && st.Day > c.UnsetHoldDay(), !st.HoldUntil.IsZero() && c.Now.Before(st.HoldUntil):
		return StatePending
	}
	return StateApproved
}

// Clock is what decides pending from approved: the time, and the hold of
// the service for the commissions that have no end of hold on record
// (recorded by a binary before commission states, during a rolling
// upgrade): those are approved from the day whose start the hold has
// passed, by UnsetHoldDay.
type Clock struct {
	Now  time.Time
	Hold time.Duration
}

// UnsetHoldDay is the last conversion day whose hold, counted from the
// day's start, has ended at Now.
func (c Clock) UnsetHoldDay() int64 { return DayOf(c.Now.Add(-c.Hold)) }

// Terms are what a conversion is recorded with: the rate of campaigns
// without one of their own and the commission hold.
type Terms struct {
	DefaultBPS int64
	Hold       time.Duration
}

// CommissionRow is one commission as the store lists it.
type CommissionRow struct {
	ID    string
	State ConversionState
	// StateName is the state at the time of the read (StateAt).
	StateName string
	BatchID   string
	PaidAt    time.Time
}

// CommissionFilter selects commissions: State is one state or "" for all;
// the Clock decides pending from approved.
type CommissionFilter struct {
	State string
	Clock
}

// Batch is a payout batch.
type Batch struct {
	ID          string
	CreatedAt   time.Time
	Count       int64 // commissions when created
	PayoutCents int64 // their commission when created
	PaidAt      time.Time
	PaidCount   int64 // commissions marked paid with it
	PaidCents   int64
}

// CommissionQuery is a ListCommissions request.
type CommissionQuery struct {
	State string
	page.Request
}

// CommissionPage is ListCommissions' answer.
type CommissionPage struct {
	Commissions []CommissionRow
	Next        string
}

// commissionState checks a state filter; "" is def.
func commissionState(state, def string) (string, error) {
	if state == "" {
		state = def
	}
	switch state {
	case StateAll, StatePending, StateApproved, StatePaid, StateRefunded:
		return state, nil
	}
	return "", invalid(ReasonCommissionStateInvalid, "state must be all, pending, approved, paid or refunded, got %q",
		apierr.Clip(state))
}

// Commissions lists the caller's commissions in a state (default all), by
// conversion id, a page at a time.
func (s *Service) Commissions(ctx context.Context, c Caller, q CommissionQuery) (CommissionPage, error) {
	state, err := commissionState(q.State, StateAll)
	if err != nil {
		return CommissionPage{}, err
	}
	size, err := q.Size(DefaultPageSize, MaxPageSize)
	if err != nil {
		return CommissionPage{}, err
	}
	scope := c.Tenant + "\x00" + state
	after, err := page.Decode(q.PageToken, scope)
	if err != nil {
		return CommissionPage{}, err
	}
	f := CommissionFilter{State: state, Clock: s.clock()}
	if state == StateAll {
		f.State = ""
	}
	rows, err := s.store.Commissions(ctx, c.Tenant, f, after, size+1)
	if err != nil {
		return CommissionPage{}, fmt.Errorf("commissions: %w", err)
	}
	var out CommissionPage
	out.Commissions, out.Next = page.Trim(rows, size, func(r CommissionRow) string { return r.ID }, scope)
	return out, nil
}

// clock is the service's Clock now.
func (s *Service) clock() Clock {
	return Clock{Now: s.cfg.Now().UTC().Truncate(time.Microsecond), Hold: s.cfg.CommissionHold}
}

// CreatePayoutBatch puts the caller's approved commissions that are in no
// batch into a new one.
func (s *Service) CreatePayoutBatch(ctx context.Context, c Caller) (Batch, error) {
	b, err := s.store.CreateBatch(ctx, c.Tenant, s.cfg.NewBatchID(), s.clock())
	if err != nil {
		return Batch{}, fmt.Errorf("create payout batch: %w", err)
	}
	if b.Count == 0 {
		return Batch{}, apierr.FailedPrecondition(ReasonPayoutEmpty,
			"no approved commission is waiting for a payout").InDomain(Domain)
	}
	return b, nil
}

// MarkPayoutPaid marks the caller's batch paid, and its commissions that
// were not refunded; changed is false when it was paid already.
func (s *Service) MarkPayoutPaid(ctx context.Context, c Caller, batchID string) (b Batch, changed bool, err error) {
	if err := checkText(batchID, ReasonBatchIDInvalid, "batch_id", true); err != nil {
		return Batch{}, false, err
	}
	b, changed, err = s.store.MarkBatchPaid(ctx, c.Tenant, batchID, s.cfg.Now().UTC().Truncate(time.Microsecond))
	if errors.Is(err, ErrBatchNotFound) {
		return Batch{}, false, apierr.NotFound(ReasonBatchNotFound, "no payout batch %q", apierr.Clip(batchID)).InDomain(Domain)
	}
	if err != nil {
		return Batch{}, false, fmt.Errorf("mark payout paid: %w", err)
	}
	return b, changed, nil
}
