// Package identity authenticates callers and enforces the per-RPC policy
// declared in the protos (DESIGN.md section 2).
//
// The pieces are separable: a Verifier turns a bearer token into a Principal,
// Decide is a pure function from a Principal, the requested tenant and the
// method's policy to a Caller and an Outcome, and the Interceptor wires both
// into gRPC, records every access Decision and puts the Caller in the context.
package identity

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/echopilot/echopilot/platform/apierr"
)

// Domain is the ErrorInfo domain of every error this package returns.
const Domain = "auth.echopilot"

// Tenants and roles with a meaning of their own.
const (
	// DefaultTenant is the platform's own tenant and the tenant of anonymous
	// callers that name none.
	DefaultTenant = "default"
	// RoleAdmin in DefaultTenant makes a platform admin.
	RoleAdmin = "admin"
	// RoleService marks a platform service's own token, which acts for the
	// tenant named in x-tenant-id on the methods whose policy lists the
	// service (see ServiceSubject).
	RoleService = "service"
	// UnverifiedBucket is where decisions denied to callers without a
	// verified token are counted, instead of in the tenant they merely name.
	// It is reserved: ValidTenant refuses it, so no tenant can be it.
	UnverifiedBucket = "unverified"
	// servicePrefix starts the subject of a service identity.
	servicePrefix = "service:"
)

// ServiceSubject is the token subject of the platform service name.
func ServiceSubject(name string) string { return servicePrefix + name }

// ServiceName returns the service a principal is, "" when it is none: a
// service identity is a token of DefaultTenant with RoleService and subject
// ServiceSubject(name).
func (p Principal) ServiceName() string {
	name, ok := strings.CutPrefix(p.Subject, servicePrefix)
	if !ok || name == "" || p.Tenant != DefaultTenant || !slices.Contains(p.Roles, RoleService) {
		return ""
	}
	return name
}

// CountedTenant is the tenant a decision is counted under: a verified
// caller's, or one an anonymous caller was allowed to act as; a refused
// caller without a verified token speaks for nobody and lands in
// UnverifiedBucket.
func CountedTenant(tenant string, verified, allowed bool) string {
	if !verified && !allowed {
		return UnverifiedBucket
	}
	return tenant
}

// Principal is the identity proven by a verified token.
type Principal struct {
	Subject string
	Tenant  string
	Roles   []string
	// APIKeyID is set when an API key proved the principal (see apikey.go).
	APIKeyID string
	// ReadOnly principals (read-only API keys) are refused on write methods.
	ReadOnly bool
}

// Caller is who a request acts as, after the policy check.
type Caller struct {
	Subject string
	// Tenant is the effective tenant: the one whose data the call may touch.
	Tenant string
	// TokenTenant is the tenant of the verified token; empty when unverified.
	// It differs from Tenant for admin cross-tenant reads and service calls.
	TokenTenant string
	Roles       []string
	// Verified is true when the caller presented a valid token.
	Verified bool
	// Service names the platform service calling on a tenant's behalf
	// (a verified service identity on a method that lists it), else "".
	Service string
	// CrossTenantRead is true when a platform admin reads another tenant.
	CrossTenantRead bool
	// APIKeyID is the id of the API key the caller presented, else "".
	APIKeyID string
}

// HasRole reports whether the caller holds role.
func (c Caller) HasRole(role string) bool { return slices.Contains(c.Roles, role) }

// IsPlatformAdmin reports whether the caller holds a verified admin token of
// the default tenant.
func (c Caller) IsPlatformAdmin() bool {
	return c.Verified && c.TokenTenant == DefaultTenant && c.HasRole(RoleAdmin)
}

type callerKey struct{}

// WithCaller returns ctx carrying c. The Interceptor calls it; tests of
// handlers can too.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// FromContext returns the Caller put in ctx by the Interceptor.
func FromContext(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// ReasonIdentityMissing is Require's reason.
const ReasonIdentityMissing = "IDENTITY_MISSING"

// Require returns the Caller in ctx; every handler reads its caller through
// it. The Interceptor runs before every handler, so a missing Caller is a
// wiring bug: every service reports it the same way, UNAUTHENTICATED
// IDENTITY_MISSING (not a panic that becomes INTERNAL in one service).
func Require(ctx context.Context) (Caller, error) {
	c, ok := FromContext(ctx)
	if !ok {
		return Caller{}, apierr.Unauthenticated(ReasonIdentityMissing, "no caller identity").InDomain(Domain)
	}
	return c, nil
}

// Mode says whether a call without a token is refused or served anonymously.
// The zero value is the safe one.
type Mode int

const (
	// ModeRequired refuses calls without a token (production).
	ModeRequired Mode = iota
	// ModeOptional serves them as anonymous, unverified callers (local runs).
	ModeOptional
)

// ParseMode parses the value of ECHOPILOT_AUTH_MODE.
func ParseMode(s string) (Mode, error) {
	switch s {
	case "required":
		return ModeRequired, nil
	case "optional":
		return ModeOptional, nil
	}
	return ModeRequired, fmt.Errorf("auth mode %q: want optional or required", s)
}

func (m Mode) String() string {
	if m == ModeOptional {
		return "optional"
	}
	return "required"
}

// MarshalText and UnmarshalText let flag.TextVar and config loaders use Mode.
func (m Mode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

func (m *Mode) UnmarshalText(b []byte) error {
	v, err := ParseMode(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// ValidTenant reports whether id is a well-formed tenant id: 1 to 63
// lower-case letters, digits, '-' or '_', and not UnverifiedBucket.
func ValidTenant(id string) bool {
	if len(id) == 0 || len(id) > 63 || id == UnverifiedBucket {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}
