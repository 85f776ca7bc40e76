package gateway

import (
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/grpc"

	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	"github.com/echopilot/echopilot/platform/apikeys"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/platform/svcauth"
	queueapp "github.com/echopilot/echopilot/services/queue/app"
	tenancyapp "github.com/echopilot/echopilot/services/tenancy/app"
)

// keyStack serves tenancy (on a loopback port, as queue reaches it) and
// queue, which learns about keys from tenancy's LookupAPIKey, behind a
// gateway whose write budget is charged to the key's tenant.
func keyStack(t *testing.T, db storetest.Backend) *httptest.Server {
	t.Helper()
	opt := servicetest.Options{AuthMode: "required", TCP: true}
	opt.MigrateURL, opt.DatabaseURL = db.NewDB(t)
	tconn := servicetest.Start(t, tenancyapp.Spec(), opt)
	qopt := servicetest.Options{AuthMode: "required", Args: []string{"--tenancy-addr=" + tconn.Target()}}
	qopt.MigrateURL, qopt.DatabaseURL = db.NewDB(t)
	qconn := servicetest.Start(t, queueapp.Spec(), qopt)

	gwIdentity := grpc.PerRPCCredentials(svcauth.Credentials(svcauth.Minted([]byte(servicetest.Secret), "gateway")))
	v, err := identity.NewVerifier(identity.VerifierConfig{HS256Secret: []byte(servicetest.Secret),
		APIKeys: apikeys.Remote(tenancyv1.NewTenancyServiceClient(tconn), gwIdentity)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	var backends []Backend
	for _, b := range Backends() {
		switch b.Name {
		case "tenancy":
			b.Conn = tconn
		case "queue":
			b.Conn = qconn
		default:
			continue
		}
		backends = append(backends, b)
	}
	srv, _ := startGateway(t, Config{RateLimits: RateLimitConfig{Read: Budget{Rate: 1000, Burst: 1000}, Write: Budget{Rate: 1000, Burst: 1000}, Verifier: v}}, backends, false)
	return srv
}

// A key made through the gateway works on another service (queue) as its
// tenant, in either header; read-only keys cannot write; another tenant is
// refused; the gateway charges the key's tenant; a revoked key is refused
// by queue within identity.APIKeyCacheTTL.
func TestAPIKeysAcrossServices(t *testing.T) {
	for _, db := range storetest.Backends() {
		t.Run(db.Name, func(t *testing.T) {
			srv := keyStack(t, db)
			admin := "Bearer " + token(t, "acme", "admin")
			r := do(t, srv, "POST", "/api/tenants/acme/api-keys", `{"name":"ci pipeline"}`, "Authorization", admin)
			key, _ := r.body["secret"].(string)
			meta, _ := r.body["api_key"].(map[string]any)
			if r.status != 200 || len(key) != identity.APIKeyLen || meta["prefix"] != key[:34] {
				t.Fatalf("create: %d %s", r.status, r.raw)
			}
			r = do(t, srv, "POST", "/api/tenants/acme/api-keys", `{"name":"reader","read_only":true}`, "Authorization", admin)
			reader, _ := r.body["secret"].(string)
			if r.status != 200 {
				t.Fatalf("create read-only: %d %s", r.status, r.raw)
			}
			job := `{"type":"report_gen","payload":{}}`
			for _, h := range [][]string{{"Authorization", "Bearer " + key}, {"X-API-Key", key}} {
				r = do(t, srv, "POST", "/api/queue/enqueue", job, h...)
				if r.status != 200 || r.header.Get("RateLimit-Policy") == "" || r.header.Get("RateLimit-Policy")[:14] != `"tenant-write"` {
					t.Fatalf("enqueue with %s: %d %s %v", h[0], r.status, r.raw, r.header)
				}
			}
			r = do(t, srv, "GET", "/api/queue/status", "", "X-API-Key", key)
			if r.status != 200 || r.body["total_jobs"] != float64(2) {
				t.Fatalf("status: %d %s", r.status, r.raw)
			}
			if r = do(t, srv, "GET", "/api/queue/status", "", "X-API-Key", reader); r.status != 200 {
				t.Fatalf("read-only read: %d %s", r.status, r.raw)
			}
			if r = do(t, srv, "POST", "/api/queue/enqueue", job, "X-API-Key", reader); r.status != 403 || r.errCode != identity.ReasonReadOnlyKey {
				t.Fatalf("read-only write: %d %s", r.status, r.raw)
			}
			if r = do(t, srv, "POST", "/api/queue/enqueue", job, "X-API-Key", key, "X-Tenant-ID", "globex"); r.status != 403 || r.errCode != identity.ReasonCrossTenantDenied {
				t.Fatalf("acme's key for globex: %d %s", r.status, r.raw)
			}
			wrong := key[:35] + reader[35:]
			if r = do(t, srv, "POST", "/api/queue/enqueue", job, "X-API-Key", wrong); r.status != 401 || r.errCode != identity.ReasonTokenInvalid {
				t.Fatalf("wrong secret: %d %s", r.status, r.raw)
			}
			if p := r.header.Get("RateLimit-Policy"); len(p) < 15 || p[:15] != `"address-write"` {
				t.Fatalf("a wrong secret is charged to %q, want the client address", p)
			}

			if r = do(t, srv, "DELETE", "/api/tenants/acme/api-keys/"+key[8:34], "", "Authorization", admin); r.status != 200 {
				t.Fatalf("revoke: %d %s", r.status, r.raw)
			}
			start := time.Now()
			for {
				r = do(t, srv, "POST", "/api/queue/enqueue", job, "X-API-Key", key)
				if r.status == 401 && r.errCode == identity.ReasonTokenInvalid {
					break
				}
				if r.status != 200 || time.Since(start) > identity.APIKeyCacheTTL+time.Second {
					t.Fatalf("after revocation (%v): %d %s", time.Since(start), r.status, r.raw)
				}
				time.Sleep(50 * time.Millisecond)
			}
			t.Logf("queue refused the revoked key after %v", time.Since(start))
		})
	}
}
