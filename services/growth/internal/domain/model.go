// Package domain holds the growth use cases: referral codes, their events
// and commissions, the leaderboard and the payout export. It owns the Store
// interface its storage implements.
package domain

import (
	"time"

	"github.com/echopilot/echopilot/services/growth/internal/money"
)

// EventType is what happened to a referral.
type EventType string

// The event types.
const (
	EventClick      EventType = "click"
	EventSignup     EventType = "signup"
	EventConversion EventType = "conversion"
	EventRefund     EventType = "refund"
)

// Referral is one referrer's code in one campaign.
type Referral struct {
	Code       string
	ReferrerID string
	Campaign   string
	CreatedAt  time.Time
}

// Counts are a referral's figures over some days. Money is in cents.
type Counts struct {
	Clicks        int64
	Signups       int64
	Conversions   int64 // conversions that earn commission
	SelfReferrals int64 // conversions of the referrer itself: no commission
	RevenueCents  int64 // conversions' revenue net of refunds
	RefundedCents int64 // refunds already subtracted from RevenueCents
	PayoutCents   int64
}

// Add returns c + d.
func (c Counts) Add(d Counts) Counts {
	return Counts{
		Clicks: c.Clicks + d.Clicks, Signups: c.Signups + d.Signups, Conversions: c.Conversions + d.Conversions,
		SelfReferrals: c.SelfReferrals + d.SelfReferrals, RevenueCents: c.RevenueCents + d.RevenueCents,
		RefundedCents: c.RefundedCents + d.RefundedCents, PayoutCents: c.PayoutCents + d.PayoutCents,
	}
}

// Sub returns c - d.
func (c Counts) Sub(d Counts) Counts {
	return c.Add(Counts{
		Clicks: -d.Clicks, Signups: -d.Signups, Conversions: -d.Conversions, SelfReferrals: -d.SelfReferrals,
		RevenueCents: -d.RevenueCents, RefundedCents: -d.RefundedCents, PayoutCents: -d.PayoutCents,
	})
}

// ReferralCounts is a referral with its counts: a leaderboard row.
type ReferralCounts struct {
	Referral
	Counts
}

// Event is one validated event; Code is canonical (empty only for a
// refund that names none).
type Event struct {
	ID         string
	Type       EventType
	Code       string
	CustomerID string
	// AmountCents is a conversion's revenue, a refund's refunded amount (0:
	// all of it), 0 otherwise.
	AmountCents int64
	RefundOf    string
	OccurredAt  time.Time
}

// Same reports whether e and o are the same event as far as a replay goes:
// everything the client says but the time, which defaults to the moment
// of arrival.
func (e Event) Same(o Event) bool {
	return e.ID == o.ID && e.Type == o.Type && e.Code == o.Code && e.CustomerID == o.CustomerID &&
		e.AmountCents == o.AmountCents && e.RefundOf == o.RefundOf
}

// EventOutcome is what recording one event did.
type EventOutcome struct {
	// Code is the referral credited: the event's, or for a refund its
	// conversion's once known.
	Code         string
	Duplicate    bool
	SelfReferral bool
}

// ConversionState is everything known about one conversion: its own event
// (once it arrived) and the refunds naming it, which may come first. Merge
// is commutative, so any arrival order gives the same state, and the
// rollups hold Contribution of each state.
type ConversionState struct {
	Known        bool // the conversion event arrived
	Code         string
	Day          int64
	RevenueCents int64
	RateBPS      int64 // the campaign's rate when the conversion was recorded
	SelfReferral bool
	// RefundCents sums the refunds' amounts, capped at money.MaxCents (no
	// conversion is worth more); RefundAll is set by a refund of everything.
	RefundCents int64
	RefundAll   bool
	// OccurredAt is the conversion's time and HoldUntil the end of its
	// commission's hold, both set with the conversion event (zero before;
	// HoldUntil also zero for one an older binary recorded).
	OccurredAt, HoldUntil time.Time
	// Paid is set once the payout batch holding the commission was marked
	// paid: no refund may change it after that.
	Paid bool
}

// MergeConversion records the conversion event itself, recorded under
// terms: its campaign's rate and the commission hold.
func (s ConversionState) MergeConversion(code string, at time.Time, revenue, rateBPS int64, hold time.Duration, self bool) ConversionState {
	s.Known, s.Code, s.Day, s.RevenueCents, s.RateBPS, s.SelfReferral = true, code, DayOf(at), revenue, rateBPS, self
	s.OccurredAt, s.HoldUntil = at, at.Add(hold)
	return s
}

// MergeRefund adds a refund of amount cents (0: everything). A paid
// commission is final: its refund fails with ErrCommissionPaid (the
// payout already went out; claw it back outside the platform).
func (s ConversionState) MergeRefund(amount int64) (ConversionState, error) {
	if s.Paid {
		return s, ErrCommissionPaid
	}
	if amount == 0 {
		s.RefundAll = true
	}
	s.RefundCents = min(s.RefundCents+amount, money.MaxCents)
	return s, nil
}

// Refunded reports whether refunds cover the conversion's whole revenue:
// its commission is refunded for good (refunds only add up).
func (s ConversionState) Refunded() bool {
	return s.RefundAll || s.RefundCents > 0 && s.RefundCents >= s.RevenueCents
}

// Contribution is what the conversion adds to its referral's rollup of its
// day: nothing before it is known, a self-referral count for the
// referrer's own purchase, else one conversion with its net revenue and
// the commission on it at its recorded rate.
func (s ConversionState) Contribution() Counts {
	switch {
	case !s.Known:
		return Counts{}
	case s.SelfReferral:
		return Counts{SelfReferrals: 1}
	}
	refunded := min(s.RefundCents, s.RevenueCents)
	if s.RefundAll {
		refunded = s.RevenueCents
	}
	net := s.RevenueCents - refunded
	return Counts{Conversions: 1, RevenueCents: net, RefundedCents: refunded, PayoutCents: money.Commission(net, s.RateBPS)}
}

// Campaign holds a campaign's settings; nil RateBPS and empty LandingURL
// use the service defaults.
type Campaign struct {
	Name       string
	RateBPS    *int64
	LandingURL string
	UpdatedAt  time.Time
}

// LinkClick is a click of a referral link as the store records it.
type LinkClick struct {
	ID         string // made by the service, never by the visitor
	Code       string
	OccurredAt time.Time
	// VisitorKeys are keyed hashes that name the visitor (see
	// Service.visitorKeys): the first decides whether the click counts,
	// the others are marked with the click that did.
	VisitorKeys []string
}

// Days is an inclusive range of UTC days, counted since the Unix epoch.
type Days struct {
	From, To int64
}

// DayOf returns the UTC day number of t.
func DayOf(t time.Time) int64 { return t.UTC().Unix() / 86400 }

// LastDays is the n whole UTC days ending with the day of now.
func LastDays(now time.Time, n int) Days {
	to := DayOf(now)
	return Days{From: to - int64(n) + 1, To: to}
}
