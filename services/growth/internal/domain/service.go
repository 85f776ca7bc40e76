package domain

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/page"
	"github.com/echopilot/echopilot/platform/period"
	"github.com/echopilot/echopilot/services/growth/internal/code"
	"github.com/echopilot/echopilot/services/growth/internal/money"
)

// Domain is the ErrorInfo domain of this service's errors.
const Domain = "growth.echopilot"

// Error reasons.
const (
	ReasonDaysOutOfRange    = period.ReasonDaysOutOfRange
	ReasonReferrerInvalid   = "REFERRER_INVALID"
	ReasonCampaignInvalid   = "CAMPAIGN_INVALID"
	ReasonCustomerInvalid   = "CUSTOMER_INVALID"
	ReasonEventIDInvalid    = "EVENT_ID_INVALID"
	ReasonEventTypeInvalid  = "EVENT_TYPE_INVALID"
	ReasonRevenueInvalid    = "REVENUE_INVALID"
	ReasonRefundOfInvalid   = "REFUND_OF_INVALID"
	ReasonOccurredAtInvalid = "OCCURRED_AT_INVALID"
	ReasonCodeInvalid       = "REFERRAL_CODE_INVALID"
	ReasonCodeTooAmbiguous  = "REFERRAL_CODE_TOO_AMBIGUOUS"
	ReasonCodeAmbiguous     = "REFERRAL_CODE_AMBIGUOUS"
	ReasonReferralNotFound  = "REFERRAL_NOT_FOUND"
	ReasonEventIDReused     = "EVENT_ID_REUSED"
	ReasonBatchTooLarge     = "BATCH_TOO_LARGE"
	ReasonCommissionInvalid = "COMMISSION_RATE_INVALID"
	ReasonLandingURLInvalid = "LANDING_URL_INVALID"
	ReasonMinPayoutInvalid  = "MIN_PAYOUT_INVALID"
	ReasonFilterInvalid     = "FILTER_INVALID"
	ReasonCampaignLimit     = "CAMPAIGN_LIMIT"
)

// Limits.
const (
	DefaultDays = period.DefaultDays
	MaxDays     = period.MaxDays
	// MaxBatch bounds one RecordEvents call.
	MaxBatch = 1000
	// DefaultCampaign is the campaign of a referral that names none.
	DefaultCampaign = "default"
	// DefaultPageSize and MaxPageSize bound the listings.
	DefaultPageSize = 50
	MaxPageSize     = 1000
	maxIDLen        = 128
	// futureSkew is how far ahead of the server's clock an event may be
	// dated (clock skew between systems).
	futureSkew = time.Hour
)

// ErrEventIDReused is returned (wrapped) by Store.RecordEvents for an event
// id recorded before with different content.
var ErrEventIDReused = apierr.AlreadyExists(ReasonEventIDReused,
	"event_id was recorded before for a different event").InDomain(Domain)

// ErrCampaignLimit is returned (wrapped) by Store.PutCampaign for a new
// campaign of a tenant that has its limit already. The service turns it
// into RESOURCE_EXHAUSTED with the limit.
var ErrCampaignLimit = errors.New("campaign limit reached")

// Caller is who is asking, as established by the identity layer: the
// tenant whose referrals the call reads or writes.
type Caller struct {
	Tenant string
}

// Config is what the service needs besides its store.
type Config struct {
	DefaultRateBPS    int64
	DefaultLandingURL string
	AttributionWindow time.Duration
	// ClickDedupWindow is how long a visitor's click on a code makes its
	// next ones on that code repeats, not counted; 0 counts every click.
	ClickDedupWindow time.Duration
	// VisitorKey is the HMAC-SHA256 key of the visitor hashes, at least 32
	// bytes, the same for every replica of the deployment.
	VisitorKey []byte
	// MaxCampaigns caps each tenant's campaigns, at least 1.
	MaxCampaigns int
	// CommissionHold is how long a new conversion's commission stays
	// pending: fixed on the conversion when it is recorded, as its rate
	// is. 0 approves at once.
	CommissionHold time.Duration
	// TenantActive says whether a tenant's referral links redirect: a
	// suspended tenant's answer a neutral page, uncounted (nil: always).
	TenantActive func(ctx context.Context, tenant string) bool
	Now          func() time.Time       // time.Now when nil
	NewCode      func() (string, error) // code.New when nil
	NewClickID   func() string          // the ids of link clicks: ULIDs
	NewVisitorID func() string          // NewVisitorID when nil
	NewBatchID   func() string          // the ids of payout batches: NewClickID when nil
}

// Service implements the growth use cases.
type Service struct {
	store Store
	cfg   Config
}

// NewService checks cfg and returns a Service.
func NewService(st Store, cfg Config) (*Service, error) {
	if cfg.DefaultRateBPS < 0 || cfg.DefaultRateBPS > money.BPSPerUnit {
		return nil, fmt.Errorf("default commission %d bps: want 0 to %d", cfg.DefaultRateBPS, money.BPSPerUnit)
	}
	if err := checkLandingURL(cfg.DefaultLandingURL); err != nil {
		return nil, fmt.Errorf("default landing URL: %w", err)
	}
	if cfg.AttributionWindow < time.Second {
		return nil, fmt.Errorf("attribution window %v: want at least a second", cfg.AttributionWindow)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NewCode == nil {
		cfg.NewCode = code.New
	}
	if cfg.NewClickID == nil {
		return nil, errors.New("no click id source")
	}
	if cfg.NewVisitorID == nil {
		cfg.NewVisitorID = NewVisitorID
	}
	if cfg.NewBatchID == nil {
		cfg.NewBatchID = cfg.NewClickID
	}
	if cfg.CommissionHold < 0 {
		return nil, fmt.Errorf("commission hold %v: want 0 or more", cfg.CommissionHold)
	}
	if cfg.ClickDedupWindow < 0 {
		return nil, fmt.Errorf("click dedup window %v: want 0 (off) or more", cfg.ClickDedupWindow)
	}
	if len(cfg.VisitorKey) < 32 {
		return nil, fmt.Errorf("visitor key of %d bytes: want at least 32", len(cfg.VisitorKey))
	}
	if cfg.MaxCampaigns < 1 {
		return nil, fmt.Errorf("campaign limit %d: want at least 1", cfg.MaxCampaigns)
	}
	return &Service{store: st, cfg: cfg}, nil
}

// Created is CreateReferral's answer.
type Created struct {
	Referral
	Counts
	New bool
}

// NewReferral asks for a referrer's code in a campaign ("": the default
// campaign).
type NewReferral struct {
	ReferrerID, Campaign string
}

// CreateReferral returns the referrer's code in the campaign, creating it
// when there is none.
func (s *Service) CreateReferral(ctx context.Context, c Caller, req NewReferral) (Created, error) {
	if err := checkText(req.ReferrerID, ReasonReferrerInvalid, "referrer_id", true); err != nil {
		return Created{}, err
	}
	campaign, err := CampaignName(req.Campaign, true)
	if err != nil {
		return Created{}, err
	}
	ref := Referral{ReferrerID: req.ReferrerID, Campaign: campaign, CreatedAt: s.cfg.Now().UTC().Truncate(time.Second)}
	ref, isNew, err := s.store.CreateReferral(ctx, c.Tenant, ref, s.cfg.NewCode)
	if err != nil {
		return Created{}, fmt.Errorf("create referral: %w", err)
	}
	out := Created{Referral: ref, New: isNew}
	if !isNew {
		if out.Counts, err = s.store.AllTimeCounts(ctx, c.Tenant, ref.Code); err != nil {
			return Created{}, fmt.Errorf("referral counts: %w", err)
		}
	}
	return out, nil
}

// EventInput is an event as the client sent it.
type EventInput struct {
	Code, Type, ID, CustomerID, RefundOf string
	Revenue                              float64
	OccurredAt                           *time.Time
}

// RecordEvents validates, resolves and records a batch of events.
func (s *Service) RecordEvents(ctx context.Context, c Caller, in []EventInput) ([]EventOutcome, error) {
	if len(in) > MaxBatch {
		return nil, invalid(ReasonBatchTooLarge, "at most %d events per call, got %d", MaxBatch, len(in))
	}
	now := s.cfg.Now().UTC()
	evs := make([]Event, len(in))
	for i, e := range in {
		ev, err := s.event(ctx, c.Tenant, e, now)
		if err != nil {
			if len(in) > 1 {
				return nil, fmt.Errorf("event %d: %w", i, err)
			}
			return nil, err
		}
		evs[i] = ev
	}
	out, err := s.store.RecordEvents(ctx, c.Tenant, evs, Terms{DefaultBPS: s.cfg.DefaultRateBPS, Hold: s.cfg.CommissionHold})
	if err != nil {
		return nil, fmt.Errorf("record events: %w", err)
	}
	return out, nil
}

// event checks one input and resolves its code among the tenant's.
func (s *Service) event(ctx context.Context, tenant string, in EventInput, now time.Time) (Event, error) {
	ev := Event{ID: in.ID, Type: EventType(in.Type), CustomerID: in.CustomerID, RefundOf: in.RefundOf, OccurredAt: now}
	if err := checkText(in.ID, ReasonEventIDInvalid, "event_id", true); err != nil {
		return Event{}, err
	}
	if err := checkText(in.CustomerID, ReasonCustomerInvalid, "customer_id", false); err != nil {
		return Event{}, err
	}
	switch ev.Type {
	case EventClick, EventSignup, EventConversion, EventRefund:
	default:
		return Event{}, invalid(ReasonEventTypeInvalid, "type must be click, signup, conversion or refund, got %q", apierr.Clip(in.Type))
	}
	amount, err := money.Cents(in.Revenue)
	if err != nil {
		return Event{}, invalid(ReasonRevenueInvalid, "revenue must be 0 to %s dollars with at most two decimals: %v",
			money.Format(money.MaxCents), err)
	}
	if amount != 0 && (ev.Type == EventClick || ev.Type == EventSignup) {
		return Event{}, invalid(ReasonRevenueInvalid, "a %s carries no revenue", ev.Type)
	}
	ev.AmountCents = amount
	if ev.Type == EventRefund {
		if err := checkText(in.RefundOf, ReasonRefundOfInvalid, "refund_of", true); err != nil {
			return Event{}, err
		}
	} else if in.RefundOf != "" {
		return Event{}, invalid(ReasonRefundOfInvalid, "refund_of is only for refunds")
	}
	if in.OccurredAt != nil {
		at := in.OccurredAt.UTC().Truncate(time.Microsecond)
		if at.Year() < 2000 || at.After(now.Add(futureSkew)) {
			return Event{}, invalid(ReasonOccurredAtInvalid, "occurred_at must be after 2000 and at most %v ahead", futureSkew)
		}
		ev.OccurredAt = at
	}
	// A refund follows its conversion: its own code, if any, is not needed.
	if in.Code != "" || ev.Type != EventRefund {
		if ev.Code, err = s.resolve(ctx, tenant, in.Code); err != nil {
			return Event{}, err
		}
	}
	return ev, nil
}

// resolve turns a typed code into one of tenant's codes.
func (s *Service) resolve(ctx context.Context, tenant, typed string) (string, error) {
	cands, err := parseCode(typed)
	if err != nil {
		return "", err
	}
	found, err := s.store.FindCodes(ctx, tenant, cands)
	if err != nil {
		return "", fmt.Errorf("find codes: %w", err)
	}
	if err := oneCode(len(found), typed); err != nil {
		return "", err
	}
	return found[0], nil
}

func parseCode(typed string) ([]string, error) {
	cands, err := code.Parse(typed)
	switch {
	case errors.Is(err, code.ErrTooAmbiguous):
		return nil, invalid(ReasonCodeTooAmbiguous, "referral code %q has more than %d of 0, O, 1, I, L: retype it",
			apierr.Clip(typed), code.MaxAmbiguous)
	case err != nil:
		return nil, invalid(ReasonCodeInvalid, "referral code %q is not %d characters of %s", apierr.Clip(typed), code.Length, code.Alphabet)
	}
	return cands, nil
}

func oneCode(found int, typed string) error {
	switch {
	case found == 0:
		return apierr.NotFound(ReasonReferralNotFound, "no referral code %q", apierr.Clip(typed)).InDomain(Domain)
	case found > 1:
		return invalid(ReasonCodeAmbiguous, "referral code %q matches %d codes: retype it without 0, O, 1, I or L",
			apierr.Clip(typed), found)
	}
	return nil
}

// StatsQuery is a ListReferrals request.
type StatsQuery struct {
	Days   int32
	Filter Filter
	page.Request
}

// Stats is ListReferrals' answer.
type Stats struct {
	Days      int
	Referrals int64
	Totals    Counts
	Page      []ReferralCounts
	Next      string
}

// Stats sums the caller's referrals matching the filter over the period and
// lists a page of the leaderboard.
func (s *Service) Stats(ctx context.Context, c Caller, q StatsQuery) (Stats, error) {
	n, err := periodDays(q.Days)
	if err != nil {
		return Stats{}, err
	}
	if q.Filter.Campaign != "" {
		if q.Filter.Campaign, err = CampaignName(q.Filter.Campaign, false); err != nil {
			return Stats{}, err
		}
	}
	if err := checkText(q.Filter.ReferrerID, ReasonFilterInvalid, "referrer_id", false); err != nil {
		return Stats{}, err
	}
	size, err := q.Size(DefaultPageSize, MaxPageSize)
	if err != nil {
		return Stats{}, err
	}
	// The token is bound to the query, so it cannot be replayed against
	// another tenant's, filter's or period's listing.
	scope := strings.Join([]string{c.Tenant, strconv.Itoa(n), q.Filter.ReferrerID, q.Filter.Campaign}, "\x00")
	after, err := decodeRank(q.PageToken, scope)
	if err != nil {
		return Stats{}, err
	}
	d := LastDays(s.cfg.Now(), n)
	out := Stats{Days: n}
	if out.Referrals, out.Totals, err = s.store.Totals(ctx, c.Tenant, q.Filter, d); err != nil {
		return Stats{}, fmt.Errorf("totals: %w", err)
	}
	rows, err := s.store.Leaderboard(ctx, c.Tenant, q.Filter, d, after, size+1)
	if err != nil {
		return Stats{}, fmt.Errorf("leaderboard: %w", err)
	}
	out.Page, out.Next = page.Trim(rows, size, func(r ReferralCounts) string {
		return strconv.FormatInt(r.RevenueCents, 10) + "/" + r.Code
	}, scope)
	return out, nil
}

func decodeRank(token, scope string) (*Rank, error) {
	after, err := page.Decode(token, scope)
	if err != nil || after == "" {
		return nil, err
	}
	rev, c, ok := strings.Cut(after, "/")
	cents, perr := strconv.ParseInt(rev, 10, 64)
	if !ok || perr != nil || !code.Valid(c) {
		return nil, apierr.InvalidArgument(page.ReasonPageTokenInvalid, "page_token is not a token this API issued")
	}
	return &Rank{RevenueCents: cents, Code: c}, nil
}

// CampaignSettings is a campaign with the defaults filled in.
type CampaignSettings struct {
	Name       string
	RateBPS    int64
	LandingURL string
	UpdatedAt  time.Time
}

func (s *Service) settings(c Campaign) CampaignSettings {
	out := CampaignSettings{Name: c.Name, RateBPS: s.cfg.DefaultRateBPS, LandingURL: c.LandingURL, UpdatedAt: c.UpdatedAt}
	if c.RateBPS != nil {
		out.RateBPS = *c.RateBPS
	}
	if out.LandingURL == "" {
		out.LandingURL = s.cfg.DefaultLandingURL
	}
	return out
}

// CampaignUpdate is what PutCampaign sets on campaign Name: its commission
// Rate (nil: the default) and LandingURL (empty: the default).
type CampaignUpdate struct {
	Name       string
	Rate       *float64
	LandingURL string
}

// PutCampaign sets a campaign's settings, creating the campaign if new.
func (s *Service) PutCampaign(ctx context.Context, c Caller, u CampaignUpdate) (CampaignSettings, error) {
	name, err := CampaignName(u.Name, false)
	if err != nil {
		return CampaignSettings{}, err
	}
	camp := Campaign{Name: name, LandingURL: u.LandingURL, UpdatedAt: s.cfg.Now().UTC().Truncate(time.Microsecond)}
	if u.Rate != nil {
		bps, err := money.BPS(*u.Rate)
		if err != nil {
			return CampaignSettings{}, invalid(ReasonCommissionInvalid,
				"commission_rate must be 0 to 1 with at most four decimals: %v", err)
		}
		camp.RateBPS = &bps
	}
	if u.LandingURL != "" {
		if err := checkLandingURL(u.LandingURL); err != nil {
			return CampaignSettings{}, invalid(ReasonLandingURLInvalid, "landing_url: %v", err)
		}
	}
	err = s.store.PutCampaign(ctx, c.Tenant, camp, s.cfg.MaxCampaigns)
	if errors.Is(err, ErrCampaignLimit) {
		return CampaignSettings{}, apierr.ResourceExhausted(ReasonCampaignLimit,
			"a tenant may have at most %d campaigns: change an existing one instead", s.cfg.MaxCampaigns).
			InDomain(Domain).With("limit", strconv.Itoa(s.cfg.MaxCampaigns))
	}
	if err != nil {
		return CampaignSettings{}, fmt.Errorf("put campaign: %w", err)
	}
	return s.settings(camp), nil
}

// CampaignPage is ListCampaigns' answer.
type CampaignPage struct {
	Campaigns         []CampaignSettings
	Next              string
	DefaultRateBPS    int64
	DefaultLandingURL string
}

// Campaigns lists the caller's campaigns with settings, a page at a time.
func (s *Service) Campaigns(ctx context.Context, c Caller, req page.Request) (CampaignPage, error) {
	size, err := req.Size(DefaultPageSize, MaxPageSize)
	if err != nil {
		return CampaignPage{}, err
	}
	after, err := page.Decode(req.PageToken, c.Tenant)
	if err != nil {
		return CampaignPage{}, err
	}
	rows, err := s.store.Campaigns(ctx, c.Tenant, after, size+1)
	if err != nil {
		return CampaignPage{}, fmt.Errorf("campaigns: %w", err)
	}
	out := CampaignPage{DefaultRateBPS: s.cfg.DefaultRateBPS, DefaultLandingURL: s.cfg.DefaultLandingURL}
	rows, out.Next = page.Trim(rows, size, func(r Campaign) string { return r.Name }, c.Tenant)
	for _, r := range rows {
		out.Campaigns = append(out.Campaigns, s.settings(r))
	}
	return out, nil
}

// CampaignName checks and folds a campaign name; empty is the default
// campaign when allowed.
func CampaignName(name string, emptyIsDefault bool) (string, error) {
	if name == "" && emptyIsDefault {
		return DefaultCampaign, nil
	}
	name = strings.ToLower(name)
	ok := name != "" && len(name) <= 64
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || i > 0 && (c == '-' || c == '_')
	}
	if !ok {
		return "", invalid(ReasonCampaignInvalid,
			"campaign %q must be 1 to 64 of a-z, 0-9, '-' and '_', starting with a letter or digit", apierr.Clip(name))
	}
	return name, nil
}

// ParseDefaultRate reads the configured default commission ("0.20").
func ParseDefaultRate(s string) (int64, error) {
	bps, err := money.ParseBPS(s)
	if err != nil {
		return 0, fmt.Errorf("default commission %q: want 0 to 1 with at most four decimals: %w", s, err)
	}
	return bps, nil
}

// checkLandingURL accepts absolute http and https URLs with a host.
func checkLandingURL(raw string) error {
	if len(raw) > 2048 {
		return errors.New("longer than 2048 bytes")
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return errors.New("not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("must be an absolute http or https URL")
	case u.Host == "" || u.User != nil:
		return errors.New("must name a host and no user")
	}
	return nil
}

// checkText accepts 1 (or 0 when optional) to 128 bytes of UTF-8 without
// control characters: ids end up in CSV cells and logs.
func checkText(s, reason, field string, required bool) error {
	switch {
	case s == "" && !required:
		return nil
	case s == "" || len(s) > maxIDLen:
		return invalid(reason, "%s must be 1 to %d bytes", field, maxIDLen)
	case !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl):
		return invalid(reason, "%s must be UTF-8 text without control characters", field)
	}
	return nil
}

func periodDays(days int32) (int, error) { return period.Days(days, Domain) }

// minPayoutCents reads the export's minimum payout in dollars.
func minPayoutCents(dollars float64) (int64, error) {
	c, err := money.CentsUpTo(dollars, math.MaxInt64/2)
	if err != nil {
		return 0, invalid(ReasonMinPayoutInvalid, "min_payout must be dollars, not negative, with at most two decimals: %v", err)
	}
	return c, nil
}

func invalid(reason, format string, args ...any) error {
	return apierr.InvalidArgument(reason, format, args...).InDomain(Domain)
}
