package app_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/tenancy/app"

	queueapp "github.com/echopilot/echopilot/services/queue/app"
)

// withQueue runs fn against tenancy linked to a real queue (auth required
// on both) and a real audit service, on each backend. The lifecycle job
// types are paused on the queue, so the jobs stay queued for the test to
// read.
func withQueue(t *testing.T, fn func(t *testing.T, c tenancyv1.TenancyServiceClient, q queuev1.QueueServiceClient, audit auditv1.AuditServiceClient)) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			qopt := servicetest.Options{AuthMode: "required", TCP: true}
			topt := servicetest.Options{AuthMode: "required"}
			if backend == "postgres" {
				qopt.MigrateURL, qopt.DatabaseURL = storetest.Postgres(t)
				topt.MigrateURL, topt.DatabaseURL = storetest.Postgres(t)
			}
			qconn := servicetest.Start(t, queueapp.Spec(), qopt)
			q := queuev1.NewQueueServiceClient(qconn)
			for _, typ := range []string{"tenant.export", "tenant.erase"} {
				if _, err := q.PauseJobType(as(t, "default", "admin"), &queuev1.PauseJobTypeRequest{JobType: typ}); err != nil {
					t.Fatal(err)
				}
			}
			auditConn := startAudit(t, backend)
			topt.Args = []string{"--queue-addr=" + qconn.Target(), "--audit-addr=" + auditConn.Target()}
			conn := servicetest.Start(t, app.Spec(), topt)
			fn(t, tenancyv1.NewTenancyServiceClient(conn), q, auditv1.NewAuditServiceClient(auditConn))
		})
	}
}

// lifecycleJobs lists the platform queue's jobs of typ.
func lifecycleJobs(t *testing.T, q queuev1.QueueServiceClient, typ string) []*queuev1.Job {
	t.Helper()
	res, err := q.ListJobs(as(t, "default", "admin"), &queuev1.ListJobsRequest{Type: typ})
	if err != nil {
		t.Fatal(err)
	}
	return res.GetJobs()
}

// Exports: tenant admins export their own tenant, platform admins any;
// nobody else. An export is a queued job of tenant default whose payload
// names only the export.
func TestExportRules(t *testing.T) {
	withQueue(t, func(t *testing.T, c tenancyv1.TenancyServiceClient, q queuev1.QueueServiceClient, _ auditv1.AuditServiceClient) {
		admin := as(t, "default", "admin")
		for _, id := range []string{"acme", "globex"} {
			if _, err := c.CreateTenant(admin, &tenancyv1.CreateTenantRequest{Tenant: &tenancyv1.Tenant{TenantId: id}}); err != nil {
				t.Fatal(err)
			}
		}
		acmeAdmin := as(t, "acme", "admin")

		// Attacks.
		_, err := c.CreateExport(acmeAdmin, &tenancyv1.CreateExportRequest{TenantId: "globex"})
		wantErr(t, err, codes.PermissionDenied, identity.ReasonCrossTenantDenied)
		_, err = c.CreateExport(as(t, "acme", "user"), &tenancyv1.CreateExportRequest{TenantId: "acme"})
		wantErr(t, err, codes.PermissionDenied, identity.ReasonRoleRequired)
		_, err = c.CreateExport(servicetest.AsService(t, "finops", "acme"), &tenancyv1.CreateExportRequest{TenantId: "acme"})
		wantErr(t, err, codes.PermissionDenied, identity.ReasonServiceNotAllowed)
		_, err = c.CreateExport(as(t, "nosuch", "admin"), &tenancyv1.CreateExportRequest{TenantId: "nosuch"})
		wantErr(t, err, codes.NotFound, "TENANT_NOT_FOUND")

		res, err := c.CreateExport(acmeAdmin, &tenancyv1.CreateExportRequest{TenantId: "acme"})
		e := res.GetExport()
		if err != nil || e.GetState() != tenancyv1.ExportState_EXPORT_STATE_QUEUED || e.GetTenantId() != "acme" ||
			e.GetRequestedBy() != "u@acme" || e.GetCreateTime() == nil || e.GetFinishTime() != nil {
			t.Fatalf("create = %v, %v", res, err)
		}
		// A platform admin exports any tenant.
		other, err := c.CreateExport(admin, &tenancyv1.CreateExportRequest{TenantId: "globex"})
		if err != nil || other.GetExport().GetTenantId() != "globex" {
			t.Fatalf("admin export = %v, %v", other, err)
		}
		jobs := lifecycleJobs(t, q, "tenant.export")
		if len(jobs) != 2 {
			t.Fatalf("%d export jobs, want 2", len(jobs))
		}
		for _, j := range jobs {
			fields := j.GetPayload().GetFields()
			if j.GetTenantId() != "default" || len(fields) != 1 || (fields["export_id"].GetStringValue() != e.GetExportId() &&
				fields["export_id"].GetStringValue() != other.GetExport().GetExportId()) {
				t.Fatalf("job = %v", j)
			}
			if strings.Contains(j.GetPayload().String(), "acme") || strings.Contains(j.GetPayload().String(), "globex") {
				t.Fatalf("job payload names the tenant: %v", j.GetPayload())
			}
		}

		got, err := c.GetExport(acmeAdmin, &tenancyv1.GetExportRequest{TenantId: "acme", ExportId: e.GetExportId()})
		if err != nil || got.GetExport().GetExportId() != e.GetExportId() {
			t.Fatalf("get = %v, %v", got, err)
		}
		_, err = c.GetExport(acmeAdmin, &tenancyv1.GetExportRequest{TenantId: "acme", ExportId: other.GetExport().GetExportId()})
		wantErr(t, err, codes.NotFound, "EXPORT_NOT_FOUND")
		_, err = c.GetExport(acmeAdmin, &tenancyv1.GetExportRequest{TenantId: "acme", ExportId: "nope"})
		wantErr(t, err, codes.InvalidArgument, "EXPORT_ID_INVALID")
		_, err = c.GetExport(as(t, "globex", "admin"), &tenancyv1.GetExportRequest{TenantId: "acme", ExportId: e.GetExportId()})
		wantErr(t, err, codes.PermissionDenied, identity.ReasonCrossTenantDenied)
		list, err := c.ListExports(admin, &tenancyv1.ListExportsRequest{TenantId: "acme"})
		if err != nil || len(list.GetExports()) != 1 || list.GetExports()[0].GetExportId() != e.GetExportId() {
			t.Fatalf("list = %v, %v", list, err)
		}

		// Not downloadable while queued.
		stream, err := c.DownloadExport(acmeAdmin, &tenancyv1.DownloadExportRequest{TenantId: "acme", ExportId: e.GetExportId()})
		if err == nil {
			_, err = stream.Recv()
		}
		wantErr(t, err, codes.FailedPrecondition, "EXPORT_NOT_READY")

		// A suspended tenant still exports (a read).
		if _, err := c.SuspendTenant(admin, &tenancyv1.SuspendTenantRequest{TargetTenantId: "acme", Reason: "unpaid"}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.CreateExport(acmeAdmin, &tenancyv1.CreateExportRequest{TenantId: "acme"}); err != nil {
			t.Fatalf("export while suspended: %v", err)
		}
	})
}

// Offboarding: platform admins only, with a reason, never the platform's
// own tenant, after a succeeded export unless skipped; it creates the
// erasure and its job, and again starts the job when called again.
func TestOffboardRules(t *testing.T) {
	withQueue(t, func(t *testing.T, c tenancyv1.TenancyServiceClient, q queuev1.QueueServiceClient, audit auditv1.AuditServiceClient) {
		admin := as(t, "default", "admin")
		if _, err := c.CreateTenant(admin, &tenancyv1.CreateTenantRequest{Tenant: &tenancyv1.Tenant{TenantId: "acme"}}); err != nil {
			t.Fatal(err)
		}
		off := &tenancyv1.OffboardTenantRequest{TargetTenantId: "acme", Reason: "contract ended"}
		_, err := c.OffboardTenant(as(t, "acme", "admin"), off)
		wantErr(t, err, codes.PermissionDenied, identity.ReasonTenantNotAllowed)
		_, err = c.OffboardTenant(as(t, "default", "user"), off)
		wantErr(t, err, codes.PermissionDenied, identity.ReasonRoleRequired)
		_, err = c.GetErasure(as(t, "acme", "admin"), &tenancyv1.GetErasureRequest{TargetTenantId: "acme"})
		wantErr(t, err, codes.PermissionDenied, identity.ReasonTenantNotAllowed)
		_, err = c.GetErasure(admin, &tenancyv1.GetErasureRequest{TargetTenantId: "acme"})
		wantErr(t, err, codes.NotFound, "ERASURE_NOT_FOUND")

		_, err = c.OffboardTenant(admin, &tenancyv1.OffboardTenantRequest{TargetTenantId: "acme", Reason: strings.Repeat("x", 501)})
		wantErr(t, err, codes.InvalidArgument, "TENANT_STATE_REASON_INVALID")
		_, err = c.OffboardTenant(admin, &tenancyv1.OffboardTenantRequest{TargetTenantId: "default", Reason: "x", SkipExport: true})
		wantErr(t, err, codes.FailedPrecondition, "TENANT_PROTECTED")
		_, err = c.OffboardTenant(admin, &tenancyv1.OffboardTenantRequest{TargetTenantId: "nosuch", Reason: "x", SkipExport: true})
		wantErr(t, err, codes.NotFound, "TENANT_NOT_FOUND")
		_, err = c.OffboardTenant(admin, off)
		wantErr(t, err, codes.FailedPrecondition, "EXPORT_REQUIRED")
		// An export that has not succeeded is not enough.
		ex, err := c.CreateExport(admin, &tenancyv1.CreateExportRequest{TenantId: "acme"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.OffboardTenant(admin, &tenancyv1.OffboardTenantRequest{TargetTenantId: "acme", Reason: "x", ExportId: ex.GetExport().GetExportId()})
		wantErr(t, err, codes.FailedPrecondition, "EXPORT_REQUIRED")
		if n := len(lifecycleJobs(t, q, "tenant.erase")); n != 0 {
			t.Fatalf("%d erase jobs after refusals", n)
		}

		off.SkipExport = true
		res, err := c.OffboardTenant(admin, off)
		e := res.GetErasure()
		if err != nil || res.GetTenant().GetState() != tenancyv1.TenantState_TENANT_STATE_OFFBOARDING ||
			e.GetState() != tenancyv1.ErasureState_ERASURE_STATE_RUNNING || !e.GetExportSkipped() || e.GetReason() != "contract ended" ||
			e.GetPseudonym() != "erased-"+strings.ToLower(e.GetErasureId()) || e.GetRequestedBy() != "u@default" {
			t.Fatalf("offboard = %v, %v", res, err)
		}
		// Its writes are refused now (tenancy's own view is immediate).
		_, err = c.CreateAPIKey(as(t, "acme", "admin"), &tenancyv1.CreateAPIKeyRequest{TenantId: "acme", Name: "ci"})
		wantErr(t, err, codes.FailedPrecondition, identity.ReasonTenantNotActive)
		// Suspending or resuming an offboarding tenant is refused.
		_, err = c.ResumeTenant(admin, &tenancyv1.ResumeTenantRequest{TargetTenantId: "acme"})
		wantErr(t, err, codes.FailedPrecondition, "TENANT_STATE_TRANSITION_INVALID")

		again, err := c.OffboardTenant(admin, off)
		if err != nil || again.GetErasure().GetErasureId() != e.GetErasureId() {
			t.Fatalf("offboard again = %v, %v", again, err)
		}
		jobs := lifecycleJobs(t, q, "tenant.erase")
		if len(jobs) != 2 {
			t.Fatalf("%d erase jobs, want 2 (one per call)", len(jobs))
		}
		for _, j := range jobs {
			if fields := j.GetPayload().GetFields(); j.GetTenantId() != "default" || len(fields) != 1 || fields["erasure_id"].GetStringValue() != e.GetErasureId() {
				t.Fatalf("job = %v", j)
			}
		}
		got, err := c.GetErasure(admin, &tenancyv1.GetErasureRequest{TargetTenantId: "acme"})
		if err != nil || got.GetErasure().GetErasureId() != e.GetErasureId() {
			t.Fatalf("get erasure = %v, %v", got, err)
		}

		// The tenant's log and the platform's record it, once.
		for _, tenant := range []string{"acme", "default"} {
			var found []*auditv1.Entry
			for deadline := time.Now().Add(10 * time.Second); len(found) == 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				for _, en := range chain(t, audit, tenant).GetEntries() {
					if en.GetEventType() == app.EventTypeTenantOffboarding {
						found = append(found, en)
					}
				}
			}
			if len(found) != 1 {
				t.Fatalf("%s log has %d offboarding entries", tenant, len(found))
			}
			d := found[0].GetDetails().AsMap()
			if found[0].GetUser() != "u@default" || found[0].GetResource() != "tenant/acme" || d["reason"] != "contract ended" || d["to"] != "offboarding" {
				t.Fatalf("%s entry %v", tenant, found[0])
			}
		}
	})
}

// Without a queue, exports and offboarding are unavailable, not broken.
func TestLifecycleNeedsQueue(t *testing.T) {
	conn := servicetest.Start(t, app.Spec(), servicetest.Options{AuthMode: "required"})
	c := tenancyv1.NewTenancyServiceClient(conn)
	admin := as(t, "default", "admin")
	if _, err := c.CreateTenant(admin, &tenancyv1.CreateTenantRequest{Tenant: &tenancyv1.Tenant{TenantId: "acme"}}); err != nil {
		t.Fatal(err)
	}
	_, err := c.CreateExport(admin, &tenancyv1.CreateExportRequest{TenantId: "acme"})
	wantErr(t, err, codes.Unavailable, "LIFECYCLE_UNAVAILABLE")
	_, err = c.OffboardTenant(admin, &tenancyv1.OffboardTenantRequest{TargetTenantId: "acme", Reason: "x", SkipExport: true})
	wantErr(t, err, codes.Unavailable, "LIFECYCLE_UNAVAILABLE")
}
