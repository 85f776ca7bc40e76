package app_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/decisions"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/platform/svcauth"
	"github.com/echopilot/echopilot/services/tenancy/app"
)

// What other services use to report their decisions reaches tenancy's stats,
// and only with a service token.
func TestRemoteSinkReportsToTenancy(t *testing.T) {
	conn := servicetest.Start(t, app.Spec(), servicetest.Options{AuthMode: "required", TCP: true})
	client := tenancyv1.NewTenancyServiceClient(conn)
	batch := []identity.Decision{
		{CallerTenant: "acme", TargetTenant: "globex", Reason: "CROSS_TENANT_DENIED", Time: time.Now(), Verified: true},
		{CallerTenant: "acme", Allowed: true, Reason: "SAME_TENANT", Time: time.Now(), Verified: true},
		{CallerTenant: "globex", Allowed: true, Reason: "SAME_TENANT", Time: time.Now(), Verified: true},
	}

	report := func(src svcauth.TokenSource) error {
		conn, err := grpc.NewClient(conn.Target(), grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithPerRPCCredentials(svcauth.Credentials(src)))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return decisions.RemoteSink(tenancyv1.NewTenancyServiceClient(conn), "finops")(context.Background(), batch)
	}
	adminToken := svcauth.MintedClaims([]byte(servicetest.Secret), identity.Claims{Subject: "mallory", TenantID: "default", Roles: []string{"admin"}})
	if err := report(adminToken); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("report with a non-service token = %v", err)
	}
	// Role "service" from a tenant's identity provider is no service identity.
	tenantService := svcauth.MintedClaims([]byte(servicetest.Secret), identity.Claims{Subject: "service:finops", TenantID: "acme", Roles: []string{"service"}})
	if err := report(tenantService); apierr.Reason(err) != identity.ReasonServiceIdentityInvalid {
		t.Fatalf("report with tenant acme's service role = %v, want %s", err, identity.ReasonServiceIdentityInvalid)
	}
	if err := report(svcauth.Minted([]byte(servicetest.Secret), "finops")); err != nil {
		t.Fatal(err)
	}
	info, err := client.GetTenantInfo(as(t, "acme", "user"), &tenancyv1.GetTenantInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// Two reported for acme, acme's refused service-role token (a verified
	// acme principal) and this call.
	if st := info.GetStats(); st.GetTotalEvents() != 4 || st.GetCrossTenantDenied() != 1 || st.GetDeniedAccess() != 2 {
		t.Fatalf("acme stats = %v", st)
	}
}
