// Package domain is the tenancy service's business logic: the tenant
// registry and the access-decision statistics. It knows nothing of gRPC.
package domain

import (
	"context"
	"errors"
	"fmt"
	"regexp"
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
	now   func() time.Time
}

// NewService returns a Service.
func NewService(store Store, live *Live) *Service {
	return &Service{store: store, live: live, now: time.Now}
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

// TestAccess evaluates whether the caller may read target and records it.
func (s *Service) TestAccess(ctx context.Context, c Caller, target, method string) (AccessResult, error) {
	// Any tenant a caller could name in X-Tenant-ID may be asked about, even
	// one that does not satisfy the stricter registry rule.
	if !identity.ValidTenant(target) {
		return AccessResult{}, invalidTenant(target)
	}
	res := Evaluate(c, target)
	d := Decision{
		TenantID: c.Tenant, TargetTenantID: target, Subject: c.Subject, Method: method,
		Service: "tenancy", Allowed: res.Allowed, Reason: res.Reason, Verified: c.Verified, Time: s.now().UTC(),
	}
	if err := s.store.RecordDecisions(ctx, []Decision{d}); err != nil {
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
	}
	if err := s.store.RecordDecisions(ctx, ds); err != nil {
		return fmt.Errorf("record decisions: %w", err)
	}
	return nil
}

// CreateTenant registers a tenant; creating an existing one returns it.
func (s *Service) CreateTenant(ctx context.Context, id, displayName string) (Tenant, bool, error) {
	if !tenantIDPattern.MatchString(id) {
		return Tenant{}, false, invalidTenant(id)
	}
	if len(displayName) > 200 {
		return Tenant{}, false, apierr.InvalidArgument("DISPLAY_NAME_INVALID", "display_name is longer than 200 characters").InDomain(Domain)
	}
	if displayName == "" {
		displayName = id
	}
	t, existed, err := s.store.CreateTenant(ctx, Tenant{ID: id, DisplayName: displayName, CreatedAt: s.now().UTC()})
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

// ListTenants pages through the tenants the caller may see.
func (s *Service) ListTenants(ctx context.Context, c Caller, pageSize int32, pageToken string) ([]Tenant, string, error) {
	size, err := page.Size(pageSize, 100, 1000)
	if err != nil {
		return nil, "", err
	}
	after, err := page.Decode(pageToken, "tenants")
	if err != nil {
		return nil, "", err
	}
	ts, err := s.store.ListTenants(ctx, c.scope(), after, size+1)
	if err != nil {
		return nil, "", fmt.Errorf("list tenants: %w", err)
	}
	next := ""
	if len(ts) > size {
		ts = ts[:size]
		next = page.Encode(ts[size-1].ID, "tenants")
	}
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
