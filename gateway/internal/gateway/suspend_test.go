package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/echopilot/echopilot/gateway/internal/backendtest"
	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	finopsv1 "github.com/echopilot/echopilot/gen/go/echopilot/finops/v1"
	growthv1 "github.com/echopilot/echopilot/gen/go/echopilot/growth/v1"
	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/platform/store/storetest"
)

// suspendStack is every service, in-process, each learning tenant states
// from tenancy's GetTenantState, with two replicas of queue on one
// database, and the gateway in front of growth (referral links).
type suspendStack struct {
	tenancy tenancyv1.TenancyServiceClient
	queues  [2]queuev1.QueueServiceClient
	finops  finopsv1.FinOpsServiceClient
	growth  growthv1.GrowthServiceClient
	audit   auditv1.AuditServiceClient
	gateway string
}

func startSuspendStack(t *testing.T, db storetest.Backend) suspendStack {
	t.Helper()
	// The test's webhook receiver is on loopback.
	conns := backendtest.StartLinked(t, db, map[string][]string{"audit": {"--outbound-allow=127.0.0.1/32"}})
	s := suspendStack{
		tenancy: tenancyv1.NewTenancyServiceClient(conns["tenancy"]),
		queues:  [2]queuev1.QueueServiceClient{queuev1.NewQueueServiceClient(conns["queue"]), queuev1.NewQueueServiceClient(conns["queue-2"])},
		finops:  finopsv1.NewFinOpsServiceClient(conns["finops"]),
		growth:  growthv1.NewGrowthServiceClient(conns["growth"]),
		audit:   auditv1.NewAuditServiceClient(conns["audit"]),
	}
	var backends []Backend
	for _, b := range Backends() {
		if b.Name == "growth" {
			b.Conn = conns["growth"]
			backends = append(backends, b)
		}
	}
	srv, _ := startGateway(t, Config{}, backends, false)
	s.gateway = srv.URL
	return s
}

func bearerCtx(t *testing.T, tenant string, roles ...string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token(t, tenant, roles...))
}

// A suspended tenant's writes are refused by every service (each replica)
// with FAILED_PRECONDITION TENANT_SUSPENDED within
// identity.TenantStateCacheTTL, its reads work, its referral link answers
// a neutral page; another tenant is untouched; resuming restores all of it
// within the same delay.
func TestSuspendAcrossServices(t *testing.T) {
	for _, db := range storetest.Backends() {
		t.Run(db.Name, func(t *testing.T) {
			s := startSuspendStack(t, db)
			admin := bearerCtx(t, "default", "admin")
			acme, acmeAdmin := bearerCtx(t, "acme", "user"), bearerCtx(t, "acme", "admin")
			for _, id := range []string{"acme", "globex"} {
				if _, err := s.tenancy.CreateTenant(admin, &tenancyv1.CreateTenantRequest{Tenant: &tenancyv1.Tenant{TenantId: id}}); err != nil {
					t.Fatal(err)
				}
			}
			ref, err := s.growth.CreateReferral(acme, &growthv1.CreateReferralRequest{ReferrerId: "u1"})
			if err != nil {
				t.Fatal(err)
			}
			code := ref.GetReferralCode()
			var hooks atomic.Int32 // webhook deliveries to acme's endpoint
			rcv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hooks.Add(1) }))
			t.Cleanup(rcv.Close)
			if _, err := s.audit.CreateEndpoint(acme, &auditv1.CreateEndpointRequest{Url: rcv.URL + "/hook"}); err != nil {
				t.Fatal(err)
			}

			// Each write, by a user of tenant (admin for tenancy's).
			writes := map[string]func(tenant string) error{
				"tenancy": func(tenant string) error {
					_, err := s.tenancy.CreateAPIKey(bearerCtx(t, tenant, "admin"), &tenancyv1.CreateAPIKeyRequest{TenantId: tenant, Name: "ci"})
					return err
				},
				"growth": func(tenant string) error {
					_, err := s.growth.CreateReferral(bearerCtx(t, tenant, "user"), &growthv1.CreateReferralRequest{ReferrerId: "u2"})
					return err
				},
				"audit": func(tenant string) error {
					_, err := s.audit.AppendEntries(bearerCtx(t, tenant, "user"), &auditv1.AppendEntriesRequest{Entries: []*auditv1.NewEntry{
						{EventType: "login", User: "u1", Action: "login", Resource: "app", Details: &structpb.Struct{}}}})
					return err
				},
			}
			for i, q := range s.queues {
				writes[fmt.Sprintf("queue replica %d", i+1)] = func(tenant string) error {
					_, err := q.EnqueueJob(bearerCtx(t, tenant, "user"), &queuev1.EnqueueJobRequest{Type: "report_gen", Payload: &structpb.Struct{}})
					return err
				}
			}
			for name, w := range writes {
				if err := w("acme"); err != nil {
					t.Fatalf("%s write while active: %v", name, err)
				}
			}

			if _, err := s.tenancy.SuspendTenant(admin, &tenancyv1.SuspendTenantRequest{TargetTenantId: "acme", Reason: "unpaid"}); err != nil {
				t.Fatal(err)
			}
			suspended := time.Now()
			for name, w := range writes {
				waitFor(t, name+" refusing acme", suspended, func() error {
					err := w("acme")
					if apierr.Reason(err) == identity.ReasonTenantSuspended && status.Code(err) == codes.FailedPrecondition {
						return nil
					}
					return fmt.Errorf("write answered %v", err)
				})
				if err := w("globex"); err != nil {
					t.Fatalf("%s: globex write while acme is suspended: %v", name, err)
				}
			}
			t.Logf("every service refused acme's writes %v after the suspension", time.Since(suspended))

			// Reads work on every service.
			for i, q := range s.queues {
				if _, err := q.GetQueueStatus(acme, &queuev1.GetQueueStatusRequest{}); err != nil {
					t.Fatalf("queue replica %d read: %v", i+1, err)
				}
			}
			if _, err := s.finops.GetSummary(acme, &finopsv1.GetSummaryRequest{}); err != nil {
				t.Fatalf("finops read: %v", err)
			}
			if _, err := s.growth.ListReferrals(acme, &growthv1.ListReferralsRequest{}); err != nil {
				t.Fatalf("growth read: %v", err)
			}
			if _, err := s.audit.GetChain(acme, &auditv1.GetChainRequest{Limit: 10}); err != nil {
				t.Fatalf("audit read: %v", err)
			}
			if _, err := s.tenancy.ListAPIKeys(acmeAdmin, &tenancyv1.ListAPIKeysRequest{TenantId: "acme"}); err != nil {
				t.Fatalf("tenancy read: %v", err)
			}
			// A worker of the tenant is refused a lease (a write): its
			// jobs wait.
			_, err = s.queues[0].LeaseJobs(bearerCtx(t, "acme", "worker"), &queuev1.LeaseJobsRequest{WorkerId: "w1"})
			servicetest.WantErr(t, err, codes.FailedPrecondition, identity.ReasonTenantSuspended)

			// The referral link: a neutral page, no redirect, no cookie.
			res := getNoRedirect(t, s.gateway+"/r/"+code)
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != http.StatusOK || res.Header.Get("Location") != "" || len(res.Cookies()) != 0 ||
				!strings.Contains(string(body), "not available") {
				t.Fatalf("suspended tenant's link: %d %v %s", res.StatusCode, res.Header, body)
			}

			// A high entry a service appends for the suspended tenant is
			// kept, its webhook held until the tenant is resumed.
			if _, err := s.audit.AppendEntries(servicetest.AsService(t, "tenancy", "acme"), &auditv1.AppendEntriesRequest{Entries: []*auditv1.NewEntry{
				{EventType: "tenant.suspended", User: "ops", Action: "suspend", Resource: "tenant/acme", Details: &structpb.Struct{},
					Severity: auditv1.Severity_SEVERITY_HIGH}}}); err != nil {
				t.Fatalf("service appending for a suspended tenant: %v", err)
			}
			time.Sleep(time.Second)
			if n := hooks.Load(); n != 0 {
				t.Fatalf("%d webhooks delivered for a suspended tenant", n)
			}

			if _, err := s.tenancy.ResumeTenant(admin, &tenancyv1.ResumeTenantRequest{TargetTenantId: "acme"}); err != nil {
				t.Fatal(err)
			}
			resumed := time.Now()
			for name, w := range writes {
				waitFor(t, name+" serving acme again", resumed, func() error { return w("acme") })
			}
			if res := getNoRedirect(t, s.gateway+"/r/"+code); res.StatusCode != http.StatusFound {
				t.Fatalf("resumed tenant's link: %d", res.StatusCode)
			}
			// Audit looks at a held delivery again every 5 s (outbound.PausedRecheck).
			deadline := time.Now().Add(10 * time.Second)
			for hooks.Load() == 0 {
				if time.Now().After(deadline) {
					t.Fatal("the held webhook was not delivered after the resumption")
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// waitFor polls fn until it returns nil, failing when that takes longer
// than the cache time (and a second of slack for the test's own calls)
// from since.
func waitFor(t *testing.T, what string, since time.Time, fn func() error) {
	t.Helper()
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Since(since) > identity.TenantStateCacheTTL+time.Second {
			t.Fatalf("%s: not within %v: %v", what, identity.TenantStateCacheTTL, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func getNoRedirect(t *testing.T, url string) *http.Response {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = res.Body.Close() })
	return res
}
