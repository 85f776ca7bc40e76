package gateway

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/echopilot/echopilot/gateway/internal/backendtest"
	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	finopsv1 "github.com/echopilot/echopilot/gen/go/echopilot/finops/v1"
	growthv1 "github.com/echopilot/echopilot/gen/go/echopilot/growth/v1"
	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	tenantdatav1 "github.com/echopilot/echopilot/gen/go/echopilot/tenantdata/v1"
	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/platform/tenantdata/tenantdatatest"
)

// keptAfterErasure are the kinds of each service that still hold an erased
// tenant's id, by rule (docs/operations.md, "Erasure: what is deleted,
// kept or pseudonymised").
var keptAfterErasure = map[string][]string{
	"tenancy": {"tenants", "erasures"},
	"audit":   {"audit_checkpoints", "audit_entries", "audit_heads", "audit_nodes", "audit_retention", "audit_verified"},
}

// Every service exports a tenant's rows created through its real API and
// erases them: afterwards no table of any service (every text column, from
// the catalog) holds the tenant's id except the documented kept kinds,
// another tenant is untouched, and the audit log is retained from the
// tombstone and verifies. Only tenancy's service identity may call it.
func TestTenantDataAcrossServices(t *testing.T) {
	for _, db := range storetest.Backends() {
		t.Run(db.Name, func(t *testing.T) {
			rcv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
			t.Cleanup(rcv.Close)
			conns, urls := backendtest.StartWithDatabases(t, db, map[string][]string{
				"audit":  {"--outbound-allow=127.0.0.1/32", "--webhook-retry-base=100ms", "--webhook-retry-cap=1s"},
				"finops": {"--stripe-webhook-secret=" + stripeSecret},
			}, false)
			for _, tenant := range []string{"acme", "globex"} {
				seedTenant(t, conns, tenant, rcv.URL)
			}
			// A server stream's tenant is resolved from metadata, before its
			// request arrives: the caller names it there (x-tenant-id).
			tenancySvc := servicetest.AsService(t, "tenancy", "acme")
			for _, name := range slices.Sorted(maps.Keys(conns)) {
				c := tenantdatav1.NewTenantDataServiceClient(conns[name])
				t.Run(name, func(t *testing.T) {
					lines := tenantdatatest.Lines(t, tenantdatatest.Export(t, tenancySvc, c, "acme", "", ""))
					checkExport(t, name, lines)
					dbh := storetest.Open(t, urls[name])
					if len(tenantdatatest.Residue(t, dbh, "acme")) == 0 {
						t.Fatalf("%s holds nothing of acme before the erasure", name)
					}
					before := tenantdatatest.Residue(t, dbh, "globex")
					req := &tenantdatav1.EraseTenantDataRequest{TenantId: "acme", BatchSize: 2, Pseudonym: "erased-acme1", ErasureId: "erasure-1"}
					if name == "tenancy" {
						recordErasure(t, tenancySvc, c, dbh, req)
					}
					eraseUntilDone(t, tenancySvc, c, req)
					// A re-run is done at once and changes nothing (but for
					// tenancy's decisions: the access log of the calls
					// before, see otherDecisions).
					again, err := c.EraseTenantData(tenancySvc, req)
					if err != nil {
						t.Fatalf("re-run: %v", err)
					}
					for _, k := range again.GetKinds() {
						if (k.GetChanged() != 0 || k.GetRemaining() != 0) && (name != "tenancy" || k.GetKind() != "decisions") {
							t.Errorf("re-run changed %v", k)
						}
					}
					if name == "finops" {
						if res := tenantdatatest.Residue(t, dbh, "erased-acme1"); res["payments"] != 1 {
							t.Errorf("acme's payment is not kept under the pseudonym: %v", res)
						}
					}
					res := tenantdatatest.Residue(t, dbh, "acme")
					for _, kind := range keptAfterErasure[name] {
						delete(res, kind)
					}
					if name == "tenancy" {
						if n := otherDecisions(t, dbh, "acme"); n != 0 {
							t.Errorf("tenancy holds %d decisions about acme besides the erasure's own", n)
						}
						delete(res, "decisions")
					}
					if len(res) != 0 {
						t.Errorf("%s still holds acme in %v (kept by rule: %v)", name, res, keptAfterErasure[name])
					}
					after := tenantdatatest.Residue(t, dbh, "globex")
					// The queue folds its counter deltas into job_counts in the
					// background: those two tables change on their own.
					for _, m := range []map[string]int{before, after} {
						delete(m, "job_counts")
						delete(m, "job_count_deltas")
					}
					if name == "tenancy" {
						// Erasing acme must remove none of globex's access log.
						for _, kind := range accessLog {
							if after[kind] < before[kind] {
								t.Errorf("tenancy: globex's %s went from %d to %d when acme was erased", kind, before[kind], after[kind])
							}
							delete(before, kind)
							delete(after, kind)
						}
					}
					if !maps.Equal(before, after) {
						t.Errorf("%s: globex's rows %v before, %v after erasing acme", name, before, after)
					}
				})
			}
			checkAuditAfterErasure(t, auditv1.NewAuditServiceClient(conns["audit"]))
			// Refusals are decisions and audit events about the tenant:
			// they come after the catalog checks.
			for _, name := range slices.Sorted(maps.Keys(conns)) {
				t.Run(name+" refuses", func(t *testing.T) { checkRefused(t, tenantdatav1.NewTenantDataServiceClient(conns[name])) })
			}
		})
	}
}

// A suspended (or offboarding) tenant's webhooks are paused, yet its audit
// erasure finishes: the tombstone's delivery waits while the endpoint
// lives and is parked once the erasure has deleted it, so the outbox
// drains. Nothing is sent to the suspended tenant's receiver.
func TestTenantDataErasesSuspendedTenant(t *testing.T) {
	for _, db := range storetest.Backends() {
		t.Run(db.Name, func(t *testing.T) {
			var hooks atomic.Int32
			rcv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hooks.Add(1) }))
			t.Cleanup(rcv.Close)
			conns, urls := backendtest.StartWithDatabases(t, db, map[string][]string{"audit": {"--outbound-allow=127.0.0.1/32"}}, true)
			admin, acme := bearerCtx(t, "default", "admin"), bearerCtx(t, "acme", "user")
			tenancy := tenancyv1.NewTenancyServiceClient(conns["tenancy"])
			audit := auditv1.NewAuditServiceClient(conns["audit"])
			if _, err := tenancy.CreateTenant(admin, &tenancyv1.CreateTenantRequest{Tenant: &tenancyv1.Tenant{TenantId: "acme"}}); err != nil {
				t.Fatal(err)
			}
			if _, err := audit.CreateEndpoint(acme, &auditv1.CreateEndpointRequest{Url: rcv.URL + "/hook"}); err != nil {
				t.Fatal(err)
			}
			appendLogin := func() error {
				_, err := audit.AppendEntries(acme, &auditv1.AppendEntriesRequest{Entries: []*auditv1.NewEntry{{
					EventType: "login", User: "u1", Action: "login", Resource: "app", Details: &structpb.Struct{}}}})
				return err
			}
			if err := appendLogin(); err != nil {
				t.Fatal(err)
			}
			if _, err := tenancy.SuspendTenant(admin, &tenancyv1.SuspendTenantRequest{TargetTenantId: "acme", Reason: "offboarding"}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "audit seeing acme suspended", time.Now(), func() error {
				if err := appendLogin(); apierr.Reason(err) != identity.ReasonTenantSuspended {
					return fmt.Errorf("append answered %v", err)
				}
				return nil
			})
			c := tenantdatav1.NewTenantDataServiceClient(conns["audit"])
			eraseUntilDone(t, servicetest.AsService(t, "tenancy", "acme"), c,
				&tenantdatav1.EraseTenantDataRequest{TenantId: "acme", Pseudonym: "erased-acme1", ErasureId: "erasure-1"})
			res := tenantdatatest.Residue(t, storetest.Open(t, urls["audit"]), "acme")
			for _, kind := range keptAfterErasure["audit"] {
				delete(res, kind)
			}
			if len(res) != 0 {
				t.Errorf("audit still holds acme in %v", res)
			}
			if n := hooks.Load(); n != 0 {
				t.Errorf("%d webhooks sent to the suspended tenant's receiver", n)
			}
		})
	}
}

// otherDecisions counts tenancy's access decisions about tenant other than
// those of the erasure's own calls: those are recorded after each call
// (in batches), so the last ones outlive the erasure until the decision
// retention deletes them.
func otherDecisions(t *testing.T, db *store.DB, tenant string) int {
	t.Helper()
	var n int
	err := db.InAllTenantsReadTx(t.Context(), func(tx *sql.Tx) error {
		return tx.QueryRowContext(t.Context(), db.Rebind(`SELECT count(*) FROM decisions WHERE (tenant_id = ? OR target_tenant_id = ?)
			AND NOT (subject = 'service:tenancy' AND method LIKE '/echopilot.tenantdata.v1.TenantDataService/%')`), tenant, tenant).Scan(&n)
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// seedTenant creates data of tenant through every service's API.
func seedTenant(t *testing.T, conns map[string]*grpc.ClientConn, tenant, hookURL string) {
	t.Helper()
	user, admin := bearerCtx(t, tenant, "user"), bearerCtx(t, tenant, "admin")
	tenancy := tenancyv1.NewTenancyServiceClient(conns["tenancy"])
	if _, err := tenancy.CreateTenant(bearerCtx(t, "default", "admin"), &tenancyv1.CreateTenantRequest{Tenant: &tenancyv1.Tenant{TenantId: tenant}}); err != nil {
		t.Fatal(err)
	}
	if _, err := tenancy.CreateAPIKey(admin, &tenancyv1.CreateAPIKeyRequest{TenantId: tenant, Name: "ci"}); err != nil {
		t.Fatal(err)
	}
	if _, err := queuev1.NewQueueServiceClient(conns["queue"]).EnqueueJob(user, &queuev1.EnqueueJobRequest{Type: "report_gen", Payload: &structpb.Struct{}}); err != nil {
		t.Fatal(err)
	}
	growth := growthv1.NewGrowthServiceClient(conns["growth"])
	ref, err := growth.CreateReferral(user, &growthv1.CreateReferralRequest{ReferrerId: "referrer-of-" + tenant})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := growth.RecordEvent(user, &growthv1.RecordEventRequest{Event: &growthv1.Event{
		ReferralCode: ref.GetReferralCode(), Type: "conversion", EventId: "conv-1", CustomerId: "cust-1", Revenue: 12.5}}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	body := fmt.Sprintf(`{"type": "charge.succeeded", "id": "evt_%s", "created": %d, "data": {"object": {"object": "charge",
		"id": "ch_%s", "amount": 1999, "amount_refunded": 0, "currency": "usd", "customer": "cus_%s", "created": %d,
		"metadata": {"tenant_id": %q}}}}`, tenant, now.Unix(), tenant, tenant, now.Unix(), tenant)
	if _, err := finopsv1.NewFinOpsServiceClient(conns["finops"]).HandleStripeWebhook(context.Background(),
		&finopsv1.HandleStripeWebhookRequest{Payload: []byte(body), StripeSignature: stripeSign(body, now)}); err != nil {
		t.Fatal(err)
	}
	audit := auditv1.NewAuditServiceClient(conns["audit"])
	if _, err := audit.CreateEndpoint(user, &auditv1.CreateEndpointRequest{Url: hookURL + "/hook"}); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.CreateWebhookSecret(admin, &auditv1.CreateWebhookSecretRequest{}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := audit.AppendEntries(user, &auditv1.AppendEntriesRequest{Entries: []*auditv1.NewEntry{{
			EventType: "login", User: "u" + fmt.Sprint(i), Action: "login", Resource: "app", Details: &structpb.Struct{}}}}); err != nil {
			t.Fatal(err)
		}
	}
}

// checkRefused: only tenancy's service identity may export or erase.
func checkRefused(t *testing.T, c tenantdatav1.TenantDataServiceClient) {
	t.Helper()
	for who, ctx := range map[string]context.Context{
		"the tenant's admin": bearerCtx(t, "acme", "admin"),
		"a platform admin":   bearerCtx(t, "default", "admin"),
		"another service":    servicetest.AsService(t, "queue", "acme"),
	} {
		_, err := c.EraseTenantData(ctx, &tenantdatav1.EraseTenantDataRequest{TenantId: "acme", Pseudonym: "erased-x", ErasureId: "e"})
		if code := status.Code(err); code != codes.PermissionDenied {
			t.Errorf("erase by %s: %v, want PERMISSION_DENIED", who, err)
		}
		stream, err := c.ExportTenantData(ctx, &tenantdatav1.ExportTenantDataRequest{TenantId: "acme"})
		if err == nil {
			_, err = stream.Recv()
		}
		if code := status.Code(err); code != codes.PermissionDenied {
			t.Errorf("export by %s: %v, want PERMISSION_DENIED", who, err)
		}
	}
}

// checkExport: the rows the seed created are in the service's export, and
// secrets are not.
func checkExport(t *testing.T, name string, lines map[string][]map[string]any) {
	t.Helper()
	want := map[string][]string{
		"tenancy": {"tenants", "api_keys"},
		"queue":   {"jobs"},
		"growth":  {"referrals", "conversions"},
		"finops":  {"payments", "stripe_events"},
		"audit":   {"webhook_endpoints", "webhook_secrets"},
	}[name]
	for _, kind := range want {
		if len(lines[kind]) == 0 {
			t.Errorf("%s's export has no %s of acme: kinds %v", name, kind, slices.Sorted(maps.Keys(lines)))
		}
	}
	for kind, rows := range lines {
		for _, row := range rows {
			if row["tenant_id"] != "acme" {
				t.Errorf("%s %s: a row of %v", name, kind, row["tenant_id"])
			}
			for _, secret := range []string{"secret_hash", "previous_hash", "secret", "value"} {
				if _, ok := row[secret]; ok && (kind == "api_keys" || strings.HasPrefix(kind, "webhook_")) {
					t.Errorf("%s %s exports %s", name, kind, secret)
				}
			}
		}
	}
	if _, ok := lines["audit_entries"]; ok {
		t.Errorf("audit exports its entries as rows; ExportLog carries them")
	}
}

// eraseUntilDone repeats the erasure while the relay delivers what the
// tenant's outbox still holds.
// recordErasure checks that tenancy erases nothing for an erasure it has
// not recorded (OffboardTenant records one), even when its own identity
// asks, then records req's as OffboardTenant would, through dbh.
// accessLog is tenancy's record of access decisions: written in the
// background, in batches, so rows about a tenant may land after a snapshot
// of its data taken while they were being made.
var accessLog = []string{"decisions", "decision_counts"}

func recordErasure(t *testing.T, ctx context.Context, c tenantdatav1.TenantDataServiceClient, dbh *store.DB, req *tenantdatav1.EraseTenantDataRequest) {
	t.Helper()
	tenant := req.GetTenantId()
	before := tenantdatatest.Residue(t, dbh, tenant)
	_, err := c.EraseTenantData(ctx, req)
	if status.Code(err) != codes.FailedPrecondition || apierr.Reason(err) != "ERASURE_NOT_FOUND" {
		t.Fatalf("erase without a recorded erasure = %v, want FAILED_PRECONDITION ERASURE_NOT_FOUND", err)
	}
	after := tenantdatatest.Residue(t, dbh, tenant)
	// The access log (the refused call's own decision among it) grows on
	// its own: everything else stays.
	for _, m := range []map[string]int{before, after} {
		for _, kind := range accessLog {
			delete(m, kind)
		}
	}
	if !maps.Equal(before, after) {
		t.Fatalf("a refused erasure changed %v into %v", before, after)
	}
	if err := dbh.InTenantTx(context.Background(), tenant, func(tx *sql.Tx) error {
		_, err := tx.Exec(dbh.Rebind(`INSERT INTO erasures
			(tenant_id, erasure_id, state, reason, requested_by, export_id, export_skipped, pseudonym, progress, created_at)
			VALUES (?, ?, 'running', 'test', 'u@default', '', true, ?, '[]', ?)`),
			tenant, req.GetErasureId(), req.GetPseudonym(), time.Now().UTC())
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

func eraseUntilDone(t *testing.T, ctx context.Context, c tenantdatav1.TenantDataServiceClient, req *tenantdatav1.EraseTenantDataRequest) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last *tenantdatav1.EraseTenantDataResponse
	for time.Now().Before(deadline) {
		r, err := c.EraseTenantData(ctx, req)
		if err != nil {
			t.Fatalf("erase: %v", err)
		}
		if last = r; r.GetDone() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("erase not done: %v", last)
}

// checkAuditAfterErasure: acme's log is retained from the tombstone and
// verifies, with its signed checkpoint at the cut.
func checkAuditAfterErasure(t *testing.T, audit auditv1.AuditServiceClient) {
	t.Helper()
	chain, err := audit.GetChain(bearerCtx(t, "acme", "admin"), &auditv1.GetChainRequest{Verify: "full"})
	if err != nil {
		t.Fatal(err)
	}
	ret := chain.GetRetention()
	if len(chain.GetEntries()) == 0 || ret.GetRetainedFromSeq() < 2 {
		t.Fatalf("acme's log after erasure: %d entries, retention %v", len(chain.GetEntries()), ret)
	}
	first := chain.GetEntries()[0]
	if first.GetEventType() != "tenant.erased" || first.GetSeq() != ret.GetRetainedFromSeq() || first.GetUser() != "service:tenancy" ||
		first.GetResource() != "tenant/acme" || first.GetDetails().AsMap()["erasure_id"] != "erasure-1" {
		t.Errorf("first retained entry %v, want the tombstone at %d", first, ret.GetRetainedFromSeq())
	}
	if v := chain.GetVerification(); !v.GetValid() {
		t.Errorf("acme's log after erasure does not verify: %v", v)
	}
	// A full verification starts from the cut and checks its signed
	// checkpoint against the kept frontier.
	if cp := ret.GetCutCheckpoint(); !strings.Contains(cp, fmt.Sprintf("\n%d\n", ret.GetRetainedFromSeq()-1)) {
		t.Errorf("the checkpoint at the cut is not of size %d: %q", ret.GetRetainedFromSeq()-1, cp)
	}
	tombstones, err := audit.GetChain(bearerCtx(t, "acme", "admin"), &auditv1.GetChainRequest{EventType: "tenant.erased"})
	if err != nil || len(tombstones.GetEntries()) != 1 {
		t.Errorf("tombstones after re-runs: %v, %v; want one", tombstones.GetEntries(), err)
	}
	globex, err := audit.GetChain(bearerCtx(t, "globex", "admin"), &auditv1.GetChainRequest{})
	if err != nil || len(globex.GetEntries()) < 5 || globex.GetRetention().GetRetainedFromSeq() > 1 || !globex.GetVerification().GetValid() {
		t.Errorf("globex's log: %d entries, %v, %v", len(globex.GetEntries()), globex.GetRetention(), err)
	}
}
