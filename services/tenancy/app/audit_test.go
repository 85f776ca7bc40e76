package app_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"

	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	"github.com/echopilot/echopilot/platform/outbox"
	"github.com/echopilot/echopilot/platform/service"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/platform/svcauth"
	auditapp "github.com/echopilot/echopilot/services/audit/app"
	"github.com/echopilot/echopilot/services/tenancy/app"
)

// startAudit runs the real audit service over backend, on a loopback port
// so that tenancy can dial it by address (conn.Target()).
func startAudit(t *testing.T, backend string) *grpc.ClientConn {
	t.Helper()
	opt := servicetest.Options{
		Args: []string{"--signing-key-file=" + filepath.Join(t.TempDir(), "k")},
		TCP:  true,
	}
	if backend == "postgres" {
		opt.MigrateURL, opt.DatabaseURL = storetest.Postgres(t)
	}
	return servicetest.Start(t, auditapp.Spec(), opt)
}

// withAudit runs fn against tenancy delivering its denials to a real audit
// service, both on SQLite and, when configured, both on PostgreSQL.
func withAudit(t *testing.T, fn func(t *testing.T, c tenancyv1.TenancyServiceClient, audit auditv1.AuditServiceClient)) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			auditConn := startAudit(t, backend)
			opt := servicetest.Options{Args: []string{"--audit-addr=" + auditConn.Target()}}
			if backend == "postgres" {
				opt.MigrateURL, opt.DatabaseURL = storetest.Postgres(t)
			}
			conn := servicetest.Start(t, app.Spec(), opt)
			fn(t, tenancyv1.NewTenancyServiceClient(conn), auditv1.NewAuditServiceClient(auditConn))
		})
	}
}

// chain reads tenant's audit log as one of its users.
func chain(t *testing.T, c auditv1.AuditServiceClient, tenant string) *auditv1.GetChainResponse {
	t.Helper()
	res, err := c.GetChain(as(t, tenant, "user"), &auditv1.GetChainRequest{Limit: 100})
	if err != nil {
		t.Fatalf("GetChain(%s): %v", tenant, err)
	}
	return res
}

// waitEntries polls tenant's audit log (at most 10 s) until it holds at
// least n entries, and returns it.
func waitEntries(t *testing.T, c auditv1.AuditServiceClient, tenant string, n int) *auditv1.GetChainResponse {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		res := chain(t, c, tenant)
		if len(res.GetEntries()) >= n {
			return res
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s audit log has %d entries after 10s, want %d: %v", tenant, len(res.GetEntries()), n, res.GetEntries())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A denial tenancy makes itself (TestAccess) and one another service
// reports both reach the denied caller's tenant log; grants and unverified
// same-tenant denials do not.
func TestDenialsReachAudit(t *testing.T) {
	withAudit(t, func(t *testing.T, c tenancyv1.TenancyServiceClient, audit auditv1.AuditServiceClient) {
		res, err := c.TestAccess(as(t, "acme", "user"), &tenancyv1.TestAccessRequest{TargetTenantId: "globex"})
		if err != nil || res.GetAllowed() || res.GetReason() != "CROSS_TENANT_DENIED" {
			t.Fatalf("TestAccess = %v, %v; want denied", res, err)
		}
		_, err = c.ReportDecisions(servicetest.AsService(t, "finops", ""), &tenancyv1.ReportDecisionsRequest{Decisions: []*tenancyv1.Decision{
			{TenantId: "globex", TargetTenantId: "globex", Subject: "bob", Method: "/echopilot.queue.v1.QueueService/Purge",
				Outcome: tenancyv1.Outcome_OUTCOME_DENIED, Reason: "ROLE_REQUIRED", Service: "queue", Verified: true},
			{TenantId: "globex", Outcome: tenancyv1.Outcome_OUTCOME_ALLOWED, Reason: "SAME_TENANT", Service: "queue", Verified: true},
			{TenantId: "globex", TargetTenantId: "globex", Outcome: tenancyv1.Outcome_OUTCOME_DENIED, Reason: "TOKEN_INVALID", Service: "queue"},
		}})
		if err != nil {
			t.Fatal(err)
		}

		acme := waitEntries(t, audit, "acme", 1)
		globex := waitEntries(t, audit, "globex", 1)
		// Anything else would have been sent with these: give a stray entry
		// a moment to show up.
		time.Sleep(300 * time.Millisecond)
		acme, globex = chain(t, audit, "acme"), chain(t, audit, "globex")
		if len(acme.GetEntries()) != 1 || len(globex.GetEntries()) != 1 {
			t.Fatalf("acme log %v\nglobex log %v\nwant one entry each", acme.GetEntries(), globex.GetEntries())
		}
		for tenant, log := range map[string]*auditv1.GetChainResponse{"acme": acme, "globex": globex} {
			if v := log.GetVerification(); !v.GetValid() || v.GetEntries() != 1 {
				t.Errorf("%s verification = %v, want valid over 1 entry", tenant, v)
			}
		}

		e := acme.GetEntries()[0]
		d := e.GetDetails().AsMap()
		if e.GetEventType() != "access.denied" || e.GetUser() != "u@acme" ||
			e.GetAction() != tenancyv1.TenancyService_TestAccess_FullMethodName || e.GetResource() != "tenant/globex" ||
			e.GetSeverity() != auditv1.Severity_SEVERITY_HIGH {
			t.Errorf("acme entry = %v", e)
		}
		if d["reason"] != "CROSS_TENANT_DENIED" || d["service"] != "tenancy" || d["verified"] != true ||
			d["target_tenant_id"] != "globex" || d["event_id"] == "" || d["event_id"] == nil {
			t.Errorf("acme entry details = %v", d)
		}

		e = globex.GetEntries()[0]
		d = e.GetDetails().AsMap()
		if e.GetEventType() != "access.denied" || e.GetUser() != "bob" || e.GetAction() != "/echopilot.queue.v1.QueueService/Purge" ||
			e.GetResource() != "tenant/globex" || e.GetSeverity() != auditv1.Severity_SEVERITY_MEDIUM {
			t.Errorf("globex entry = %v", e)
		}
		if d["reason"] != "ROLE_REQUIRED" || d["service"] != "queue" || d["verified"] != true || d["target_tenant_id"] != "globex" {
			t.Errorf("globex entry details = %v", d)
		}
		if d["event_id"] == acme.GetEntries()[0].GetDetails().AsMap()["event_id"] {
			t.Errorf("two events share the id %v", d["event_id"])
		}
	})
}

// Without --audit-addr, denials still write their events, and tenancy runs
// no relay: nothing reaches audit, nothing is lost.
func TestNoAuditAddrKeepsEvents(t *testing.T) {
	dbURL := "sqlite://" + filepath.Join(t.TempDir(), "tenancy.db")
	conn := servicetest.Start(t, app.Spec(), servicetest.Options{DatabaseURL: dbURL})
	c := tenancyv1.NewTenancyServiceClient(conn)
	for range 3 {
		if _, err := c.TestAccess(as(t, "acme", "user"), &tenancyv1.TestAccessRequest{TargetTenantId: "globex"}); err != nil {
			t.Fatal(err)
		}
	}
	db := storetest.Open(t, dbURL)
	var pending int
	err := db.QueryRowContext(t.Context(),
		"SELECT count(*) FROM outbox WHERE topic = 'tenancy.access.denied' AND tenant_id = 'acme' AND delivered_at IS NULL").Scan(&pending)
	if err != nil || pending != 3 {
		t.Fatalf("%d pending denial events (%v), want 3", pending, err)
	}
}

// The publisher sends a batch in one call; when audit refuses the batch for
// one bad entry, the others still go through, one by one, and only the bad
// one is dead-lettered.
func TestAuditRecorderIsolatesBadEvents(t *testing.T) {
	auditConn := startAudit(t, "sqlite")
	audit := auditv1.NewAuditServiceClient(auditConn)
	rt := &service.Runtime{Credential: svcauth.Minted([]byte(servicetest.Secret), "tenancy")}
	conn, err := rt.DialPeer(auditConn.Target())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	pub := app.AuditRecorder(conn)
	event := func(id, tenant, payload string) outbox.Event {
		return outbox.Event{ID: id, Topic: "tenancy.access.denied", Key: "d-" + id, TenantID: tenant, Payload: []byte(payload)}
	}
	good := `{"tenant_id":"acme","target_tenant_id":"globex","subject":"alice","method":"/m","service":"finops",` +
		`"reason":"CROSS_TENANT_DENIED","verified":true,"time":"2026-01-02T03:04:05Z"}`
	errs := pub(context.Background(), []outbox.Event{
		event("e1", "acme", good),
		event("e2", "acme", `not json`),
		event("e3", "Not A Tenant", good), // audit refuses the tenant id
		event("e4", "acme", `{"reason":"TENANT_NOT_ALLOWED","service":"growth"}`),
	})
	if len(errs) != 4 || errs[0] != nil || !errors.Is(errs[1], outbox.ErrPermanent) ||
		!errors.Is(errs[2], outbox.ErrPermanent) || errs[3] != nil {
		t.Fatalf("outcomes = %v; want delivered, permanent, permanent, delivered", errs)
	}
	log := chain(t, audit, "acme")
	if len(log.GetEntries()) != 2 || !log.GetVerification().GetValid() {
		t.Fatalf("acme log = %v, want the two good events", log)
	}
	first, second := log.GetEntries()[0].GetDetails().AsMap(), log.GetEntries()[1]
	if first["event_id"] != "e1" || first["decided_at"] != "2026-01-02T03:04:05Z" {
		t.Errorf("first entry details = %v", first)
	}
	// An event without a target is about the caller's own tenant.
	if d := second.GetDetails().AsMap(); second.GetResource() != "tenant/acme" || second.GetSeverity() != auditv1.Severity_SEVERITY_MEDIUM ||
		d["event_id"] != "e4" || d["target_tenant_id"] != "acme" || d["verified"] != false {
		t.Errorf("second entry = %v", second)
	}
}
