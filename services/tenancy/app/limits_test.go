package app_test

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
)

// A platform admin sets a tenant's rate limits when creating it and changes
// them later; nobody else can, and GetTenant reports them.
func TestTenantRateLimits(t *testing.T) {
	backends(t, "required", func(t *testing.T, c tenancyv1.TenancyServiceClient) {
		admin := as(t, "default", "admin")
		res, err := c.CreateTenant(admin, &tenancyv1.CreateTenantRequest{Tenant: &tenancyv1.Tenant{
			TenantId: "acme", RateLimitReadPerSecond: 10, RateLimitWriteBurst: 4,
		}})
		if err != nil || res.GetTenant().GetRateLimitReadPerSecond() != 10 || res.GetTenant().GetRateLimitWriteBurst() != 4 {
			t.Fatalf("create = %v, %v", res, err)
		}
		_, err = c.CreateTenant(admin, &tenancyv1.CreateTenantRequest{Tenant: &tenancyv1.Tenant{TenantId: "globex", RateLimitReadBurst: -1}})
		wantErr(t, err, codes.InvalidArgument, "RATE_LIMIT_INVALID")

		update := func(ctx context.Context, tn *tenancyv1.Tenant, paths ...string) (*tenancyv1.UpdateTenantResponse, error) {
			req := &tenancyv1.UpdateTenantRequest{Tenant: tn}
			if paths != nil {
				req.UpdateMask = &fieldmaskpb.FieldMask{Paths: paths}
			}
			return c.UpdateTenant(ctx, req)
		}
		// The mask names what changes: the read limit goes back to the
		// default, the write limit is set, the rest stays.
		up, err := update(admin, &tenancyv1.Tenant{TenantId: "acme", RateLimitWritePerSecond: 3, DisplayName: "ignored"},
			"rate_limit_read_per_second", "rate_limit_write_per_second")
		if err != nil {
			t.Fatal(err)
		}
		got := up.GetTenant()
		if got.GetRateLimitReadPerSecond() != 0 || got.GetRateLimitWritePerSecond() != 3 || got.GetRateLimitWriteBurst() != 4 || got.GetDisplayName() != "acme" {
			t.Fatalf("after masked update: %v", got)
		}
		// No mask: every non-zero field.
		if up, err = update(admin, &tenancyv1.Tenant{TenantId: "acme", DisplayName: "Acme", RateLimitReadBurst: 50}); err != nil {
			t.Fatal(err)
		}
		if g := up.GetTenant(); g.GetDisplayName() != "Acme" || g.GetRateLimitReadBurst() != 50 || g.GetRateLimitWritePerSecond() != 3 {
			t.Fatalf("after unmasked update: %v", g)
		}
		read, err := c.GetTenant(as(t, "acme", "user"), &tenancyv1.GetTenantRequest{TenantId: "acme"})
		if err != nil || read.GetTenant().GetRateLimitReadBurst() != 50 || read.GetTenant().GetRateLimitWritePerSecond() != 3 {
			t.Fatalf("get = %v, %v", read, err)
		}

		_, err = update(as(t, "acme", "admin"), &tenancyv1.Tenant{TenantId: "acme", RateLimitReadPerSecond: 1000})
		wantErr(t, err, codes.PermissionDenied, "TENANT_NOT_ALLOWED")
		_, err = update(as(t, "default", "user"), &tenancyv1.Tenant{TenantId: "acme", RateLimitReadPerSecond: 1000})
		wantErr(t, err, codes.PermissionDenied, "ROLE_REQUIRED")
		_, err = update(admin, &tenancyv1.Tenant{TenantId: "acme"}, "create_time")
		wantErr(t, err, codes.InvalidArgument, "UPDATE_MASK_INVALID")
		_, err = update(admin, &tenancyv1.Tenant{TenantId: "acme", RateLimitWritePerSecond: 1_000_001})
		wantErr(t, err, codes.InvalidArgument, "RATE_LIMIT_INVALID")
		_, err = update(admin, &tenancyv1.Tenant{TenantId: "nosuch", RateLimitReadPerSecond: 5})
		wantErr(t, err, codes.NotFound, "TENANT_NOT_FOUND")
	})
}
