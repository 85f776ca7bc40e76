package app_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	"github.com/echopilot/echopilot/platform/decisions"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/services/tenancy/app"
)

// What other services use to report their decisions reaches tenancy's stats,
// and only with a service token.
func TestRemoteSinkReportsToTenancy(t *testing.T) {
	conn := servicetest.Start(t, app.Spec(), servicetest.Options{AuthMode: "required"})
	client := tenancyv1.NewTenancyServiceClient(conn)
	batch := []identity.Decision{
		{CallerTenant: "acme", TargetTenant: "globex", Reason: "CROSS_TENANT_DENIED", Time: time.Now(), Verified: true},
		{CallerTenant: "acme", Allowed: true, Reason: "SAME_TENANT", Time: time.Now(), Verified: true},
		{CallerTenant: "globex", Allowed: true, Reason: "SAME_TENANT", Time: time.Now(), Verified: true},
	}

	userToken := func() (string, error) {
		return identity.MintHS256([]byte(servicetest.Secret), identity.Claims{Subject: "mallory", TenantID: "default", Roles: []string{"admin"}}, time.Minute)
	}
	err := decisions.RemoteSink(client, "finops", userToken)(context.Background(), batch)
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("report with a non-service token = %v", err)
	}

	sink := decisions.RemoteSink(client, "finops", decisions.ServiceToken([]byte(servicetest.Secret), "finops"))
	if err := sink(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	info, err := client.GetTenantInfo(as(t, "acme", "user"), &tenancyv1.GetTenantInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// Two reported for acme plus this call.
	if st := info.GetStats(); st.GetTotalEvents() != 3 || st.GetCrossTenantDenied() != 1 || st.GetDeniedAccess() != 1 {
		t.Fatalf("acme stats = %v", st)
	}
}
