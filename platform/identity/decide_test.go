package identity

import (
	"cmp"
	"context"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authv1 "github.com/echopilot/echopilot/gen/go/echopilot/auth/v1"
	"github.com/echopilot/echopilot/platform/apierr"
)

// matrixPolicies are the method shapes of the decision matrix.
func matrixPolicies() map[string]*authv1.Policy {
	return map[string]*authv1.Policy{
		"read":   {Access: authv1.Access_ACCESS_READ},
		"read-x": {Access: authv1.Access_ACCESS_READ, AdminCrossTenantRead: true},
		"write":  {Access: authv1.Access_ACCESS_WRITE},
		// The admin flag is only honoured on reads.
		"write-x":      {Access: authv1.Access_ACCESS_WRITE, AdminCrossTenantRead: true},
		"admin-only":   {Access: authv1.Access_ACCESS_WRITE, AllowedTenants: []string{DefaultTenant}, RequiredRoles: []string{RoleAdmin}},
		"service-only": {Access: authv1.Access_ACCESS_WRITE, RequiredRoles: []string{RoleService}, AllowedServices: []string{"queue"}},
		// A tenant-facing method that one service may also call for any tenant.
		"write-svc":   {Access: authv1.Access_ACCESS_WRITE, AllowedServices: []string{"tenancy", "queue"}},
		"public":      {Public: true},
		"unspecified": {},
		"missing":     nil,
	}
}

// matrixTokens signs real tokens, good and bad, for the matrix.
func matrixTokens(t *testing.T, k testKeys) map[string]string {
	expired := claimsFor("acme", "user")
	expired.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Hour))
	expiredAdmin := claimsFor(DefaultTenant, RoleAdmin)
	expiredAdmin.ExpiresAt = expired.ExpiresAt
	wrongIss := claimsFor("acme", "user")
	wrongIss.Issuer = "https://evil.test"
	wrongAud := claimsFor("acme", "user")
	wrongAud.Audience = jwt.ClaimStrings{"another-api"}
	noExp := claimsFor("acme", "user")
	noExp.ExpiresAt = nil
	pubPEM, err := os.ReadFile(k.esFile)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"acme":           k.hs(t, claimsFor("acme", "user")),
		"acme-es":        k.es256(t, claimsFor("acme", "user")),
		"admin":          k.hs(t, claimsFor(DefaultTenant, RoleAdmin)),
		"admin-es":       k.es256(t, claimsFor(DefaultTenant, RoleAdmin)),
		"acme-admin":     k.hs(t, claimsFor("acme", RoleAdmin)),
		"service":        k.hs(t, serviceClaims(DefaultTenant, "queue")),
		"service-growth": k.hs(t, serviceClaims(DefaultTenant, "growth")),
		// Role "service" from a tenant's identity provider, or with a
		// subject that names no service: never a service identity.
		"acme-service":    k.hs(t, serviceClaims("acme", "queue")),
		"service-no-name": k.hs(t, claimsFor(DefaultTenant, RoleService)),
		"expired":         k.hs(t, expired),
		"expired-admin":   k.es256(t, expiredAdmin),
		"wrong-key":       signToken(t, jwt.SigningMethodHS256, randomSecret(t), claimsFor("acme", "user")),
		"wrong-key-es":    signToken(t, jwt.SigningMethodES256, newES256(t), claimsFor(DefaultTenant, RoleAdmin)),
		// The classic confusion: HMAC keyed with the public key's PEM.
		"alg-confusion": signToken(t, jwt.SigningMethodHS256, pubPEM, claimsFor(DefaultTenant, RoleAdmin)),
		"alg-none":      signToken(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claimsFor(DefaultTenant, RoleAdmin)),
		"wrong-iss":     k.hs(t, wrongIss),
		"wrong-aud":     k.hs(t, wrongAud),
		"no-tenant":     k.hs(t, claimsFor("", RoleAdmin)),
		"bad-tenant":    k.hs(t, claimsFor("ACME", "user")),
		"no-exp":        k.hs(t, noExp),
	}
}

func TestDecideMatrix(t *testing.T) {
	const (
		opt  = ModeOptional
		reqd = ModeRequired
		ok   = codes.OK
		unau = codes.Unauthenticated
		deny = codes.PermissionDenied
		bad  = codes.InvalidArgument
		yes  = true
		no   = false
	)
	ten := func(names ...string) []string { return names }
	k := newTestKeys(t)
	v := k.verifier(t)
	tokens := matrixTokens(t, k)
	policies := matrixPolicies()

	rows := []struct {
		token  string // key of tokens; "" sends none
		mode   Mode
		policy string // key of policies
		req    []string
		code   codes.Code
		reason string
		// tenant is the effective tenant when allowed, the decision's
		// caller tenant when denied.
		tenant   string
		verified bool
		cross    bool
	}{
		// No token.
		{"", opt, "read", nil, ok, ReasonAnonymous, "default", no, no},
		{"", opt, "read", ten("acme"), ok, ReasonAnonymous, "acme", no, no},
		{"", opt, "write", ten("globex"), ok, ReasonAnonymous, "globex", no, no},
		{"", opt, "read-x", ten("acme"), ok, ReasonAnonymous, "acme", no, no},
		{"", opt, "write-x", ten("acme"), ok, ReasonAnonymous, "acme", no, no},
		{"", opt, "read", ten("acme", "", "acme"), ok, ReasonAnonymous, "acme", no, no},
		{"", opt, "admin-only", nil, deny, ReasonRoleRequired, UnverifiedBucket, no, no},
		{"", opt, "admin-only", ten("acme"), deny, ReasonTenantNotAllowed, UnverifiedBucket, no, no},
		{"", opt, "service-only", ten("acme"), deny, ReasonRoleRequired, UnverifiedBucket, no, no},
		{"", reqd, "read", nil, unau, ReasonTokenMissing, UnverifiedBucket, no, no},
		{"", reqd, "read", ten("acme"), unau, ReasonTokenMissing, UnverifiedBucket, no, no},
		{"", reqd, "write", ten("globex"), unau, ReasonTokenMissing, UnverifiedBucket, no, no},
		{"", reqd, "read-x", ten("acme"), unau, ReasonTokenMissing, UnverifiedBucket, no, no},
		{"", opt, "read", ten("Acme"), bad, ReasonTenantInvalid, UnverifiedBucket, no, no},
		{"", opt, "read", ten("acme", "globex"), bad, ReasonTenantConflict, UnverifiedBucket, no, no},
		{"", reqd, "public", nil, ok, "", "default", no, no},
		{"", reqd, "public", ten("acme"), ok, "", "acme", no, no},
		{"", opt, "public", ten("bad tenant"), bad, ReasonTenantInvalid, "", no, no},
		{"", opt, "missing", nil, deny, ReasonPolicyMissing, UnverifiedBucket, no, no},
		{"", opt, "unspecified", ten("acme"), deny, ReasonPolicyMissing, UnverifiedBucket, no, no},

		// A user of tenant acme.
		{"acme", opt, "read", nil, ok, ReasonSameTenant, "acme", yes, no},
		{"acme", reqd, "read", nil, ok, ReasonSameTenant, "acme", yes, no},
		{"acme", opt, "read", ten("acme"), ok, ReasonSameTenant, "acme", yes, no},
		{"acme", reqd, "read", ten("acme"), ok, ReasonSameTenant, "acme", yes, no},
		{"acme", opt, "read", ten("globex"), deny, ReasonCrossTenantDenied, "acme", yes, no},
		{"acme", reqd, "read", ten("globex"), deny, ReasonCrossTenantDenied, "acme", yes, no},
		{"acme", opt, "write", nil, ok, ReasonSameTenant, "acme", yes, no},
		{"acme", reqd, "write", ten("acme"), ok, ReasonSameTenant, "acme", yes, no},
		{"acme", reqd, "write", ten("globex"), deny, ReasonCrossTenantDenied, "acme", yes, no},
		{"acme", reqd, "read-x", ten("globex"), deny, ReasonCrossTenantDenied, "acme", yes, no},
		{"acme", reqd, "read-x", ten("default"), deny, ReasonCrossTenantDenied, "acme", yes, no},
		{"acme-es", reqd, "read", nil, ok, ReasonSameTenant, "acme", yes, no},
		{"acme-es", opt, "write", ten("acme"), ok, ReasonSameTenant, "acme", yes, no},
		{"acme-es", reqd, "read-x", ten("globex"), deny, ReasonCrossTenantDenied, "acme", yes, no},
		{"acme-es", opt, "write", ten("globex"), deny, ReasonCrossTenantDenied, "acme", yes, no},
		{"acme", reqd, "read", ten("acme", "acme"), ok, ReasonSameTenant, "acme", yes, no},
		{"acme", reqd, "read", ten("acme", "globex"), bad, ReasonTenantConflict, "acme", yes, no},
		{"acme", reqd, "read", ten("ACME"), bad, ReasonTenantInvalid, "acme", yes, no},
		{"acme", reqd, "admin-only", nil, deny, ReasonTenantNotAllowed, "acme", yes, no},
		{"acme", reqd, "service-only", nil, deny, ReasonRoleRequired, "acme", yes, no},
		{"acme", reqd, "public", ten("globex"), ok, "", "globex", no, no},
		{"acme", reqd, "missing", nil, deny, ReasonPolicyMissing, "acme", yes, no},

		// Platform admins read across tenants where allowed, never write.
		{"admin", reqd, "read", nil, ok, ReasonSameTenant, "default", yes, no},
		{"admin", reqd, "read-x", ten("acme"), ok, ReasonAdminReadOnly, "acme", yes, yes},
		{"admin", opt, "read-x", ten("acme"), ok, ReasonAdminReadOnly, "acme", yes, yes},
		{"admin-es", reqd, "read-x", ten("globex"), ok, ReasonAdminReadOnly, "globex", yes, yes},
		{"admin-es", opt, "read-x", ten("globex", "globex"), ok, ReasonAdminReadOnly, "globex", yes, yes},
		{"admin", reqd, "read", ten("acme"), deny, ReasonCrossTenantDenied, "default", yes, no},
		{"admin", opt, "write", ten("acme"), deny, ReasonCrossTenantDenied, "default", yes, no},
		{"admin", reqd, "write-x", ten("acme"), deny, ReasonCrossTenantDenied, "default", yes, no},
		{"admin-es", opt, "write-x", ten("globex"), deny, ReasonCrossTenantDenied, "default", yes, no},
		{"admin", reqd, "admin-only", nil, ok, ReasonSameTenant, "default", yes, no},
		{"admin", reqd, "admin-only", ten("default"), ok, ReasonSameTenant, "default", yes, no},
		{"admin", reqd, "admin-only", ten("acme"), deny, ReasonCrossTenantDenied, "default", yes, no},
		{"admin", reqd, "read-x", ten("acme", "globex"), bad, ReasonTenantConflict, "default", yes, no},
		{"admin", reqd, "read-x", ten("acme corp"), bad, ReasonTenantInvalid, "default", yes, no},
		{"admin", reqd, "service-only", nil, deny, ReasonRoleRequired, "default", yes, no},
		// An admin of another tenant is no platform admin.
		{"acme-admin", reqd, "read-x", ten("globex"), deny, ReasonCrossTenantDenied, "acme", yes, no},
		{"acme-admin", reqd, "read-x", ten("acme"), ok, ReasonSameTenant, "acme", yes, no},
		{"acme-admin", reqd, "admin-only", nil, deny, ReasonTenantNotAllowed, "acme", yes, no},

		// A service identity is refused on methods that do not list it.
		{"service", reqd, "write", ten("acme"), deny, ReasonServiceNotAllowed, "default", yes, no},
		{"service", reqd, "read", ten("globex"), deny, ReasonServiceNotAllowed, "default", yes, no},
		{"service", reqd, "admin-only", ten("acme"), deny, ReasonServiceNotAllowed, "default", yes, no},
		{"service", reqd, "admin-only", nil, deny, ReasonServiceNotAllowed, "default", yes, no},

		// A presented token that fails is refused in both modes.
		{"expired", opt, "read", nil, unau, ReasonTokenExpired, UnverifiedBucket, no, no},
		{"expired", reqd, "read", ten("acme"), unau, ReasonTokenExpired, UnverifiedBucket, no, no},
		{"expired", opt, "write", ten("globex"), unau, ReasonTokenExpired, UnverifiedBucket, no, no},
		{"expired", reqd, "write", nil, unau, ReasonTokenExpired, UnverifiedBucket, no, no},
		{"expired-admin", opt, "read-x", ten("acme"), unau, ReasonTokenExpired, UnverifiedBucket, no, no},
		{"expired", opt, "public", ten("acme"), ok, "", "acme", no, no},
		{"wrong-key", opt, "read", nil, unau, ReasonTokenInvalid, UnverifiedBucket, no, no},
		{"wrong-key", reqd, "write", ten("acme"), unau, ReasonTokenInvalid, UnverifiedBucket, no, no},
		{"wrong-key-es", opt, "read-x", ten("acme"), unau, ReasonTokenInvalid, UnverifiedBucket, no, no},
		{"wrong-key-es", reqd, "read", nil, unau, ReasonTokenInvalid, UnverifiedBucket, no, no},
		{"alg-confusion", opt, "read-x", ten("acme"), unau, ReasonTokenInvalid, UnverifiedBucket, no, no},
		{"alg-none", opt, "read", nil, unau, ReasonTokenInvalid, UnverifiedBucket, no, no},
		{"alg-none", reqd, "read-x", ten("acme"), unau, ReasonTokenInvalid, UnverifiedBucket, no, no},
		{"alg-none", opt, "write", ten("globex"), unau, ReasonTokenInvalid, UnverifiedBucket, no, no},
		{"wrong-iss", opt, "read", nil, unau, ReasonTokenInvalid, UnverifiedBucket, no, no},
		{"wrong-iss", reqd, "write", ten("acme"), unau, ReasonTokenInvalid, UnverifiedBucket, no, no},
		{"wrong-aud", opt, "read-x", ten("acme"), unau, ReasonTokenInvalid, UnverifiedBucket, no, no},
		{"wrong-aud", reqd, "read", ten("globex"), unau, ReasonTokenInvalid, UnverifiedBucket, no, no},
		{"no-tenant", opt, "read", nil, unau, ReasonTokenInvalid, UnverifiedBucket, no, no},
		{"bad-tenant", opt, "read", ten("acme"), unau, ReasonTokenInvalid, UnverifiedBucket, no, no},
		{"no-exp", reqd, "read", nil, unau, ReasonTokenInvalid, UnverifiedBucket, no, no},
		{"wrong-key", opt, "missing", nil, deny, ReasonPolicyMissing, UnverifiedBucket, no, no},
		// Service identities: only on the methods that list them.
		{"service", reqd, "service-only", ten("acme"), ok, ReasonServiceDelegation, "acme", yes, no},
		{"service", reqd, "service-only", nil, ok, ReasonSameTenant, "default", yes, no},
		{"service", reqd, "write-svc", ten("globex"), ok, ReasonServiceDelegation, "globex", yes, no},
		{"service", reqd, "read", ten("acme"), deny, ReasonServiceNotAllowed, "default", yes, no},
		{"service", reqd, "read-x", nil, deny, ReasonServiceNotAllowed, "default", yes, no},
		{"service-growth", reqd, "service-only", ten("acme"), deny, ReasonServiceNotAllowed, "default", yes, no},
		{"acme-service", reqd, "service-only", ten("globex"), deny, ReasonServiceIdentityInvalid, "acme", yes, no},
		{"acme-service", reqd, "write-svc", ten("globex"), deny, ReasonServiceIdentityInvalid, "acme", yes, no},
		{"acme-service", reqd, "read", nil, deny, ReasonServiceIdentityInvalid, "acme", yes, no},
		{"service-no-name", reqd, "service-only", ten("acme"), deny, ReasonServiceIdentityInvalid, "default", yes, no},
		{"acme", reqd, "service-only", nil, deny, ReasonRoleRequired, "acme", yes, no},
		{"acme", reqd, "write-svc", nil, ok, ReasonSameTenant, "acme", yes, no},
		{"acme", reqd, "write-svc", ten("globex"), deny, ReasonCrossTenantDenied, "acme", yes, no},
	}

	now := time.Now()
	for _, r := range rows {
		name := strings.Join([]string{cmp.Or(r.token, "no-token"), r.mode.String(), r.policy, strings.Join(r.req, "+")}, "/")
		t.Run(name, func(t *testing.T) {
			in := Input{Method: "/test.v1.S/" + r.policy, Policy: policies[r.policy], Mode: r.mode, Requested: r.req, Now: now}
			if r.token != "" {
				raw, found := tokens[r.token]
				if !found {
					t.Fatalf("no token %q", r.token)
				}
				p, err := v.Verify(context.Background(), raw)
				if err != nil {
					in.TokenErr = err
				} else {
					in.Principal = &p
				}
			}
			c, out := Decide(in)

			if got := status.Code(out.Err()); got != r.code {
				t.Fatalf("code = %v (%v), want %v", got, out.Err(), r.code)
			}
			d := out.Decision
			if public := in.Policy.GetPublic(); public != (d == nil) {
				t.Fatalf("public = %v but decision = %+v", public, d)
			}
			if d != nil {
				if d.Method != in.Method || !d.Time.Equal(now) || d.Reason != r.reason || d.Allowed != (r.code == codes.OK) {
					t.Errorf("decision = %+v, want reason %s, allowed %v", *d, r.reason, r.code == codes.OK)
				}
				if wantSub := "sub-" + d.CallerTenant; d.Verified && d.Subject != wantSub && !strings.HasPrefix(d.Subject, "service:") || !d.Verified && d.Subject != "" {
					t.Errorf("decision subject = %q, verified %v", d.Subject, d.Verified)
				}
			}

			if out.Denial != nil {
				if got := apierr.Reason(out.Err()); got != r.reason {
					t.Errorf("reason = %s, want %s", got, r.reason)
				}
				if out.Denial.Domain != Domain {
					t.Errorf("domain = %q", out.Denial.Domain)
				}
				if !reflect.DeepEqual(c, Caller{}) {
					t.Errorf("denied call got caller %+v", c)
				}
				if d != nil && (d.CallerTenant != r.tenant || d.Verified != r.verified) {
					t.Errorf("decision caller = %q verified %v, want %q %v", d.CallerTenant, d.Verified, r.tenant, r.verified)
				}
				return
			}
			if c.Tenant != r.tenant || c.Verified != r.verified || c.CrossTenantRead != r.cross {
				t.Errorf("caller = %+v, want tenant %q verified %v cross %v", c, r.tenant, r.verified, r.cross)
			}
			if d != nil && (d.TargetTenant != c.Tenant || d.Verified != c.Verified) {
				t.Errorf("decision %+v disagrees with caller %+v", *d, c)
			}
		})
	}
}

func TestDecideTokenErrorWithoutReasonIsInvalid(t *testing.T) {
	_, out := Decide(Input{
		Policy:   &authv1.Policy{Access: authv1.Access_ACCESS_READ},
		Mode:     ModeOptional,
		TokenErr: errors.New("something unexpected"),
	})
	if status.Code(out.Err()) != codes.Unauthenticated || apierr.Reason(out.Err()) != ReasonTokenInvalid {
		t.Fatalf("err = %v, want UNAUTHENTICATED %s", out.Err(), ReasonTokenInvalid)
	}
}

func TestCallerFromContext(t *testing.T) {
	if _, ok := FromContext(context.Background()); ok {
		t.Fatal("FromContext found a caller in an empty context")
	}
	want := Caller{Subject: "alice", Tenant: "acme", TokenTenant: DefaultTenant, Roles: []string{RoleAdmin}, Verified: true, CrossTenantRead: true}
	got, err := Require(WithCaller(context.Background(), want))
	if err != nil || !reflect.DeepEqual(got, want) || !got.IsPlatformAdmin() {
		t.Fatalf("got %+v, %v; want %+v (platform admin)", got, err, want)
	}
	// A handler reached without the interceptor: the same error in every
	// service, not a panic.
	if _, err := Require(context.Background()); status.Code(err) != codes.Unauthenticated || apierr.Reason(err) != ReasonIdentityMissing {
		t.Fatalf("Require without a caller: %v", err)
	}
}

func TestParseMode(t *testing.T) {
	for _, m := range []Mode{ModeOptional, ModeRequired} {
		var got Mode
		if err := got.UnmarshalText([]byte(m.String())); err != nil || got != m {
			t.Errorf("round trip of %v = %v, %v", m, got, err)
		}
	}
	if _, err := ParseMode("off"); err == nil {
		t.Error(`ParseMode("off") succeeded`)
	}
}

func TestValidTenant(t *testing.T) {
	for id, want := range map[string]bool{
		"acme": true, "a": true, "team_1-eu": true, strings.Repeat("a", 63): true,
		"": false, UnverifiedBucket: false, "Acme": false, "acme corp": false, "acme/x": false, "ümlaut": false, strings.Repeat("a", 64): false,
	} {
		if got := ValidTenant(id); got != want {
			t.Errorf("ValidTenant(%q) = %v, want %v", id, got, want)
		}
	}
}
