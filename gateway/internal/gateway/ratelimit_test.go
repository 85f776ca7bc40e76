package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"

	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/platform/svcauth"
	"github.com/echopilot/echopilot/services/tenancy/app"
)

// limitedGateway serves the gateway with limits in front of the real
// tenancy service (auth optional, so anonymous callers reach it too). The
// gateway verifies tokens with the services' secret and reads tenants' own
// limits from tenancy with its own service identity, as cmd/gateway wires
// it.
func limitedGateway(t *testing.T, limits RateLimitConfig) *httptest.Server {
	t.Helper()
	conn := servicetest.Start(t, app.Spec(), servicetest.Options{AuthMode: "optional"})
	v, err := identity.NewVerifier(identity.VerifierConfig{HS256Secret: []byte(servicetest.Secret)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	limits.Verifier = v
	if limits.Overrides == nil {
		// A call option, not the connection's, since this connection also
		// serves the REST routes (cmd/gateway dials a connection of its own).
		identity := grpc.PerRPCCredentials(svcauth.Credentials(svcauth.Minted([]byte(servicetest.Secret), "gateway")))
		limits.Overrides = TenancyOverrides(tenancyv1.NewTenancyServiceClient(conn), identity)
	}
	srv, _ := startGateway(t, Config{RateLimits: limits},
		[]Backend{{Name: "tenancy", Conn: conn, Register: handlers(tenancyv1.RegisterTenancyServiceHandlerClient, tenancyv1.NewTenancyServiceClient)}}, false)
	return srv
}

// Budgets that do not refill within a test: exactly Burst requests pass.
var (
	tinyRead  = Budget{Rate: 0.01, Burst: 3}
	tinyWrite = Budget{Rate: 0.01, Burst: 2}
)

func bearerOf(t *testing.T, tenant string, roles ...string) string {
	return "Bearer " + token(t, tenant, roles...)
}

func TestRateLimitHeadersEnvelopeAndRetryAfter(t *testing.T) {
	srv := limitedGateway(t, RateLimitConfig{Read: Budget{Rate: 0.5, Burst: 2}, Write: tinyWrite})
	acme := bearerOf(t, "acme", "user")

	r := do(t, srv, "GET", "/api/tenant/info", "", "Authorization", acme)
	if r.status != 200 {
		t.Fatalf("first read: %d %s", r.status, r.raw)
	}
	// Rate 0.5/s, burst 2: the policy is 2 requests per 4 s; one is left
	// and the next token comes within 2 s.
	if got := r.header.Get("RateLimit-Policy"); got != `"tenant-read";q=2;w=4` {
		t.Errorf("RateLimit-Policy %q", got)
	}
	if got := r.header.Get("RateLimit"); got != `"tenant-read";r=1;t=2` {
		t.Errorf("RateLimit %q", got)
	}
	if r.header.Get("Retry-After") != "" {
		t.Error("Retry-After on a served request")
	}
	if r = do(t, srv, "GET", "/api/tenant/info", "", "Authorization", acme); r.status != 200 {
		t.Fatalf("second read: %d %s", r.status, r.raw)
	}
	r = do(t, srv, "GET", "/api/tenant/info", "", "Authorization", acme, "X-Request-ID", "req-429")
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("third read: %d %s", r.status, r.raw)
	}
	e, _ := r.body["error"].(map[string]any)
	if r.body["ok"] != false || e["code"] != float64(429) || e["status"] != "RESOURCE_EXHAUSTED" ||
		e["reason"] != "RATE_LIMITED" || e["request_id"] != "req-429" || !strings.Contains(e["message"].(string), `tenant "acme"`) {
		t.Fatalf("429 envelope: %s", r.raw)
	}
	if md, _ := e["metadata"].(map[string]any); md["policy"] != "tenant-read" {
		t.Errorf("429 metadata: %s", r.raw)
	}
	if got := r.header.Get("Retry-After"); got != "2" {
		t.Errorf("Retry-After %q, want 2", got)
	}
	if got := r.header.Get("RateLimit"); got != `"tenant-read";r=0;t=2` {
		t.Errorf("RateLimit on 429: %q", got)
	}
	if r.header.Get("RateLimit-Policy") == "" {
		t.Error("no RateLimit-Policy on 429")
	}
}

func TestRateLimitReadAndWriteBudgetsAreSeparate(t *testing.T) {
	srv := limitedGateway(t, RateLimitConfig{Read: tinyRead, Write: tinyWrite})
	acme := bearerOf(t, "acme", "user")
	for i := range tinyRead.Burst {
		if r := do(t, srv, "GET", "/api/tenant/info", "", "Authorization", acme); r.status != 200 {
			t.Fatalf("read %d: %d %s", i, r.status, r.raw)
		}
	}
	if r := do(t, srv, "GET", "/api/tenant/info", "", "Authorization", acme); r.status != 429 {
		t.Fatalf("read over budget: %d", r.status)
	}
	// Reads are spent; writes are not. (A user may not create tenants:
	// tenancy answers 403, after the limiter let the request through.)
	for i := range tinyWrite.Burst {
		r := do(t, srv, "POST", "/api/tenants", `{"tenant_id":"x"}`, "Authorization", acme)
		if r.status != http.StatusForbidden || r.header.Get("RateLimit-Policy") != `"tenant-write";q=2;w=200` {
			t.Fatalf("write %d: %d %s %v", i, r.status, r.raw, r.header)
		}
	}
	if r := do(t, srv, "DELETE", "/api/tenant/info", "", "Authorization", acme); r.status != 429 || r.errCode != "RATE_LIMITED" {
		t.Fatalf("write over budget: %d %s", r.status, r.raw)
	}
	// Another tenant has budgets of its own.
	if r := do(t, srv, "GET", "/api/tenant/info", "", "Authorization", bearerOf(t, "globex", "user")); r.status != 200 {
		t.Fatalf("globex read: %d %s", r.status, r.raw)
	}
	// A class whose rate is 0 is unlimited and says nothing.
	srv = limitedGateway(t, RateLimitConfig{Read: tinyRead})
	for range tinyWrite.Burst + 3 {
		r := do(t, srv, "POST", "/api/tenants", `{"tenant_id":"x"}`, "Authorization", acme)
		if r.status != http.StatusForbidden || r.header.Get("RateLimit") != "" {
			t.Fatalf("unlimited write: %d %v", r.status, r.header)
		}
	}
}

func TestRateLimitExemptsPlatformAdminsAndServices(t *testing.T) {
	srv := limitedGateway(t, RateLimitConfig{Read: tinyRead, Write: tinyWrite})
	service, err := svcauth.Minted([]byte(servicetest.Secret), "queue")(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, auth string }{
		{"platform admin", bearerOf(t, "default", "admin")},
		{"platform service", "Bearer " + service},
	} {
		for i := range tinyRead.Burst + 5 {
			r := do(t, srv, "GET", "/api/tenants/nosuch", "", "Authorization", tc.auth)
			if r.status == 429 || r.header.Get("RateLimit") != "" {
				t.Fatalf("%s, request %d: %d %v", tc.name, i, r.status, r.header)
			}
		}
	}
	// Neither role helps in another tenant's token: an "admin" of acme is
	// a tenant user to the limiter.
	for range tinyRead.Burst {
		do(t, srv, "GET", "/api/tenant/info", "", "Authorization", bearerOf(t, "acme", "admin", "service"))
	}
	if r := do(t, srv, "GET", "/api/tenant/info", "", "Authorization", bearerOf(t, "acme", "admin", "service")); r.status != 429 {
		t.Fatalf("acme admin over budget: %d", r.status)
	}
}

// A token that does not verify buys nothing: the request is charged to the
// client's address, not to the tenant the token names, and so is an
// anonymous request that names a tenant in X-Tenant-ID or the query. An
// attacker can exhaust its own address's budget, never a tenant's.
func TestRateLimitUnverifiedClaimsAreChargedToTheAddress(t *testing.T) {
	srv := limitedGateway(t, RateLimitConfig{Read: tinyRead, Write: tinyWrite})
	forged, err := identity.MintHS256([]byte("another-secret-0123456789abcdef0123456789"),
		identity.Claims{Subject: "mallory", TenantID: "acme", Roles: []string{"admin"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	attacks := [][]string{
		{"Authorization", "Bearer " + forged},
		{"Authorization", "Bearer " + forged},
		{"X-Tenant-ID", "acme"},
	}
	for i, h := range attacks {
		r := do(t, srv, "GET", "/api/tenant/info?tenant_id=acme", "", h...)
		if r.header.Get("RateLimit-Policy") != `"address-read";q=3;w=300` {
			t.Fatalf("attack %d charged to %q (%d %s)", i, r.header.Get("RateLimit-Policy"), r.status, r.raw)
		}
	}
	r := do(t, srv, "GET", "/api/tenant/info", "", "X-Tenant-ID", "acme")
	if r.status != 429 || r.header.Get("Retry-After") == "" || !strings.Contains(r.raw, "this client address") {
		t.Fatalf("address over budget: %d %s", r.status, r.raw)
	}
	// acme, from the same address, still has its whole budget.
	acme := bearerOf(t, "acme", "user")
	for i := range tinyRead.Burst {
		r := do(t, srv, "GET", "/api/tenant/info", "", "Authorization", acme)
		if r.status != 200 || !strings.HasPrefix(r.header.Get("RateLimit"), `"tenant-read";r=`+strconv.Itoa(tinyRead.Burst-1-i)+";") {
			t.Fatalf("acme read %d after the attack: %d %q", i, r.status, r.header.Get("RateLimit"))
		}
	}
}

// A platform admin gives a tenant limits of its own in the registry; the
// gateway picks them up (and changes to them) from tenancy.
func TestRateLimitOverrideFromTenantRegistry(t *testing.T) {
	srv := limitedGateway(t, RateLimitConfig{Read: Budget{Rate: 100, Burst: 200}, Write: Budget{Rate: 50, Burst: 100},
		OverrideTTL: 50 * time.Millisecond})
	admin := bearerOf(t, "default", "admin")
	if r := do(t, srv, "POST", "/api/tenants", `{"tenant_id":"bigco","rate_limit_read_per_second":5,"rate_limit_read_burst":7}`,
		"Authorization", admin); r.status != 200 || r.body["tenant"].(map[string]any)["rate_limit_read_per_second"] != float64(5) {
		t.Fatalf("create bigco: %d %s", r.status, r.raw)
	}
	bigco := bearerOf(t, "bigco", "user")
	waitPolicy := func(method, path, body, want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			r := do(t, srv, method, path, body, "Authorization", bigco)
			got := r.header.Get("RateLimit-Policy")
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s %s: policy %q, want %q", method, path, got, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// The first request used the defaults while the lookup ran.
	waitPolicy("GET", "/api/tenant/info", "", `"tenant-read";q=7;w=2`)
	waitPolicy("POST", "/api/tenants", `{"tenant_id":"x"}`, `"tenant-write";q=100;w=2`)

	// PATCH changes only what its body names: the write rate (burst: twice
	// the rate); the read override stays.
	r := do(t, srv, "PATCH", "/api/tenants/bigco", `{"rate_limit_write_per_second":3}`, "Authorization", admin)
	if tn, _ := r.body["tenant"].(map[string]any); r.status != 200 || tn["rate_limit_write_per_second"] != float64(3) ||
		tn["rate_limit_read_per_second"] != float64(5) || tn["display_name"] != "bigco" {
		t.Fatalf("patch: %d %s", r.status, r.raw)
	}
	waitPolicy("POST", "/api/tenants", `{"tenant_id":"x"}`, `"tenant-write";q=6;w=2`)
	waitPolicy("GET", "/api/tenant/info", "", `"tenant-read";q=7;w=2`)
	// Only a platform admin may change limits.
	if r := do(t, srv, "PATCH", "/api/tenants/bigco", `{"rate_limit_read_per_second":1000}`, "Authorization", bigco); r.status != 403 {
		t.Fatalf("bigco raises its own limit: %d %s", r.status, r.raw)
	}
}

// A lookup that hangs or fails never holds a request: it gets the defaults.
func TestRateLimitOverrideLookupNeverBlocks(t *testing.T) {
	calls := make(chan struct{}, 100)
	srv := limitedGateway(t, RateLimitConfig{Read: Budget{Rate: 100, Burst: 200}, Write: tinyWrite,
		Overrides: func(ctx context.Context, tenant string) (TenantLimits, error) {
			calls <- struct{}{}
			<-ctx.Done() // tenancy does not answer
			return TenantLimits{}, ctx.Err()
		}})
	acme := bearerOf(t, "acme", "user")
	for range 5 {
		start := time.Now()
		r := do(t, srv, "GET", "/api/tenant/info", "", "Authorization", acme)
		if r.status != 200 || r.header.Get("RateLimit-Policy") != `"tenant-read";q=200;w=2` {
			t.Fatalf("%d %q", r.status, r.header.Get("RateLimit-Policy"))
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("request took %v while the lookup hung", d)
		}
	}
	if len(calls) != 1 {
		t.Fatalf("%d lookups in flight for one tenant, want 1", len(calls))
	}
}

// The state kept is bounded: past MaxKeys the least recently seen key is
// dropped (and starts again with a full bucket).
func TestRateLimitStateIsBounded(t *testing.T) {
	l, err := newLimiter(RateLimitConfig{Read: tinyRead, MaxKeys: 3}, prometheus.NewRegistry(), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i := range 1000 {
		l.take("address\x00"+strconv.Itoa(i), classRead, tinyRead, now)
	}
	if n := l.buckets.Len(); n != 3 {
		t.Fatalf("%d buckets kept, want 3", n)
	}
	for range tinyRead.Burst {
		l.take("tenant\x00a", classRead, tinyRead, now)
	}
	if ok, _ := l.take("tenant\x00a", classRead, tinyRead, now); ok {
		t.Fatal("over budget allowed")
	}
	for i := range 3 {
		l.take("tenant\x00other"+strconv.Itoa(i), classRead, tinyRead, now)
	}
	if ok, _ := l.take("tenant\x00a", classRead, tinyRead, now); !ok {
		t.Fatal("an evicted key did not start with a full bucket")
	}
}

func TestClientKey(t *testing.T) {
	trusted, err := ParsePrefixes("10.0.0.0/8, 192.0.2.1, 2001:db8::/32")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParsePrefixes("10.0.0.0/8,not-an-ip"); err == nil {
		t.Fatal("bad proxy list accepted")
	}
	cases := []struct {
		name, remote, xff string
		trusted           []netip.Prefix
		want              string
	}{
		{"peer", "203.0.113.7:5555", "", nil, "203.0.113.7"},
		{"X-Forwarded-For ignored without trusted proxies", "203.0.113.7:5555", "198.51.100.1", nil, "203.0.113.7"},
		{"X-Forwarded-For ignored from an untrusted peer", "203.0.113.7:5555", "198.51.100.1", trusted, "203.0.113.7"},
		{"client named by a trusted proxy", "10.1.2.3:5555", "198.51.100.1", trusted, "198.51.100.1"},
		{"rightmost untrusted hop wins over a forged first", "10.1.2.3:5555", "6.6.6.6, 198.51.100.1, 10.9.9.9", trusted, "198.51.100.1"},
		{"hops over several headers", "192.0.2.1:80", "6.6.6.6", trusted, "6.6.6.6"},
		{"garbage hop stops the walk", "10.1.2.3:5555", "198.51.100.1, garbage", trusted, "10.1.2.3"},
		{"IPv6 by /64", "[2001:db9:1:2:3:4:5:6]:443", "", nil, "2001:db9:1:2::/64"},
		{"IPv4-mapped IPv6", "[::ffff:203.0.113.7]:443", "", nil, "203.0.113.7"},
		{"IPv6 hop with port", "[2001:db8::1]:443", "[2001:db9::5]:1234", trusted, "2001:db9::/64"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			if tc.xff != "" {
				r.Header.Add("X-Forwarded-For", tc.xff)
			}
			if got := clientKey(r, tc.trusted); got != tc.want {
				t.Fatalf("clientKey = %q, want %q", got, tc.want)
			}
		})
	}
}

// Concurrent requests of one key share one bucket: exactly the burst
// passes, however they interleave.
func TestRateLimitConcurrentTakes(t *testing.T) {
	l, err := newLimiter(RateLimitConfig{Read: tinyRead}, prometheus.NewRegistry(), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	allowed := 0
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			if ok, _ := l.take("tenant\x00acme", classRead, tinyRead, time.Now()); ok {
				mu.Lock()
				allowed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if allowed != tinyRead.Burst {
		t.Fatalf("%d of 64 concurrent requests allowed, want the burst %d", allowed, tinyRead.Burst)
	}
}

// BenchmarkRateLimitRefusal is the cost of refusing a flooding tenant's
// request: the work each request of a flood still makes the gateway do.
func BenchmarkRateLimitRefusal(b *testing.B) {
	conn := servicetest.Start(b, app.Spec(), servicetest.Options{Quiet: true})
	v, err := identity.NewVerifier(identity.VerifierConfig{HS256Secret: []byte(servicetest.Secret)})
	if err != nil {
		b.Fatal(err)
	}
	defer v.Close()
	_, gw := startGateway(b, Config{RateLimits: RateLimitConfig{Read: Budget{Rate: 0.001, Burst: 1}, Verifier: v}},
		[]Backend{{Name: "tenancy", Conn: conn, Register: handlers(tenancyv1.RegisterTenancyServiceHandlerClient, tenancyv1.NewTenancyServiceClient)}}, true)
	req := httptest.NewRequest(http.MethodGet, "/api/tenant/info", nil)
	req.Header.Set("Authorization", "Bearer "+token(b, "flood", "user"))
	gw.ServeHTTP(httptest.NewRecorder(), req) // spends the burst
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		w := httptest.NewRecorder()
		gw.ServeHTTP(w, req)
		if w.Code != http.StatusTooManyRequests {
			b.Fatalf("status %d", w.Code)
		}
	}
}

// With RefusalDelay a refusal is held (300ms ± 50%) before it is answered,
// unless the client leaves or too many are held already.
func TestRateLimitRefusalDelay(t *testing.T) {
	srv := limitedGateway(t, RateLimitConfig{Read: Budget{Rate: 0.01, Burst: 1}, RefusalDelay: 300 * time.Millisecond, MaxHeldRefusals: 1})
	acme := bearerOf(t, "acme", "user")
	if r := do(t, srv, "GET", "/api/tenant/info", "", "Authorization", acme); r.status != 200 {
		t.Fatalf("first read: %d", r.status)
	}
	start := time.Now()
	if r := do(t, srv, "GET", "/api/tenant/info", "", "Authorization", acme); r.status != 429 {
		t.Fatalf("second read: %d", r.status)
	}
	if took := time.Since(start); took < 150*time.Millisecond {
		t.Fatalf("refusal answered after %v, want it held 150 to 450ms", took)
	}
	// Two refusals at once: one is held, the other (over MaxHeldRefusals)
	// is answered at once.
	took := make(chan time.Duration, 2)
	for range 2 {
		go func() {
			start := time.Now()
			req, _ := http.NewRequest("GET", srv.URL+"/api/tenant/info", nil)
			req.Header.Set("Authorization", acme)
			if resp, err := srv.Client().Do(req); err == nil {
				resp.Body.Close()
			}
			took <- time.Since(start)
		}()
	}
	a, b := <-took, <-took
	if min(a, b) >= 100*time.Millisecond || max(a, b) < 150*time.Millisecond {
		t.Fatalf("two concurrent refusals took %v and %v, want one held and one not", a, b)
	}
	// A client that gives up is not held.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/tenant/info", nil)
	req.Header.Set("Authorization", acme)
	if _, err := srv.Client().Do(req); err == nil {
		t.Fatal("a held refusal answered before the client's 50ms deadline")
	}
	// Its place is free again: the next refusal is held.
	time.Sleep(100 * time.Millisecond)
	start = time.Now()
	do(t, srv, "GET", "/api/tenant/info", "", "Authorization", acme)
	if took := time.Since(start); took < 150*time.Millisecond {
		t.Fatalf("a refusal after a client gave up was answered after %v: the held place was not released", took)
	}
}
