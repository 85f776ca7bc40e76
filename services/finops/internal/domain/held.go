package domain

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/page"
)

// Reasons of the held-event admin calls.
const (
	ReasonCustomerInvalid  = "CUSTOMER_ID_INVALID"
	ReasonTenantInvalid    = "TENANT_ID_INVALID"
	ReasonTenantNotFound   = "TENANT_NOT_FOUND"
	ReasonCustomerAssigned = "CUSTOMER_ALREADY_ASSIGNED"
	ReasonTenancyDown      = "TENANCY_UNAVAILABLE"
)

// HeldEvent is a Stripe event waiting for its customer's tenant.
type HeldEvent struct {
	PaymentEvent
	ReceivedAt time.Time
}

// AssignedError is AssignCustomer's answer for a customer tied to another
// tenant already.
type AssignedError struct {
	Customer, Tenant string
}

func (e *AssignedError) Error() string {
	return fmt.Sprintf("customer %s is assigned to tenant %s", e.Customer, e.Tenant)
}

// Tenants tells whether a tenant is registered (tenancy keeps the
// registry).
type Tenants interface {
	Exists(ctx context.Context, tenant string) (bool, error)
}

// HeldRequest asks for a page of held events, of one customer or all.
type HeldRequest struct {
	Customer string
	page.Request
}

// HeldPage is one page of held events.
type HeldPage struct {
	Events []HeldEvent
	Next   string
}

// HeldEvents lists held events, a page at a time. Only platform admins call
// it (the RPC's policy); the domain checks again, as held events belong to
// no tenant yet.
func (s *Service) HeldEvents(ctx context.Context, c Caller, req HeldRequest) (HeldPage, error) {
	if err := platformAdmin(c); err != nil {
		return HeldPage{}, err
	}
	if req.Customer != "" {
		if err := validCustomer(req.Customer); err != nil {
			return HeldPage{}, err
		}
	}
	size, err := req.Size(100, 1000)
	if err != nil {
		return HeldPage{}, err
	}
	tokScope := "held|" + req.Customer
	after, err := page.Decode(req.PageToken, tokScope)
	if err != nil {
		return HeldPage{}, err
	}
	rows, err := s.store.HeldEvents(ctx, req.Customer, after, size+1)
	if err != nil {
		return HeldPage{}, fmt.Errorf("held events: %w", err)
	}
	var p HeldPage
	p.Events, p.Next = page.Trim(rows, size, func(e HeldEvent) string { return e.EventID }, tokScope)
	return p, nil
}

// AssignCustomer ties a Stripe customer to a registered tenant and applies
// its held events there, each once (see Store.AssignCustomer). It returns
// how many held events this call applied.
func (s *Service) AssignCustomer(ctx context.Context, c Caller, customer, tenant string) (int64, error) {
	if err := platformAdmin(c); err != nil {
		return 0, err
	}
	if err := validCustomer(customer); err != nil {
		return 0, err
	}
	if !identity.ValidTenant(tenant) {
		return 0, invalid(ReasonTenantInvalid, "target_tenant_id %q is not a valid tenant id", apierr.Clip(tenant))
	}
	if s.cfg.Tenants == nil {
		return 0, apierr.Unavailable(ReasonTenancyDown, "no tenant registry is configured").InDomain(Domain)
	}
	ok, err := s.cfg.Tenants.Exists(ctx, tenant)
	if err != nil {
		return 0, apierr.Unavailable(ReasonTenancyDown, "tenant registry: %v", err).InDomain(Domain)
	}
	if !ok {
		return 0, apierr.NotFound(ReasonTenantNotFound, "tenant %q is not registered", tenant).InDomain(Domain)
	}
	n, err := s.store.AssignCustomer(ctx, customer, tenant)
	if ae, ok := errors.AsType[*AssignedError](err); ok {
		return 0, apierr.FailedPrecondition(ReasonCustomerAssigned,
			"customer %s is assigned to tenant %s already", customer, ae.Tenant).InDomain(Domain)
	}
	if err != nil {
		return 0, fmt.Errorf("assign customer %s: %w", customer, err)
	}
	return n, nil
}

// platformAdmin refuses anyone but a platform admin acting as the platform.
func platformAdmin(c Caller) error {
	if c.PlatformAdmin && c.Tenant == adminTenant {
		return nil
	}
	return apierr.PermissionDenied("PLATFORM_ADMIN_REQUIRED", "only a platform admin may manage held Stripe events").InDomain(Domain)
}

// validCustomer accepts what the webhook intake stores as a customer id
// (ValidStripeID), so every held event can be assigned.
func validCustomer(id string) error {
	if !ValidStripeID(id) {
		return invalid(ReasonCustomerInvalid, "customer_id %q is not a Stripe id (1 to %d printable ASCII characters)",
			apierr.Clip(id), MaxStripeIDLen)
	}
	return nil
}

// MaxStripeIDLen bounds the Stripe ids finops stores.
const MaxStripeIDLen = 255

// ValidStripeID reports whether s is a Stripe object id as finops accepts
// one: 1 to MaxStripeIDLen printable ASCII characters, no spaces.
func ValidStripeID(s string) bool {
	if s == "" || len(s) > MaxStripeIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
