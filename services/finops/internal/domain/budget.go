package domain

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/page"
)

// Budget reasons.
const (
	ReasonBudgetInvalid  = "BUDGET_INVALID"
	ReasonBudgetNotFound = "BUDGET_NOT_FOUND"
)

// Budget bounds.
const (
	maxBudgetMicros = 1_000_000_000_000_000 // 10^9 dollars: far above any real month, no overflow in forecasts
	maxThresholdPct = 1000
	maxThresholds   = 10
)

// DefaultThresholds are the percentages of a budget that alert when a
// budget names none.
var DefaultThresholds = []int32{50, 80, 100}

// ErrBudgetNotFound is what the Store returns for a tenant without budget.
var ErrBudgetNotFound = errors.New("no budget")

// Budget is a tenant's monthly budget; tenant "default" is the platform's,
// over every tenant's cost.
type Budget struct {
	TenantID      string
	AmountMicros  int64
	ThresholdsPct []int32 // ascending, distinct
	UpdatedAt     time.Time
}

// GetBudget returns the budget of the caller's tenant.
func (s *Service) GetBudget(ctx context.Context, c Caller) (Budget, error) {
	b, err := s.store.GetBudget(ctx, c.Tenant)
	if errors.Is(err, ErrBudgetNotFound) {
		return Budget{}, apierr.NotFound(ReasonBudgetNotFound, "tenant %q has no budget", c.Tenant).InDomain(Domain)
	}
	if err != nil {
		return Budget{}, fmt.Errorf("get budget: %w", err)
	}
	return b, nil
}

// SetBudget sets the caller's tenant's budget. Only admins reach it (the
// RPC's policy), each for its own tenant: a platform admin's is the
// platform budget.
func (s *Service) SetBudget(ctx context.Context, c Caller, amountMicros int64, thresholds []int32) (Budget, error) {
	if amountMicros < 1 || amountMicros > maxBudgetMicros {
		return Budget{}, invalid(ReasonBudgetInvalid, "amount_micros must be 1 to %d, got %d", int64(maxBudgetMicros), amountMicros)
	}
	if len(thresholds) == 0 {
		thresholds = DefaultThresholds
	}
	ts := slices.Clone(thresholds)
	slices.Sort(ts)
	ts = slices.Compact(ts)
	if len(ts) > maxThresholds {
		return Budget{}, invalid(ReasonBudgetInvalid, "at most %d distinct thresholds, got %d", maxThresholds, len(ts))
	}
	if ts[0] < 1 || ts[len(ts)-1] > maxThresholdPct {
		return Budget{}, invalid(ReasonBudgetInvalid, "thresholds_pct must each be 1 to %d", maxThresholdPct)
	}
	b := Budget{TenantID: c.Tenant, AmountMicros: amountMicros, ThresholdsPct: ts,
		UpdatedAt: s.cfg.Now().UTC().Truncate(time.Microsecond)}
	if err := s.store.PutBudget(ctx, b); err != nil {
		return Budget{}, fmt.Errorf("set budget: %w", err)
	}
	return b, nil
}

// DeleteBudget removes the caller's tenant's budget; false when it had none.
func (s *Service) DeleteBudget(ctx context.Context, c Caller) (bool, error) {
	ok, err := s.store.DeleteBudget(ctx, c.Tenant)
	if err != nil {
		return false, fmt.Errorf("delete budget: %w", err)
	}
	return ok, nil
}

// Alert kinds and metrics.
const (
	AlertBudget   = "budget"
	AlertAnomaly  = "anomaly"
	BasisActual   = "actual"
	BasisForecast = "forecast"
	MetricCost    = "cost"
	MetricMargin  = "margin"
)

// Alert is one recorded budget crossing or anomaly. Key identifies it: a
// second record of the same key is dropped, which makes evaluators
// idempotent and safe on every replica at once.
type Alert struct {
	ID           int64
	Key          string
	TenantID     string
	Kind         string
	Metric       string
	Period       string
	ThresholdPct int32
	Value        int64
	Reference    int64
	Message      string
	CreatedAt    time.Time
}

// AlertPage is one page of ListAlerts.
type AlertPage struct {
	Alerts []Alert
	Next   string
}

// Alerts lists the alerts in the caller's scope, newest first.
func (s *Service) Alerts(ctx context.Context, c Caller, req page.Request) (AlertPage, error) {
	size, err := req.Size(100, 1000)
	if err != nil {
		return AlertPage{}, err
	}
	sc := c.scope()
	tokScope := fmt.Sprintf("alerts|%s|%t", sc.Tenant, sc.All)
	after, err := page.Decode(req.PageToken, tokScope)
	if err != nil {
		return AlertPage{}, err
	}
	var before int64
	if after != "" {
		if before, err = strconv.ParseInt(after, 10, 64); err != nil || before < 1 {
			return AlertPage{}, apierr.InvalidArgument(page.ReasonPageTokenInvalid, "page_token is not a token this API issued")
		}
	}
	rows, err := s.store.Alerts(ctx, sc, before, size+1)
	if err != nil {
		return AlertPage{}, fmt.Errorf("alerts: %w", err)
	}
	var p AlertPage
	p.Alerts, p.Next = page.Trim(rows, size, func(a Alert) string { return strconv.FormatInt(a.ID, 10) }, tokScope)
	return p, nil
}

// TopicAlert is the outbox topic of recorded alerts, written in the
// transaction that records each one (so a notification goes out once per
// alert); the audit service's tenant logs receive them.
const TopicAlert = "finops.alert"

// AlertPayload is the JSON of a TopicAlert event. Field names are the
// contract with the consumer: add fields, never rename them.
type AlertPayload struct {
	Key          string    `json:"key"`
	TenantID     string    `json:"tenant_id"`
	Kind         string    `json:"kind"`
	Metric       string    `json:"metric"`
	Period       string    `json:"period"`
	ThresholdPct int32     `json:"threshold_pct"`
	Value        int64     `json:"value"`
	Reference    int64     `json:"reference"`
	Message      string    `json:"message"`
	CreatedAt    time.Time `json:"created_at"`
}

// Payload is a's TopicAlert payload.
func (a Alert) Payload() AlertPayload {
	return AlertPayload{Key: a.Key, TenantID: a.TenantID, Kind: a.Kind, Metric: a.Metric, Period: a.Period,
		ThresholdPct: a.ThresholdPct, Value: a.Value, Reference: a.Reference, Message: a.Message, CreatedAt: a.CreatedAt}
}
