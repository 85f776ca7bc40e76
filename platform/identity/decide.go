package identity

import (
	"slices"
	"time"

	"google.golang.org/grpc/codes"

	authv1 "github.com/echopilot/echopilot/gen/go/echopilot/auth/v1"
	"github.com/echopilot/echopilot/platform/apierr"
)

// Reasons are stable codes: ErrorInfo reasons of denials and Decision
// reasons of grants.
const (
	ReasonTokenMissing      = "TOKEN_MISSING"
	ReasonTokenInvalid      = "TOKEN_INVALID"
	ReasonTokenExpired      = "TOKEN_EXPIRED"
	ReasonTenantInvalid     = "TENANT_INVALID"
	ReasonTenantConflict    = "TENANT_CONFLICT"
	ReasonCrossTenantDenied = "CROSS_TENANT_DENIED"
	ReasonTenantNotAllowed  = "TENANT_NOT_ALLOWED"
	ReasonRoleRequired      = "ROLE_REQUIRED"
	ReasonPolicyMissing     = "POLICY_MISSING"
	// ReasonServiceIdentityInvalid: role "service" in a token that is not a
	// platform service identity (another tenant's, or another subject).
	ReasonServiceIdentityInvalid = "SERVICE_IDENTITY_INVALID"
	// ReasonServiceNotAllowed: a service identity on a method whose policy
	// does not list it.
	ReasonServiceNotAllowed = "SERVICE_NOT_ALLOWED"
	// ReasonPeerIdentityMismatch: a service token over a connection whose
	// verified client certificate names another service, or none.
	ReasonPeerIdentityMismatch = "PEER_IDENTITY_MISMATCH"

	// ReasonSameTenant: a verified caller in its own tenant.
	ReasonSameTenant = "SAME_TENANT"
	// ReasonAdminReadOnly: a platform admin reading another tenant.
	ReasonAdminReadOnly = "ADMIN_READ_ONLY"
	// ReasonServiceDelegation: a service identity acting for a tenant
	// through a method that lists it.
	ReasonServiceDelegation = "SERVICE_DELEGATION"
	// ReasonAnonymous: no token, accepted in optional mode.
	ReasonAnonymous = "ANONYMOUS"
	// ReasonReadOnlyKey: a read-only API key on a write method.
	ReasonReadOnlyKey = "API_KEY_READ_ONLY"
)

// Input is everything Decide looks at.
type Input struct {
	// Method is the full gRPC method name.
	Method string
	// Policy is the method's declared policy; nil when it declares none.
	Policy *authv1.Policy
	Mode   Mode
	// Principal is set when the caller presented a token that verified.
	Principal *Principal
	// TokenErr is set when the caller presented a token that did not.
	TokenErr error
	// Requested lists the tenants the request names, in any order: the
	// x-tenant-id and x-tenant-id-query values and the request's tenant_id
	// field. Empty strings are ignored.
	Requested []string
	Now       time.Time
	// BindServicePeers holds service tokens to the connection: a service
	// token is honored only when PeerService, the service the caller's
	// verified client certificate names, is the token's service. User and
	// worker tokens are not bound to a certificate.
	BindServicePeers bool
	PeerService      string
}

// Decision is one access decision, as reported to tenancy.
type Decision struct {
	Time   time.Time
	Method string
	// Subject is empty for unverified callers.
	Subject string
	// CallerTenant is the tenant the decision is counted under (see
	// CountedTenant): the verified token's tenant, else the tenant an
	// anonymous caller was allowed to act as, else UnverifiedBucket.
	CallerTenant string
	// TargetTenant is the tenant whose data was asked for.
	TargetTenant string
	Allowed      bool
	Reason       string
	Verified     bool
}

// Outcome is the verdict of Decide.
type Outcome struct {
	// Denial is nil when the call may proceed.
	Denial *apierr.Error
	// Decision is what to record; nil for public methods, whose calls are
	// not access decisions.
	Decision *Decision
}

// Err returns the denial as an error, or nil.
func (o Outcome) Err() error {
	if o.Denial == nil {
		return nil
	}
	return o.Denial
}

// Decide applies the rules of DESIGN.md section 2 to one call. It is pure:
// token verification and metadata extraction happen before it.
//
// Public methods skip identity altogether: the caller is anonymous, any
// token is ignored and nothing is recorded; a tenant they name must still be
// well-formed, since it ends up in the Caller.
func Decide(in Input) (Caller, Outcome) {
	requested, tenantErr := resolveTenant(in.Requested)
	if in.Policy.GetPublic() {
		if tenantErr != nil {
			return Caller{}, Outcome{Denial: tenantErr}
		}
		return Caller{Tenant: orDefault(requested)}, Outcome{}
	}

	p := in.Principal
	d := &Decision{Time: in.Now, Method: in.Method, Verified: p != nil, CallerTenant: orDefault(requested)}
	if p != nil {
		d.Subject, d.CallerTenant = p.Subject, p.Tenant
	}
	d.TargetTenant = requested
	if d.TargetTenant == "" {
		d.TargetTenant = d.CallerTenant
	}
	deny := func(e *apierr.Error) (Caller, Outcome) {
		d.Reason = e.Reason
		d.CallerTenant = CountedTenant(d.CallerTenant, d.Verified, false)
		return Caller{}, Outcome{Denial: e, Decision: d}
	}

	switch {
	case !declared(in.Policy):
		return deny(denial(codes.PermissionDenied, ReasonPolicyMissing, "method %s declares no access policy", in.Method))
	case in.TokenErr != nil:
		// Never downgraded to anonymous, whatever the mode.
		switch apierr.Reason(in.TokenErr) {
		case ReasonTokenExpired:
			return deny(errTokenExpired())
		case ReasonKeyLookupUnavailable:
			return deny(denial(codes.Unavailable, ReasonKeyLookupUnavailable, "the API key could not be checked now; retry"))
		}
		return deny(errTokenInvalid())
	case in.BindServicePeers && p != nil && p.ServiceName() != "" && p.ServiceName() != in.PeerService:
		// A stolen service token is useless without the service's key.
		return deny(denial(codes.Unauthenticated, ReasonPeerIdentityMismatch,
			"a service token must come over a connection whose client certificate names the same service"))
	case p == nil && in.Mode != ModeOptional:
		return deny(denial(codes.Unauthenticated, ReasonTokenMissing, "a bearer token is required"))
	case tenantErr != nil:
		return deny(tenantErr)
	}

	c, reason, err := actAs(p, requested, in.Policy)
	if err != nil {
		return deny(err)
	}
	if allowed := in.Policy.GetAllowedTenants(); len(allowed) > 0 && !slices.Contains(allowed, c.Tenant) {
		return deny(denial(codes.PermissionDenied, ReasonTenantNotAllowed, "method %s is not available to tenant %q", in.Method, c.Tenant))
	}
	for _, r := range in.Policy.GetRequiredRoles() {
		if !c.HasRole(r) {
			return deny(denial(codes.PermissionDenied, ReasonRoleRequired, "method %s requires role %q", in.Method, r))
		}
	}
	if p != nil && p.ReadOnly && in.Policy.GetAccess() != authv1.Access_ACCESS_READ {
		return deny(denial(codes.PermissionDenied, ReasonReadOnlyKey, "method %s writes, and the API key is read-only", in.Method))
	}
	d.Allowed, d.Reason, d.TargetTenant = true, reason, c.Tenant
	return c, Outcome{Decision: d}
}

// actAs works out the tenant the caller acts in. A verified caller's
// requested tenant is only a consistency check, except for the services a
// method lists and for platform admins reading through a method that
// allows it.
func actAs(p *Principal, requested string, pol *authv1.Policy) (Caller, string, *apierr.Error) {
	if p == nil {
		return Caller{Tenant: orDefault(requested)}, ReasonAnonymous, nil
	}
	c := Caller{Subject: p.Subject, Tenant: p.Tenant, TokenTenant: p.Tenant, Roles: p.Roles, Verified: true, APIKeyID: p.APIKeyID}
	if slices.Contains(p.Roles, RoleService) {
		return actAsService(p, c, requested, pol)
	}
	switch {
	case requested == "" || requested == p.Tenant:
		return c, ReasonSameTenant, nil
	case c.IsPlatformAdmin() && pol.GetAccess() == authv1.Access_ACCESS_READ && pol.GetAdminCrossTenantRead():
		c.Tenant, c.CrossTenantRead = requested, true
		return c, ReasonAdminReadOnly, nil
	}
	return Caller{}, "", denial(codes.PermissionDenied, ReasonCrossTenantDenied,
		"a token of tenant %q cannot act for tenant %q", p.Tenant, requested)
}

// actAsService admits a platform service identity on the methods that list
// it, acting for the tenant it names (its own, DefaultTenant, when none).
// Role "service" anywhere else grants nothing: such a token is refused
// rather than served as an ordinary user, so a tenant's identity provider
// cannot mint its way into another tenant's data.
func actAsService(p *Principal, c Caller, requested string, pol *authv1.Policy) (Caller, string, *apierr.Error) {
	name := p.ServiceName()
	switch {
	case name == "":
		return Caller{}, "", denial(codes.PermissionDenied, ReasonServiceIdentityInvalid,
			"role %q is only valid in a platform service identity", RoleService)
	case !slices.Contains(pol.GetAllowedServices(), name):
		return Caller{}, "", denial(codes.PermissionDenied, ReasonServiceNotAllowed,
			"service %q may not call this method", name)
	}
	c.Service = name
	if requested == "" || requested == p.Tenant {
		return c, ReasonSameTenant, nil
	}
	c.Tenant = requested
	return c, ReasonServiceDelegation, nil
}

// resolveTenant returns the one tenant the request names, "" when none.
func resolveTenant(names []string) (string, *apierr.Error) {
	var got string
	for _, n := range names {
		switch {
		case n == "":
		case !ValidTenant(n):
			return "", denial(codes.InvalidArgument, ReasonTenantInvalid,
				"tenant id %q is not valid: use 1 to 63 lower-case letters, digits, '-' or '_'", apierr.Clip(n))
		case got != "" && n != got:
			return "", denial(codes.InvalidArgument, ReasonTenantConflict, "the request names tenants %q and %q", got, n)
		default:
			got = n
		}
	}
	return got, nil
}

// declared reports whether p is a usable policy; anything else fails closed.
func declared(p *authv1.Policy) bool {
	return p.GetPublic() || p.GetAccess() != authv1.Access_ACCESS_UNSPECIFIED
}

func orDefault(tenant string) string {
	if tenant == "" {
		return DefaultTenant
	}
	return tenant
}

func errTokenExpired() *apierr.Error {
	return denial(codes.Unauthenticated, ReasonTokenExpired, "the bearer token has expired")
}

func errTokenInvalid() *apierr.Error {
	return denial(codes.Unauthenticated, ReasonTokenInvalid, "the bearer token is not valid")
}

func denial(code codes.Code, reason, format string, args ...any) *apierr.Error {
	e := apierr.New(code, reason, format, args...)
	e.Domain = Domain
	return e
}
