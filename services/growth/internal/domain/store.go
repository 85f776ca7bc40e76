package domain

import (
	"context"
	"time"
)

// CodeOwner is a code and the tenant it belongs to.
type CodeOwner struct {
	Code, Tenant string
}

// Filter narrows the leaderboard; empty fields match everything.
type Filter struct {
	ReferrerID, Campaign string
}

// Rank is a leaderboard position to continue after: revenue, then code.
type Rank struct {
	RevenueCents int64
	Code         string
}

// PayoutRow is one line of the payout export.
type PayoutRow struct {
	Code, ReferrerID, Campaign string
	Signups, Conversions       int64
	RevenueCents, PayoutCents  int64
}

// CommissionPayoutQuery selects the commissions of a payout export: those
// of BatchID when set, else those in State at Now; of conversions in Days.
type CommissionPayoutQuery struct {
	Days     Days
	Filter   CommissionFilter
	BatchID  string
	MinCents int64
}

// Store keeps referrals, events and their daily rollups. Every method but
// the code registry's works inside one tenant; implementations keep the
// rollups in the transaction that records the events.
type Store interface {
	// CreateReferral stores ref for tenant with a code from claim (see
	// code.Claim: newCode draws, the store's unique index decides), unless
	// the referrer already has a code in the campaign: then it returns that
	// referral and false.
	CreateReferral(ctx context.Context, tenant string, ref Referral, newCode func() (string, error)) (Referral, bool, error)

	// AllTimeCounts sums every rollup of tenant's referral code.
	AllTimeCounts(ctx context.Context, tenant, code string) (Counts, error)

	// FindCodes returns which of candidates are codes of tenant, sorted.
	FindCodes(ctx context.Context, tenant string, candidates []string) ([]string, error)

	// FindCodeOwners returns which of candidates are codes of any tenant,
	// and whose, sorted by code. It reads the deployment-wide registry: a
	// public click knows only the code.
	FindCodeOwners(ctx context.Context, candidates []string) ([]CodeOwner, error)

	// RecordEvents records evs for tenant in one transaction, in order,
	// each once by its id in the tenant's id space: a replay is a
	// duplicate, an id reused for a different event (Event.Same) is
	// ErrEventIDReused. A conversion is recorded with its campaign's rate,
	// or terms.DefaultBPS, and a hold of terms.Hold. A refund of a paid
	// commission fails the batch with ErrCommissionPaid. Every Code must be
	// one of tenant's (FindCodes).
	RecordEvents(ctx context.Context, tenant string, evs []Event, terms Terms) ([]EventOutcome, error)

	// RecordLinkClick records c, a click of tenant's code c.Code, in the
	// id space of link clicks, apart from the ids of RecordEvents, and
	// counts it, unless c.VisitorKeys[0] marks a click counted after since:
	// then it records nothing and returns false. Either way every key of c
	// then marks the click that counted. Concurrent clicks of one key count
	// once; a click without keys always counts.
	RecordLinkClick(ctx context.Context, tenant string, c LinkClick, since time.Time) (bool, error)

	// PruneClickMarks deletes the visitor marks of clicks counted before
	// before (they no longer decide anything) and returns how many.
	PruneClickMarks(ctx context.Context, before time.Time) (int64, error)

	// LandingURL is the landing URL of the campaign of tenant's code; ""
	// when the campaign has none of its own.
	LandingURL(ctx context.Context, tenant, code string) (string, error)

	// Totals sums over days the referrals of tenant matching f, and counts
	// them.
	Totals(ctx context.Context, tenant string, f Filter, days Days) (total int64, c Counts, err error)

	// Leaderboard lists the referrals of tenant matching f with their
	// counts over days, by RevenueCents descending then code, after the
	// rank after (nil: from the top), at most limit.
	Leaderboard(ctx context.Context, tenant string, f Filter, days Days, after *Rank, limit int) ([]ReferralCounts, error)

	// Payouts lists, by code after the code after, at most limit referrals
	// of tenant with rollups in days whose payout over days is at least
	// minCents.
	Payouts(ctx context.Context, tenant string, days Days, minCents int64, after string, limit int) ([]PayoutRow, error)

	// CommissionPayouts is Payouts of the commissions matching q: per
	// referral, its conversions in q's state (or batch) over q.Days and
	// their revenue and commission, with its signups over q.Days.
	CommissionPayouts(ctx context.Context, tenant string, q CommissionPayoutQuery, after string, limit int) ([]PayoutRow, error)

	// Commissions lists tenant's commissions matching f by conversion id,
	// after the id after, at most limit.
	Commissions(ctx context.Context, tenant string, f CommissionFilter, after string, limit int) ([]CommissionRow, error)

	// CreateBatch puts, in one transaction, tenant's commissions approved
	// by c and in no batch into the batch id, made at c.Now, stores the
	// batch and returns it; a batch of none is not stored (Count 0).
	CreateBatch(ctx context.Context, tenant, id string, c Clock) (Batch, error)

	// MarkBatchPaid marks tenant's batch id paid at now, and its
	// commissions that are not refunded, once: changed is false when it
	// was paid already. An unknown batch is ErrBatchNotFound (wrapped).
	MarkBatchPaid(ctx context.Context, tenant, id string, now time.Time) (b Batch, changed bool, err error)

	// PutCampaign creates or replaces a campaign of tenant. Creating one
	// when tenant has limit campaigns or more fails with ErrCampaignLimit
	// (wrapped), also under concurrent puts.
	PutCampaign(ctx context.Context, tenant string, c Campaign, limit int) error

	// Campaigns lists tenant's campaigns by name after the name after, at
	// most limit.
	Campaigns(ctx context.Context, tenant, after string, limit int) ([]Campaign, error)
}
