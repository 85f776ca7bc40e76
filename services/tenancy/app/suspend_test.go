package app_test

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/services/tenancy/app"
)

// A platform admin suspends a tenant: only admins may, an unknown tenant is
// NOT_FOUND, the tenant's writes to tenancy are refused within
// identity.TenantStateCacheTTL while its reads work, resuming restores
// them, and both transitions reach the tenant's audit log and the
// platform's.
func TestSuspendTenant(t *testing.T) {
	withAudit(t, func(t *testing.T, c tenancyv1.TenancyServiceClient, audit auditv1.AuditServiceClient) {
		admin := as(t, "default", "admin")
		acmeAdmin := as(t, "acme", "admin")
		for _, id := range []string{"acme", "globex"} {
			if _, err := c.CreateTenant(admin, &tenancyv1.CreateTenantRequest{Tenant: &tenancyv1.Tenant{TenantId: id}}); err != nil {
				t.Fatal(err)
			}
		}
		createKey(t, c, acmeAdmin, "acme", &tenancyv1.CreateAPIKeyRequest{})

		// Attacks: a tenant admin suspending itself or another tenant, a
		// platform user without the admin role, a service.
		suspend := &tenancyv1.SuspendTenantRequest{TargetTenantId: "acme", Reason: "invoice 42 unpaid"}
		_, err := c.SuspendTenant(acmeAdmin, suspend)
		wantErr(t, err, codes.PermissionDenied, identity.ReasonTenantNotAllowed)
		_, err = c.SuspendTenant(as(t, "globex", "admin"), suspend)
		wantErr(t, err, codes.PermissionDenied, identity.ReasonTenantNotAllowed)
		_, err = c.SuspendTenant(as(t, "default", "user"), suspend)
		wantErr(t, err, codes.PermissionDenied, identity.ReasonRoleRequired)
		_, err = c.SuspendTenant(servicetest.AsService(t, "finops", "acme"), suspend)
		wantErr(t, err, codes.PermissionDenied, identity.ReasonServiceNotAllowed)

		_, err = c.SuspendTenant(admin, &tenancyv1.SuspendTenantRequest{TargetTenantId: "nosuch", Reason: "x"})
		wantErr(t, err, codes.NotFound, "TENANT_NOT_FOUND")
		_, err = c.SuspendTenant(admin, &tenancyv1.SuspendTenantRequest{TargetTenantId: "acme"})
		wantErr(t, err, codes.InvalidArgument, "FIELD_REQUIRED")
		_, err = c.SuspendTenant(admin, &tenancyv1.SuspendTenantRequest{TargetTenantId: "default", Reason: "x"})
		wantErr(t, err, codes.FailedPrecondition, "TENANT_PROTECTED")
		_, err = c.ResumeTenant(admin, &tenancyv1.ResumeTenantRequest{TargetTenantId: "nosuch"})
		wantErr(t, err, codes.NotFound, "TENANT_NOT_FOUND")

		res, err := c.SuspendTenant(admin, suspend)
		if tn := res.GetTenant(); err != nil || !res.GetChanged() || tn.GetState() != tenancyv1.TenantState_TENANT_STATE_SUSPENDED ||
			tn.GetStateReason() != "invoice 42 unpaid" || tn.GetStateChangedBy() != "u@default" || tn.GetStateChangeTime() == nil {
			t.Fatalf("suspend = %v, %v", res, err)
		}
		if again, err := c.SuspendTenant(admin, suspend); err != nil || again.GetChanged() {
			t.Fatalf("second suspend = %v, %v; want unchanged", again, err)
		}
		start := time.Now()
		eventually(t, identity.TenantStateCacheTTL+time.Second, func() error {
			_, err := c.CreateAPIKey(acmeAdmin, &tenancyv1.CreateAPIKeyRequest{TenantId: "acme", Name: "ci"})
			if err == nil {
				return errNotYet
			}
			wantErr(t, err, codes.FailedPrecondition, identity.ReasonTenantSuspended)
			return nil
		})
		t.Logf("suspension took effect after %v", time.Since(start))
		// Reads work; another tenant is untouched; the platform admin
		// still writes (the registry).
		if _, err := c.ListAPIKeys(acmeAdmin, &tenancyv1.ListAPIKeysRequest{TenantId: "acme"}); err != nil {
			t.Fatalf("read while suspended: %v", err)
		}
		got, err := c.GetTenant(as(t, "acme", "user"), &tenancyv1.GetTenantRequest{TenantId: "acme"})
		if err != nil || got.GetTenant().GetState() != tenancyv1.TenantState_TENANT_STATE_SUSPENDED {
			t.Fatalf("get while suspended = %v, %v", got, err)
		}
		createKey(t, c, as(t, "globex", "admin"), "globex", &tenancyv1.CreateAPIKeyRequest{})
		if _, err := c.UpdateTenant(admin, &tenancyv1.UpdateTenantRequest{Tenant: &tenancyv1.Tenant{TenantId: "acme", DisplayName: "Acme"}}); err != nil {
			t.Fatalf("platform admin updating a suspended tenant: %v", err)
		}

		res2, err := c.ResumeTenant(admin, &tenancyv1.ResumeTenantRequest{TargetTenantId: "acme", Reason: "paid"})
		if err != nil || !res2.GetChanged() || res2.GetTenant().GetState() != tenancyv1.TenantState_TENANT_STATE_ACTIVE {
			t.Fatalf("resume = %v, %v", res2, err)
		}
		eventually(t, identity.TenantStateCacheTTL+time.Second, func() error {
			_, err := c.CreateAPIKey(acmeAdmin, &tenancyv1.CreateAPIKeyRequest{TenantId: "acme", Name: "ci"})
			return err
		})

		// The tenant's log and the platform's each hold both transitions.
		for _, tenant := range []string{"acme", "default"} {
			var types []string
			deadline := time.Now().Add(10 * time.Second)
			for {
				types = types[:0]
				for _, e := range chain(t, audit, tenant).GetEntries() {
					if e.GetEventType() == app.EventTypeTenantSuspended || e.GetEventType() == app.EventTypeTenantResumed {
						types = append(types, e.GetEventType())
						d := e.GetDetails().AsMap()
						if e.GetUser() != "u@default" || e.GetResource() != "tenant/acme" || d["tenant_id"] != "acme" {
							t.Fatalf("%s entry %v", tenant, e)
						}
					}
				}
				if len(types) >= 2 || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if len(types) != 2 || types[0] != app.EventTypeTenantSuspended || types[1] != app.EventTypeTenantResumed {
				t.Fatalf("%s log has state entries %v, want suspended then resumed", tenant, types)
			}
		}
	})
}
