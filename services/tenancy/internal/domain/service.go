// Package domain is the tenancy service's business logic: the tenant
// registry and the access-decision statistics. It knows nothing of gRPC.
package domain

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/page"
)

// Domain is the ErrorInfo domain of this service's errors.
const Domain = "tenancy.echopilot"

// Reasons that TestAccess answers with.
const (
	ReasonSameTenant        = "SAME_TENANT"
	ReasonAdminReadOnly     = "ADMIN_READ_ONLY"
	ReasonCrossTenantDenied = "CROSS_TENANT_DENIED"
)

// Error reasons.
const (
	ReasonTenantIDInvalid = "TENANT_ID_INVALID"
	ReasonTenantNotFound  = "TENANT_NOT_FOUND"
	ReasonBatchTooLarge   = "BATCH_TOO_LARGE"
	// ReasonRateLimitInvalid: a tenant's rate limit is negative or too large.
	ReasonRateLimitInvalid = "RATE_LIMIT_INVALID"
	// ReasonUpdateMaskInvalid: an update names a field it cannot change.
	ReasonUpdateMaskInvalid = "UPDATE_MASK_INVALID"
)

// MaxReportBatch bounds one ReportDecisions call.
const MaxReportBatch = 1000

var tenantIDPattern = regexp.MustCompile(`^[a-z][a-z0-9-]{1,62}$`)

// Caller is who is asking, as established by the identity layer.
type Caller struct {
	Tenant        string
	Subject       string
	Verified      bool
	PlatformAdmin bool // tenant "default" with role "admin", from a verified token
	Roles         []string
	// APIKeyID is set when the caller presented an API key.
	APIKeyID string
}

// scope is what the caller's reads cover: an admin acting as the default
// tenant sees every tenant; an admin who named a tenant sees that one.
func (c Caller) scope() Scope {
	return Scope{Tenant: c.Tenant, AllTenants: c.PlatformAdmin && c.Tenant == adminTenant}
}

const adminTenant = "default"

// Service implements the tenancy use cases.
type Service struct {
	store Store
	live  *Live // this process's decisions not stored yet
	hooks Hooks
	now   func() time.Time
	// jobs runs exports and erasures (SetJobs); nil refuses them.
	jobs Jobs
	// erased are the tenants whose decisions get pseudonyms.
	erased erasedTenants
}

// Hooks are called after the events they name have committed; nil ones are
// skipped. Every service's domain takes its metrics and wake-ups this way.
type Hooks struct {
	// Audited: a stored batch held decisions that are audit events (the
	// outbox relay's Kick goes here, so they leave at once rather than at
	// the relay's next poll).
	Audited func()
}

// NewService returns a Service.
func NewService(store Store, live *Live, hooks Hooks) *Service {
	return &Service{store: store, live: live, hooks: hooks, now: time.Now}
}

// record stores decisions; every path that stores them (reports, this
// process's own decisions, TestAccess) comes through here.
func (s *Service) record(ctx context.Context, ds []Decision, mark Mark) error {
	ds, err := s.forgetErased(ctx, ds)
	if err != nil {
		return err
	}
	if err := s.store.RecordDecisions(ctx, ds, mark); err != nil {
		return err
	}
	if s.hooks.Audited != nil && slices.ContainsFunc(ds, Decision.Audited) {
		s.hooks.Audited()
	}
	return nil
}

// Persist stores a batch of this process's own decisions, counted live
// until then.
func (s *Service) Persist(ctx context.Context, ds []Decision) error {
	return s.live.Persist(ctx, s.record, ds)
}

// Info returns the caller's tenant statistics, or every tenant's for a
// platform admin.
func (s *Service) Info(ctx context.Context, c Caller) (Stats, error) {
	st, err := s.live.Stats(ctx, s.store, c.scope())
	if err != nil {
		return Stats{}, fmt.Errorf("stats: %w", err)
	}
	return st, nil
}

// AccessResult is the outcome of TestAccess.
type AccessResult struct {
	Allowed bool
	Reason  string
}

// Evaluate applies the cross-tenant rule of DESIGN.md section 2 for a read.
func Evaluate(c Caller, target string) AccessResult {
	switch {
	case target == c.Tenant:
		return AccessResult{Allowed: true, Reason: ReasonSameTenant}
	case c.PlatformAdmin:
		return AccessResult{Allowed: true, Reason: ReasonAdminReadOnly}
	default:
		return AccessResult{Allowed: false, Reason: ReasonCrossTenantDenied}
	}
}

// AccessQuery asks whether the caller may read Target; Method is the RPC
// the decision is recorded under.
type AccessQuery struct {
	Target, Method string
}

// TestAccess evaluates whether the caller may read q.Target and records it.
func (s *Service) TestAccess(ctx context.Context, c Caller, q AccessQuery) (AccessResult, error) {
	// Any tenant a caller could name in X-Tenant-ID may be asked about, even
	// one that does not satisfy the stricter registry rule.
	if !identity.ValidTenant(q.Target) {
		return AccessResult{}, invalidTenant(q.Target)
	}
	res := Evaluate(c, q.Target)
	d := Decision{
		TenantID: identity.CountedTenant(c.Tenant, c.Verified, res.Allowed), TargetTenantID: q.Target, Subject: c.Subject, Method: q.Method,
		Service: "tenancy", Allowed: res.Allowed, Reason: res.Reason, Verified: c.Verified, Time: s.now().UTC(),
	}
	if err := s.record(ctx, []Decision{d}, Mark{}); err != nil {
		return AccessResult{}, fmt.Errorf("record decision: %w", err)
	}
	return res, nil
}

// Record stores decisions reported by a service.
func (s *Service) Record(ctx context.Context, ds []Decision) error {
	if len(ds) > MaxReportBatch {
		return apierr.InvalidArgument(ReasonBatchTooLarge, "at most %d decisions per call, got %d", MaxReportBatch, len(ds)).InDomain(Domain)
	}
	for i := range ds {
		if ds[i].Time.IsZero() {
			ds[i].Time = s.now().UTC()
		}
		// Reporters count unverified denials apart already; holding every
		// report to the rule keeps a tenant's stats its own either way.
		ds[i].TenantID = identity.CountedTenant(ds[i].TenantID, ds[i].Verified, ds[i].Allowed)
	}
	if err := s.record(ctx, ds, Mark{}); err != nil {
		return fmt.Errorf("record decisions: %w", err)
	}
	return nil
}

// NewTenant is a tenant to register: its id, display name ("": the id) and
// rate limits (0: the deployment's default).
type NewTenant struct {
	ID, DisplayName string
	Limits          RateLimits
}

// CreateTenant registers a tenant; creating an existing one returns it
// unchanged.
func (s *Service) CreateTenant(ctx context.Context, in NewTenant) (Tenant, bool, error) {
	if !tenantIDPattern.MatchString(in.ID) {
		return Tenant{}, false, invalidTenant(in.ID)
	}
	if err := checkDisplayName(in.DisplayName); err != nil {
		return Tenant{}, false, err
	}
	if err := in.Limits.check(); err != nil {
		return Tenant{}, false, err
	}
	if in.DisplayName == "" {
		in.DisplayName = in.ID
	}
	t, existed, err := s.store.CreateTenant(ctx, Tenant{ID: in.ID, DisplayName: in.DisplayName, CreatedAt: s.now().UTC(), Limits: in.Limits, State: StateActive})
	if err != nil {
		return Tenant{}, false, fmt.Errorf("create tenant: %w", err)
	}
	return t, existed, nil
}

// GetTenant returns one tenant. The identity layer has already checked that
// the caller may read it.
func (s *Service) GetTenant(ctx context.Context, id string) (Tenant, error) {
	t, err := s.store.GetTenant(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return Tenant{}, apierr.NotFound(ReasonTenantNotFound, "tenant %q is not registered", id).InDomain(Domain)
	}
	if err != nil {
		return Tenant{}, fmt.Errorf("get tenant: %w", err)
	}
	return t, nil
}

// Fields of a tenant that UpdateTenant changes, by their proto names.
const (
	FieldDisplayName         = "display_name"
	FieldRateLimitRead       = "rate_limit_read_per_second"
	FieldRateLimitReadBurst  = "rate_limit_read_burst"
	FieldRateLimitWrite      = "rate_limit_write_per_second"
	FieldRateLimitWriteBurst = "rate_limit_write_burst"
	// FieldTenantID may be named (a REST body that repeats the id derives
	// it) but changes nothing: the id names the tenant.
	FieldTenantID = "tenant_id"
)

// MaxRateLimit bounds every rate limit field.
const MaxRateLimit = 1_000_000

// TenantUpdate changes the stored tenant ID: the fields Paths name (proto
// field names, see Field*) are set to their values in Fields. Without Paths
// it sets every field that is non-zero in Fields.
type TenantUpdate struct {
	ID     string
	Fields Tenant
	Paths  []string
}

// UpdateTenant applies u to the stored tenant and returns the result.
func (s *Service) UpdateTenant(ctx context.Context, u TenantUpdate) (Tenant, error) {
	id, in, paths := u.ID, u.Fields, u.Paths
	if !tenantIDPattern.MatchString(id) {
		return Tenant{}, invalidTenant(id)
	}
	if len(paths) == 0 {
		paths = nonZeroFields(in)
	}
	var set []func(*Tenant)
	for _, p := range paths {
		switch p {
		case FieldTenantID:
		case FieldDisplayName:
			if err := checkDisplayName(in.DisplayName); err != nil {
				return Tenant{}, err
			}
			set = append(set, func(t *Tenant) {
				t.DisplayName = in.DisplayName
				if t.DisplayName == "" {
					t.DisplayName = t.ID
				}
			})
		case FieldRateLimitRead, FieldRateLimitReadBurst, FieldRateLimitWrite, FieldRateLimitWriteBurst:
			v := *in.Limits.field(p)
			if err := checkLimit(p, v); err != nil {
				return Tenant{}, err
			}
			set = append(set, func(t *Tenant) { *t.Limits.field(p) = v })
		default:
			return Tenant{}, apierr.InvalidArgument(ReasonUpdateMaskInvalid,
				"update_mask names %q; a tenant's changeable fields are %s, %s, %s, %s and %s", apierr.Clip(p),
				FieldDisplayName, FieldRateLimitRead, FieldRateLimitReadBurst, FieldRateLimitWrite, FieldRateLimitWriteBurst).InDomain(Domain)
		}
	}
	t, err := s.store.UpdateTenant(ctx, id, func(t *Tenant) error {
		for _, f := range set {
			f(t)
		}
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return Tenant{}, apierr.NotFound(ReasonTenantNotFound, "tenant %q is not registered", id).InDomain(Domain)
	}
	if err != nil {
		return Tenant{}, fmt.Errorf("update tenant: %w", err)
	}
	return t, nil
}

// nonZeroFields names the changeable fields that t sets.
func nonZeroFields(t Tenant) []string {
	var paths []string
	if t.DisplayName != "" {
		paths = append(paths, FieldDisplayName)
	}
	for _, p := range []string{FieldRateLimitRead, FieldRateLimitReadBurst, FieldRateLimitWrite, FieldRateLimitWriteBurst} {
		if *t.Limits.field(p) != 0 {
			paths = append(paths, p)
		}
	}
	return paths
}

// field is the limit that the proto field name p stands for.
func (l *RateLimits) field(p string) *int32 {
	switch p {
	case FieldRateLimitRead:
		return &l.ReadPerSecond
	case FieldRateLimitReadBurst:
		return &l.ReadBurst
	case FieldRateLimitWrite:
		return &l.WritePerSecond
	case FieldRateLimitWriteBurst:
		return &l.WriteBurst
	}
	panic("domain: no rate limit field " + p)
}

func (l RateLimits) check() error {
	for _, p := range []string{FieldRateLimitRead, FieldRateLimitReadBurst, FieldRateLimitWrite, FieldRateLimitWriteBurst} {
		if err := checkLimit(p, *l.field(p)); err != nil {
			return err
		}
	}
	return nil
}

func checkLimit(name string, v int32) error {
	if v < 0 || v > MaxRateLimit {
		return apierr.InvalidArgument(ReasonRateLimitInvalid, "%s is %d; want 0 (the deployment's default) to %d", name, v, MaxRateLimit).InDomain(Domain)
	}
	return nil
}

func checkDisplayName(name string) error {
	if len(name) > 200 {
		return apierr.InvalidArgument("DISPLAY_NAME_INVALID", "display_name is longer than 200 characters").InDomain(Domain)
	}
	return nil
}

// ListTenants pages through the tenants the caller may see.
func (s *Service) ListTenants(ctx context.Context, c Caller, req page.Request) ([]Tenant, string, error) {
	size, err := req.Size(100, 1000)
	if err != nil {
		return nil, "", err
	}
	after, err := page.Decode(req.PageToken, "tenants")
	if err != nil {
		return nil, "", err
	}
	ts, err := s.store.ListTenants(ctx, c.scope(), after, size+1)
	if err != nil {
		return nil, "", fmt.Errorf("list tenants: %w", err)
	}
	ts, next := page.Trim(ts, size, func(t Tenant) string { return t.ID }, "tenants")
	return ts, next, nil
}

// Prune deletes raw decisions older than retention; counters stay.
func (s *Service) Prune(ctx context.Context, retention time.Duration) (int64, error) {
	n, err := s.store.PruneDecisions(ctx, s.now().Add(-retention))
	if err != nil {
		return 0, fmt.Errorf("prune decisions: %w", err)
	}
	return n, nil
}

func invalidTenant(id string) error {
	return apierr.InvalidArgument(ReasonTenantIDInvalid,
		"tenant id %q must be 2-63 lower-case letters, digits or '-', starting with a letter", id).InDomain(Domain)
}
