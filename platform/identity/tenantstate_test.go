package identity

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	authv1 "github.com/echopilot/echopilot/gen/go/echopilot/auth/v1"
)

// fakeRegistry is tenancy's registry as the cache sees it: states the test
// changes, a lookup counter and an outage switch.
type fakeRegistry struct {
	mu      sync.Mutex
	states  map[string]TenantState
	lookups int
	down    bool
}

func (r *fakeRegistry) lookup(_ context.Context, tenant string) (TenantState, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lookups++
	if r.down {
		return TenantActive, errors.New("connection refused")
	}
	st, ok := r.states[tenant]
	if !ok {
		return TenantActive, ErrTenantNotFound
	}
	return st, nil
}

func (r *fakeRegistry) set(tenant string, st TenantState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.states[tenant] = st
}

func TestTenantStatesCache(t *testing.T) {
	reg := &fakeRegistry{states: map[string]TenantState{"acme": TenantActive}}
	c := NewTenantStates(reg.lookup, nil)
	now := time.Unix(1_800_000_000, 0)
	c.now = func() time.Time { return now }
	ctx := t.Context()

	for range 5 {
		if st := c.State(ctx, "acme"); st != TenantActive {
			t.Fatalf("state %v, want active", st)
		}
	}
	if reg.lookups != 1 {
		t.Fatalf("%d lookups within the cache time, want 1", reg.lookups)
	}
	// A suspension shows once the cache time has passed, not before.
	reg.set("acme", TenantSuspended)
	now = now.Add(TenantStateCacheTTL - time.Millisecond)
	if c.State(ctx, "acme") != TenantActive {
		t.Fatal("the cached state changed before its time")
	}
	now = now.Add(time.Millisecond)
	if c.State(ctx, "acme") != TenantSuspended {
		t.Fatal("suspension not seen after the cache time")
	}
	// Not registered: active.
	if c.State(ctx, "nosuch") != TenantActive {
		t.Fatal("an unregistered tenant is not active")
	}
	// An outage keeps the last state read, and a tenant never read is
	// served as active.
	reg.down = true
	now = now.Add(TenantStateCacheTTL)
	if c.State(ctx, "acme") != TenantSuspended {
		t.Fatal("an outage forgot the suspension")
	}
	if c.State(ctx, "globex") != TenantActive {
		t.Fatal("an outage refused a tenant never read")
	}
	reg.down = false
	reg.set("acme", TenantActive)
	if c.State(ctx, "acme") != TenantActive {
		t.Fatal("resumption not seen once the registry answers again")
	}
}

// Through the interceptor: a suspended tenant's writes are refused with
// FAILED_PRECONDITION TENANT_SUSPENDED and recorded as denied; its reads,
// other tenants, platform admins and services are not refused.
func TestInterceptorRefusesSuspendedWrites(t *testing.T) {
	k := newTestKeys(t)
	reg := &fakeRegistry{states: map[string]TenantState{"acme": TenantSuspended, "gone": TenantDeleted}}
	policies := map[string]*authv1.Policy{
		"Bare":  {Access: authv1.Access_ACCESS_WRITE, AllowedServices: []string{"queue"}},
		"Watch": {Access: authv1.Access_ACCESS_READ},
	}
	rec := &recorder{}
	ic, err := NewInterceptor(InterceptorConfig{Verifier: k.verifier(t), Mode: ModeOptional, Sink: rec,
		Files: registry(t, probeFile(t, policies)), TenantStates: NewTenantStates(reg.lookup, nil)})
	if err != nil {
		t.Fatal(err)
	}
	unary := ic.UnaryServerInterceptor()
	call := func(method string, md ...string) error {
		ctx := metadata.NewIncomingContext(t.Context(), metadata.Pairs(md...))
		_, err := unary(ctx, nil, &grpc.UnaryServerInfo{FullMethod: "/" + probeService + "/" + method},
			func(context.Context, any) (any, error) { return nil, nil })
		return err
	}
	for _, tc := range []struct {
		name   string
		method string
		md     []string
		code   codes.Code
		reason string
	}{
		{"suspended user writes", "Bare", bearer(k.hs(t, claimsFor("acme", "admin"))), codes.FailedPrecondition, ReasonTenantSuspended},
		{"suspended anonymous writes", "Bare", []string{MDTenant, "acme"}, codes.FailedPrecondition, ReasonTenantSuspended},
		{"deleted tenant writes", "Bare", bearer(k.hs(t, claimsFor("gone", "user"))), codes.FailedPrecondition, ReasonTenantNotActive},
		{"suspended user reads", "Watch", bearer(k.hs(t, claimsFor("acme", "user"))), codes.OK, ReasonSameTenant},
		{"other tenant writes", "Bare", bearer(k.hs(t, claimsFor("globex", "user"))), codes.OK, ReasonSameTenant},
		{"platform admin writes", "Bare", bearer(k.hs(t, claimsFor(DefaultTenant, RoleAdmin))), codes.OK, ReasonSameTenant},
		{"service for the tenant", "Bare", append(bearer(k.hs(t, serviceClaims(DefaultTenant, "queue"))), MDTenant, "acme"), codes.OK, ReasonServiceDelegation},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := call(tc.method, tc.md...)
			if status.Code(err) != tc.code {
				t.Fatalf("got %v, want %v", err, tc.code)
			}
			d := rec.take()
			if len(d) != 1 || d[0].Reason != tc.reason || d[0].Allowed != (tc.code == codes.OK) {
				t.Fatalf("decisions %+v, want one with reason %s", d, tc.reason)
			}
		})
	}
}
