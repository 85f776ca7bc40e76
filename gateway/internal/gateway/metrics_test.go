package gateway

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"

	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/metricstest"
	"github.com/echopilot/echopilot/platform/server"
	"github.com/echopilot/echopilot/platform/service"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/platform/svcauth"
	"github.com/echopilot/echopilot/services/tenancy/app"
)

// TestTenantRequestCounts: requests count under the tenant of their
// verified token, class by class; a claimed but unverified tenant counts
// as anonymous; past the first 50 tenants, under "other". Then the
// gateway's metric names are the committed list the deploy checks read.
func TestTenantRequestCounts(t *testing.T) {
	v, err := identity.NewVerifier(identity.VerifierConfig{HS256Secret: []byte(servicetest.Secret)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	conn := servicetest.Start(t, app.Spec(), servicetest.Options{AuthMode: "optional", Quiet: true})
	// As cmd/gateway wires it (limitedGateway), so the list is production's.
	lots := Budget{Rate: 1000, Burst: 1000}
	limits := RateLimitConfig{Read: lots, Write: lots, Verifier: v, Overrides: TenancyOverrides(tenancyv1.NewTenancyServiceClient(conn),
		grpc.PerRPCCredentials(svcauth.Credentials(svcauth.Minted([]byte(servicetest.Secret), "gateway"))))}
	plain, err := service.TLS{}.Open(nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, gw := startGateway(t, Config{RateLimits: limits, Collectors: []prometheus.Collector{plain.ExpiryGauge()}},
		[]Backend{{Name: "tenancy", Conn: conn, Register: handlers(tenancyv1.RegisterTenancyServiceHandlerClient, tenancyv1.NewTenancyServiceClient)}}, true)
	count := func(tenant, class string) float64 {
		return metricstest.Value(t, gw.reg, "echopilot_gateway_tenant_requests_total", map[string]string{"tenant": tenant, "class": class})
	}

	acme := bearerOf(t, "acme", "user")
	for range 3 {
		do(t, srv, "GET", "/api/tenant/info", "", "Authorization", acme)
	}
	do(t, srv, "POST", "/api/tenants", `{"tenant_id":"x"}`, "Authorization", acme)
	do(t, srv, "GET", "/api/tenant/info", "", "Authorization", "Bearer not-a-token", "X-Tenant-ID", "acme")
	do(t, srv, "GET", "/api/tenant/info", "", "Authorization", bearerOf(t, identity.DefaultTenant, identity.RoleAdmin))
	for tenant, want := range map[[2]string]float64{
		{"acme", "read"}: 3, {"acme", "write"}: 1, {anonymousLabel, "read"}: 1, {platformLabel, "read"}: 1, {server.OverflowLabel, "read"}: 0,
	} {
		if got := count(tenant[0], tenant[1]); got != want {
			t.Errorf("requests of %s %s = %v, want %v", tenant[0], tenant[1], got, want)
		}
	}
	for i := range maxTenantLabels + 5 {
		do(t, srv, "GET", "/api/tenant/info", "", "Authorization", bearerOf(t, "t"+string(rune('a'+i/26))+string(rune('a'+i%26)), "user"))
	}
	// acme was the first; 49 more have their own series, 6 share "other".
	if got := count(server.OverflowLabel, "read"); got != 6 {
		t.Errorf("requests of other tenants = %v, want 6", got)
	}
	metricstest.Golden(t, gw.reg, "../../../deploy/testdata/metrics/gateway.txt")
}
