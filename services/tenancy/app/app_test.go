package app_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/tenancy/app"
)

// backends runs fn against the service on SQLite and, when configured, on
// PostgreSQL as a non-owner role.
func backends(t *testing.T, authMode string, fn func(t *testing.T, c tenancyv1.TenancyServiceClient)) {
	t.Run("sqlite", func(t *testing.T) {
		conn := servicetest.Start(t, app.Spec(), servicetest.Options{AuthMode: authMode})
		fn(t, tenancyv1.NewTenancyServiceClient(conn))
	})
	t.Run("postgres", func(t *testing.T) {
		migrateURL, appURL := storetest.Postgres(t)
		conn := servicetest.Start(t, app.Spec(), servicetest.Options{AuthMode: authMode, DatabaseURL: appURL, MigrateURL: migrateURL})
		fn(t, tenancyv1.NewTenancyServiceClient(conn))
	})
}

func withTenant(ctx context.Context, tenant string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "x-tenant-id", tenant)
}

func TestInfoCountsDecisions(t *testing.T) {
	backends(t, "optional", func(t *testing.T, c tenancyv1.TenancyServiceClient) {
		info, err := c.GetTenantInfo(context.Background(), &tenancyv1.GetTenantInfoRequest{})
		if err != nil {
			t.Fatal(err)
		}
		st := info.GetStats()
		if info.GetTenantId() != "default" || info.GetTenantVerified() || st.GetTotalEvents() != 1 || st.GetTenants()["default"] != 1 {
			t.Fatalf("first info = %v", info)
		}
		acme := as(t, "acme", "user")
		_, err = c.GetTenantInfo(withTenant(acme, "globex"), &tenancyv1.GetTenantInfoRequest{})
		wantErr(t, err, codes.PermissionDenied, "CROSS_TENANT_DENIED")

		info, err = c.GetTenantInfo(acme, &tenancyv1.GetTenantInfoRequest{})
		if err != nil {
			t.Fatal(err)
		}
		st = info.GetStats()
		if !info.GetTenantVerified() || st.GetTotalEvents() != 2 || st.GetDeniedAccess() != 1 || st.GetCrossTenantDenied() != 1 || len(st.GetTenants()) != 1 {
			t.Fatalf("acme info = %v", info)
		}
		// The admin's view spans every tenant; naming one narrows it.
		admin := as(t, "default", "admin")
		info, err = c.GetTenantInfo(admin, &tenancyv1.GetTenantInfoRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if info.GetStats().GetTenants()["acme"] != 2 || info.GetStats().GetTenants()["default"] < 2 {
			t.Fatalf("admin info = %v", info)
		}
		info, err = c.GetTenantInfo(withTenant(admin, "acme"), &tenancyv1.GetTenantInfoRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if info.GetTenantId() != "acme" || len(info.GetStats().GetTenants()) != 1 {
			t.Fatalf("admin reading acme = %v", info)
		}
	})
}

func TestTestAccess(t *testing.T) {
	backends(t, "optional", func(t *testing.T, c tenancyv1.TenancyServiceClient) {
		acme := as(t, "acme", "user")
		for _, tc := range []struct {
			ctx     context.Context
			target  string
			allowed bool
			reason  string
		}{
			{acme, "acme", true, "SAME_TENANT"},
			{acme, "globex", false, "CROSS_TENANT_DENIED"},
			{as(t, "default", "admin"), "globex", true, "ADMIN_READ_ONLY"},
			{context.Background(), "globex", false, "CROSS_TENANT_DENIED"}, // anonymous default is no admin
		} {
			res, err := c.TestAccess(tc.ctx, &tenancyv1.TestAccessRequest{TargetTenantId: tc.target})
			if err != nil {
				t.Fatal(err)
			}
			if res.GetAllowed() != tc.allowed || res.GetReason() != tc.reason || res.GetTargetTenantId() != tc.target {
				t.Fatalf("TestAccess(%s) = %v", tc.target, res)
			}
		}
		_, err := c.TestAccess(acme, &tenancyv1.TestAccessRequest{})
		wantErr(t, err, codes.InvalidArgument, "FIELD_REQUIRED")
		_, err = c.TestAccess(acme, &tenancyv1.TestAccessRequest{TargetTenantId: "NOT VALID"})
		wantErr(t, err, codes.InvalidArgument, "TENANT_ID_INVALID")

		info, err := c.GetTenantInfo(acme, &tenancyv1.GetTenantInfoRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if info.GetStats().GetCrossTenantDenied() != 1 {
			t.Fatalf("denied test-access not counted: %v", info.GetStats())
		}
	})
}

func TestRegistry(t *testing.T) {
	backends(t, "required", func(t *testing.T, c tenancyv1.TenancyServiceClient) {
		admin := as(t, "default", "admin")
		_, err := c.CreateTenant(context.Background(), &tenancyv1.CreateTenantRequest{Tenant: &tenancyv1.Tenant{TenantId: "acme"}})
		wantErr(t, err, codes.Unauthenticated, "TOKEN_MISSING")
		_, err = c.CreateTenant(as(t, "acme", "admin"), &tenancyv1.CreateTenantRequest{Tenant: &tenancyv1.Tenant{TenantId: "acme"}})
		wantErr(t, err, codes.PermissionDenied, "TENANT_NOT_ALLOWED")
		_, err = c.CreateTenant(as(t, "default", "user"), &tenancyv1.CreateTenantRequest{Tenant: &tenancyv1.Tenant{TenantId: "acme"}})
		wantErr(t, err, codes.PermissionDenied, "ROLE_REQUIRED")
		_, err = c.CreateTenant(admin, &tenancyv1.CreateTenantRequest{Tenant: &tenancyv1.Tenant{TenantId: "-bad"}})
		wantErr(t, err, codes.InvalidArgument, "TENANT_ID_INVALID")

		res, err := c.CreateTenant(admin, &tenancyv1.CreateTenantRequest{Tenant: &tenancyv1.Tenant{TenantId: "acme", DisplayName: "Acme"}})
		if err != nil || res.GetExisted() || res.GetTenant().GetDisplayName() != "Acme" {
			t.Fatalf("create = %v, %v", res, err)
		}
		res, err = c.CreateTenant(admin, &tenancyv1.CreateTenantRequest{Tenant: &tenancyv1.Tenant{TenantId: "acme", DisplayName: "Other"}})
		if err != nil || !res.GetExisted() || res.GetTenant().GetDisplayName() != "Acme" {
			t.Fatalf("second create = %v, %v", res, err)
		}
		got, err := c.GetTenant(as(t, "acme", "user"), &tenancyv1.GetTenantRequest{TenantId: "acme"})
		if err != nil || got.GetTenant().GetTenantId() != "acme" {
			t.Fatalf("get own = %v, %v", got, err)
		}
		_, err = c.GetTenant(as(t, "globex", "user"), &tenancyv1.GetTenantRequest{TenantId: "acme"})
		wantErr(t, err, codes.PermissionDenied, "CROSS_TENANT_DENIED")
		_, err = c.GetTenant(admin, &tenancyv1.GetTenantRequest{TenantId: "nosuch"})
		wantErr(t, err, codes.NotFound, "TENANT_NOT_FOUND")
		_, err = c.ListTenants(admin, &tenancyv1.ListTenantsRequest{PageToken: "garbage"})
		wantErr(t, err, codes.InvalidArgument, "PAGE_TOKEN_INVALID")
	})
}

func TestReportDecisionsNeedsServiceRole(t *testing.T) {
	backends(t, "required", func(t *testing.T, c tenancyv1.TenancyServiceClient) {
		batch := &tenancyv1.ReportDecisionsRequest{Decisions: []*tenancyv1.Decision{
			{TenantId: "acme", TargetTenantId: "globex", Outcome: tenancyv1.Outcome_OUTCOME_DENIED, Reason: "CROSS_TENANT_DENIED", Service: "finops", Verified: true},
			{TenantId: "acme", Outcome: tenancyv1.Outcome_OUTCOME_ALLOWED, Service: "finops"},
			// A forged token naming acme: counted in the unverified bucket.
			{TenantId: "acme", Outcome: tenancyv1.Outcome_OUTCOME_DENIED, Reason: "TOKEN_INVALID", Service: "finops"},
		}}
		_, err := c.ReportDecisions(as(t, "acme", "admin"), batch)
		wantErr(t, err, codes.PermissionDenied, "ROLE_REQUIRED")
		_, err = c.ReportDecisions(servicetest.AsService(t, "finops", ""), &tenancyv1.ReportDecisionsRequest{})
		wantErr(t, err, codes.InvalidArgument, "FIELD_REQUIRED")

		svc := servicetest.AsService(t, "finops", "")
		res, err := c.ReportDecisions(svc, batch)
		if err != nil || res.GetRecorded() != 3 {
			t.Fatalf("report = %v, %v", res, err)
		}
		info, err := c.GetTenantInfo(as(t, "acme", "user"), &tenancyv1.GetTenantInfoRequest{})
		if err != nil {
			t.Fatal(err)
		}
		// The refused admin call of acme, two of the reported, and this
		// call's own; not the forged one.
		if st := info.GetStats(); st.GetTotalEvents() != 4 || st.GetDeniedAccess() != 2 || st.GetCrossTenantDenied() != 1 {
			t.Fatalf("stats after report = %v", st)
		}
		all, err := c.GetTenantInfo(as(t, "default", "admin"), &tenancyv1.GetTenantInfoRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if n := all.GetStats().GetTenants()[identity.UnverifiedBucket]; n != 1 {
			t.Fatalf("unverified bucket = %d in %v, want the forged report", n, all.GetStats().GetTenants())
		}
	})
}

// Many concurrent callers of two tenants: every decision is counted exactly
// once and under its own tenant.
func TestConcurrentCallersCountedExactly(t *testing.T) {
	backends(t, "optional", func(t *testing.T, c tenancyv1.TenancyServiceClient) {
		const perTenant = 100
		var wg sync.WaitGroup
		errs := make(chan error, 2*perTenant)
		for _, tenant := range []string{"acme", "globex"} {
			ctx := as(t, tenant, "user")
			for i := 0; i < perTenant; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := c.GetTenantInfo(ctx, &tenancyv1.GetTenantInfoRequest{}, grpc.WaitForReady(true)); err != nil {
						errs <- fmt.Errorf("%s: %w", tenant, err)
					}
				}()
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for _, tenant := range []string{"acme", "globex"} {
			info, err := c.GetTenantInfo(as(t, tenant, "user"), &tenancyv1.GetTenantInfoRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if st := info.GetStats(); st.GetTotalEvents() != perTenant+1 || len(st.GetTenants()) != 1 || st.GetTenants()[tenant] != perTenant+1 {
				t.Fatalf("%s stats = %v", tenant, st)
			}
		}
	})
}

var (
	as      = servicetest.As
	wantErr = servicetest.WantErr
)
