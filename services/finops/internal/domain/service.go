package domain

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/money"
	"github.com/echopilot/echopilot/platform/page"
	"github.com/echopilot/echopilot/platform/period"
)

// Domain is the ErrorInfo domain of this service's errors.
const Domain = "finops.echopilot"

// Error reasons.
const (
	ReasonDaysOutOfRange   = period.ReasonDaysOutOfRange
	ReasonBatchTooLarge    = "BATCH_TOO_LARGE"
	ReasonUsageInvalid     = "USAGE_INVALID"
	ReasonCurrencyNotUSD   = "CURRENCY_NOT_SUPPORTED"
	ReasonTenantMismatched = "TENANT_MISMATCH"
)

// Period bounds, in days.
const (
	DefaultDays = period.DefaultDays
	MaxDays     = period.MaxDays
	// MaxUsageBatch bounds one RecordUsage call.
	MaxUsageBatch = 1000
	// maxTokens bounds one record's token counts: far above any real job,
	// and low enough that pricing can never overflow.
	maxTokens = 1_000_000_000_000
)

// AllocationRule names how infrastructure is shared among tenants.
const AllocationRule = "share_of_jobs"

const adminTenant = "default"

// Caller is who is asking, as established by the identity layer.
type Caller struct {
	Tenant        string
	PlatformAdmin bool
}

// scope is what the caller's reads cover: a platform admin acting as the
// default tenant sees every tenant; an admin who named a tenant, that one.
func (c Caller) scope() Scope {
	return Scope{Tenant: c.Tenant, All: c.PlatformAdmin && c.Tenant == adminTenant}
}

// Pricer prices usage records in place (see pricing.Table.Price).
type Pricer interface {
	Price(r *UsageRecord)
}

// StripeDecoder verifies a Stripe webhook's signature header over the raw
// payload and decodes the event; tracked is false for event types finops
// does not follow.
type StripeDecoder interface {
	Decode(payload []byte, signature string) (ev PaymentEvent, tracked bool, err error)
}

// Config is what the service needs besides its store.
type Config struct {
	Prices Pricer
	Stripe StripeDecoder
	Rate   RateCard
	// Tenants checks that a tenant is registered before a Stripe customer
	// is assigned to it; without it AssignCustomer is unavailable.
	Tenants Tenants
	Now     func() time.Time // time.Now when nil
	// AnomalyK is how many standard deviations flag an anomaly
	// (DefaultAnomalyK when 0).
	AnomalyK float64
	// OnAlert, when set, is called once for each alert recorded here (the
	// alerts counter).
	OnAlert func(Alert)
}

// Service implements the finops use cases.
type Service struct {
	store Store
	cfg   Config
}

// NewService returns a Service.
func NewService(st Store, cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{store: st, cfg: cfg}
}

// Summary is GetSummary's answer, in integer units.
type Summary struct {
	Days   int
	Scope  Scope
	Totals Totals
	// ComputeMicros and DatabaseMicros are the infrastructure of the scope:
	// the whole rate card for every tenant, the allocation for one tenant.
	ComputeMicros  int64
	DatabaseMicros int64
	// PlatformMicros is the part of the infrastructure no tenant was
	// allocated; zero for a one-tenant scope.
	PlatformMicros int64
	UnpricedModels []string
}

// Summary reports over the last days days.
func (s *Service) Summary(ctx context.Context, c Caller, days int32) (Summary, error) {
	n, err := periodDays(days)
	if err != nil {
		return Summary{}, err
	}
	sc, d := c.scope(), LastDays(s.cfg.Now(), n)
	tot, err := s.store.Totals(ctx, sc, d, s.cfg.Rate)
	if err != nil {
		return Summary{}, fmt.Errorf("totals: %w", err)
	}
	sum := Summary{Days: n, Scope: sc, Totals: tot, ComputeMicros: tot.AllocComputeMicros, DatabaseMicros: tot.AllocDatabaseMicros}
	if sc.All {
		inf, err := s.infra(ctx, d)
		if err != nil {
			return Summary{}, err
		}
		sum.ComputeMicros, sum.DatabaseMicros = inf.compute, inf.database
		sum.PlatformMicros = sum.ComputeMicros + sum.DatabaseMicros - tot.AllocComputeMicros - tot.AllocDatabaseMicros
	}
	if tot.UnpricedJobs > 0 {
		if sum.UnpricedModels, err = s.store.UnpricedModels(ctx, sc, d); err != nil {
			return Summary{}, fmt.Errorf("unpriced models: %w", err)
		}
	}
	return sum, nil
}

// InfraMicros is the infrastructure cost of the summary's scope.
func (s Summary) InfraMicros() int64 { return s.ComputeMicros + s.DatabaseMicros }

// Profit is the summary's profitability.
func (s Summary) Profit() Profit {
	return NewProfit(s.Totals.RevenueCents*MicrosPerCent, s.Totals.AICostMicros+s.InfraMicros())
}

// Profit is revenue against costs, in micro-dollars.
type Profit struct {
	RevenueMicros, CostMicros int64
}

// NewProfit returns the profitability of revenue against costs.
func NewProfit(revenue, costs int64) Profit { return Profit{RevenueMicros: revenue, CostMicros: costs} }

// ProfitMicros is revenue less costs.
func (p Profit) ProfitMicros() int64 { return p.RevenueMicros - p.CostMicros }

// MarginPct is profit over revenue in percent, 0 without revenue (as the
// seed's sample shows).
func (p Profit) MarginPct() float64 { return Percent(p.ProfitMicros(), p.RevenueMicros) }

// ROI is profit over costs in percent, 0 without costs.
func (p Profit) ROI() float64 { return Percent(p.ProfitMicros(), p.CostMicros) }

// Percent is num/den×100 rounded to two decimals; 0 when den is 0, so no
// response ever carries NaN or Inf.
func Percent(num, den int64) float64 {
	if den == 0 {
		return 0
	}
	v := math.Round(float64(num)/float64(den)*10000) / 100
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

// Dollars shows micro-dollars as dollars with micro-dollar precision: the
// double nearest the exact decimal, so JSON prints at most six decimals
// (1350 → 0.00135). One job's AI cost is often below a cent, and rounding
// to cents made it vanish. Only the display is a float; sums are made in
// integers first, and responses carry the integers beside it.
func Dollars(micros int64) float64 {
	f, err := strconv.ParseFloat(money.Format(micros, money.Micros, 0), 64)
	if err != nil { // Format always writes a decimal ParseFloat reads
		panic(fmt.Sprintf("dollars of %d: %v", micros, err))
	}
	return f
}

// CentsToDollars shows cents as dollars.
func CentsToDollars(cents int64) float64 { return float64(cents) / 100 }

// CentsToMicros is cents in micro-dollars, the unit of every _micros field.
func CentsToMicros(cents int64) int64 { return cents * MicrosPerCent }

// TenantPage is one page of ListTenantCosts.
type TenantPage struct {
	Days    int
	Tenants []TenantTotals
	Next    string
	// PlatformMicros is the unallocated infrastructure over the period;
	// only in a view of every tenant.
	PlatformMicros int64
	Scope          Scope
}

// TenantCostsRequest asks for a page of per-tenant totals over the last
// Days days.
type TenantCostsRequest struct {
	Days int32
	page.Request
}

// TenantCosts lists per-tenant totals, a page at a time.
func (s *Service) TenantCosts(ctx context.Context, c Caller, req TenantCostsRequest) (TenantPage, error) {
	n, err := periodDays(req.Days)
	if err != nil {
		return TenantPage{}, err
	}
	size, err := req.Size(100, 1000)
	if err != nil {
		return TenantPage{}, err
	}
	sc, d := c.scope(), LastDays(s.cfg.Now(), n)
	// The token is tied to the scope and period, so it cannot be replayed
	// against another tenant's or another window's listing.
	tokScope := fmt.Sprintf("%s|%t|%d", sc.Tenant, sc.All, n)
	after, err := page.Decode(req.PageToken, tokScope)
	if err != nil {
		return TenantPage{}, err
	}
	rows, err := s.store.TenantTotals(ctx, sc, d, s.cfg.Rate, after, size+1)
	if err != nil {
		return TenantPage{}, fmt.Errorf("tenant totals: %w", err)
	}
	p := TenantPage{Days: n, Scope: sc}
	p.Tenants, p.Next = page.Trim(rows, size, func(r TenantTotals) string { return r.TenantID }, tokScope)
	if sc.All {
		tot, err := s.store.Totals(ctx, sc, d, s.cfg.Rate)
		if err != nil {
			return TenantPage{}, fmt.Errorf("totals: %w", err)
		}
		inf, err := s.infra(ctx, d)
		if err != nil {
			return TenantPage{}, err
		}
		p.PlatformMicros = inf.compute + inf.database - tot.AllocComputeMicros - tot.AllocDatabaseMicros
	}
	return p, nil
}

// DefaultSeriesDays is what GetTimeseries' days=0 means: a month, the
// usual span of a chart (the reports' default is a week).
const DefaultSeriesDays = 30

// DayPoint is one day of a Timeseries, in integer units: Totals as the
// rollups have them, InfraMicros the infrastructure of the scope that day.
type DayPoint struct {
	Day         int64
	Totals      Totals
	InfraMicros int64
}

// Profit is the day's profitability.
func (p DayPoint) Profit() Profit {
	return NewProfit(p.Totals.RevenueCents*MicrosPerCent, p.Totals.AICostMicros+p.InfraMicros)
}

// Timeseries is GetTimeseries' answer: one point per day of the period,
// oldest first.
type Timeseries struct {
	Days   int
	Scope  Scope
	Points []DayPoint
}

// Timeseries reports each of the last days days (0: DefaultSeriesDays),
// every day present (zeros without data), so that the points sum to the
// Summary of the same period: the same rollups, the same allocation, and
// for every tenant the whole rate card each day.
func (s *Service) Timeseries(ctx context.Context, c Caller, days int32) (Timeseries, error) {
	if days == 0 {
		days = DefaultSeriesDays
	}
	n, err := periodDays(days)
	if err != nil {
		return Timeseries{}, err
	}
	sc := c.scope()
	pts, err := s.points(ctx, sc, LastDays(s.cfg.Now(), n))
	if err != nil {
		return Timeseries{}, err
	}
	return Timeseries{Days: n, Scope: sc, Points: pts}, nil
}

// points are sc's days of d, every day present (zeros without data).
func (s *Service) points(ctx context.Context, sc Scope, d Days) ([]DayPoint, error) {
	rows, err := s.store.DaySeries(ctx, sc, d, s.cfg.Rate)
	if err != nil {
		return nil, fmt.Errorf("day series: %w", err)
	}
	var inf infraTotals
	if sc.All {
		if inf, err = s.infra(ctx, d); err != nil {
			return nil, err
		}
	}
	out := make([]DayPoint, 0, d.Len())
	next := 0
	for day := d.From; day <= d.To; day++ {
		p := DayPoint{Day: day}
		// rows are by day, within d, at most one per day.
		if next < len(rows) && rows[next].Day == day {
			p.Totals = rows[next].Totals
			next++
		}
		p.InfraMicros = p.Totals.AllocComputeMicros + p.Totals.AllocDatabaseMicros
		if sc.All {
			c, db := inf.on(day, s.cfg.Rate)
			p.InfraMicros = c + db
		}
		out = append(out, p)
	}
	if next != len(rows) {
		return nil, fmt.Errorf("day series: %d rows, %d of them outside or out of order in %d..%d", len(rows), len(rows)-next, d.From, d.To)
	}
	return out, nil
}

// RecordUsage prices and stores usage records; a record naming no tenant
// is the acting tenant's. Only services call it (the RPC's policy), and a
// service may act for any tenant, so a batch may mix tenants.
func (s *Service) RecordUsage(ctx context.Context, acting string, recs []UsageRecord) (UsageResult, error) {
	if len(recs) > MaxUsageBatch {
		return UsageResult{}, invalid(ReasonBatchTooLarge, "at most %d records per call, got %d", MaxUsageBatch, len(recs))
	}
	for i := range recs {
		if recs[i].TenantID == "" {
			recs[i].TenantID = acting
		}
		if err := validUsage(recs[i]); err != nil {
			return UsageResult{}, fmt.Errorf("record %d: %w", i, err)
		}
		recs[i].CompletedAt = recs[i].CompletedAt.UTC().Truncate(time.Microsecond)
		s.cfg.Prices.Price(&recs[i])
	}
	isNew, err := s.store.RecordUsage(ctx, recs)
	if err != nil {
		return UsageResult{}, fmt.Errorf("record usage: %w", err)
	}
	var res UsageResult
	for i, n := range isNew {
		switch {
		case !n:
			res.Duplicates++
		case !recs[i].Priced:
			res.Recorded++
			res.Unpriced++
		default:
			res.Recorded++
		}
	}
	return res, nil
}

// UsageResult counts what RecordUsage did.
type UsageResult struct {
	Recorded, Duplicates, Unpriced int64
}

func validUsage(r UsageRecord) error {
	switch {
	case !identity.ValidTenant(r.TenantID):
		return invalid(ReasonUsageInvalid, "tenant_id %q is not a valid tenant id", apierr.Clip(r.TenantID))
	case r.JobID == "" || len(r.JobID) > 128:
		return invalid(ReasonUsageInvalid, "job_id must be 1 to 128 bytes")
	case len(r.Model) > 200 || len(r.JobType) > 200:
		return invalid(ReasonUsageInvalid, "model and job_type must be at most 200 bytes")
	case r.InputTokens < 0 || r.OutputTokens < 0 || r.DurationMS < 0:
		return invalid(ReasonUsageInvalid, "token counts and duration must not be negative")
	case r.InputTokens > maxTokens || r.OutputTokens > maxTokens:
		return invalid(ReasonUsageInvalid, "token counts above %d", int64(maxTokens))
	case r.CompletedAt.IsZero() || r.CompletedAt.Year() < 2000 || r.CompletedAt.Year() > 9999:
		return invalid(ReasonUsageInvalid, "completed_at is missing or out of range")
	}
	return nil
}

// StripeDelivery is one Stripe webhook delivery: the raw payload and its
// Stripe-Signature header.
type StripeDelivery struct {
	Payload   []byte
	Signature string
}

// HandleStripe verifies and records one Stripe webhook delivery. Types
// finops does not follow, and currencies it does not report in, are
// acknowledged as ignored: refusing them would only make Stripe retry for
// days.
func (s *Service) HandleStripe(ctx context.Context, d StripeDelivery) (string, PaymentOutcome, error) {
	ev, tracked, err := s.cfg.Stripe.Decode(d.Payload, d.Signature)
	if err != nil {
		return "", PaymentOutcome{}, err
	}
	// An event naming neither a tenant nor a customer can never be
	// attributed: holding it would keep it for ever.
	if !tracked || ev.Currency != Currency || ev.TenantID == "" && ev.CustomerID == "" {
		return ev.EventID, PaymentOutcome{Outcome: OutcomeIgnored}, nil
	}
	out, err := s.store.ApplyPaymentEvent(ctx, ev)
	if err != nil {
		return "", PaymentOutcome{}, fmt.Errorf("apply event %s: %w", ev.EventID, err)
	}
	return ev.EventID, out, nil
}

func periodDays(days int32) (int, error) { return period.Days(days, Domain) }

func invalid(reason, format string, args ...any) error {
	return apierr.InvalidArgument(reason, format, args...).InDomain(Domain)
}

// infraTotals is the infrastructure of every tenant over a period: the
// rate card on each day, except days covered by an import, whose imported
// cost (unallocated included) replaces it.
type infraTotals struct {
	compute, database int64
	imported          map[int64]InfraDay
}

// on is the infrastructure of every tenant on day.
func (t infraTotals) on(day int64, rate RateCard) (compute, database int64) {
	if d, ok := t.imported[day]; ok {
		return d.ComputeMicros, d.DatabaseMicros
	}
	return rate.ComputeMicrosPerDay, rate.DatabaseMicrosPerDay
}

func (s *Service) infra(ctx context.Context, d Days) (infraTotals, error) {
	rows, err := s.store.InfraDays(ctx, d)
	if err != nil {
		return infraTotals{}, fmt.Errorf("infra days: %w", err)
	}
	t := infraTotals{imported: make(map[int64]InfraDay, len(rows))}
	for _, r := range rows {
		t.imported[r.Day] = r
		t.compute += r.ComputeMicros
		t.database += r.DatabaseMicros
	}
	uncovered := d.Len() - int64(len(rows))
	t.compute += s.cfg.Rate.ComputeMicrosPerDay * uncovered
	t.database += s.cfg.Rate.DatabaseMicrosPerDay * uncovered
	return t, nil
}
