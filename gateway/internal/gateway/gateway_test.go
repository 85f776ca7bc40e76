package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/service"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/services/tenancy/app"
)

// newGateway serves the gateway over httptest in front of the real tenancy
// service running in-process.
func newGateway(t *testing.T, authMode string) *httptest.Server {
	return newGatewayTB(t, authMode, false)
}

// newGatewayTB is newGateway for benchmarks and fuzz targets, which run quiet.
func newGatewayTB(t testing.TB, authMode string, quiet bool) *httptest.Server {
	t.Helper()
	conn := servicetest.Start(t, app.Spec(), servicetest.Options{AuthMode: authMode, Quiet: quiet})
	return serveLogged(t, []Backend{{Name: "tenancy", Conn: conn, Register: handlers(tenancyv1.RegisterTenancyServiceHandlerClient, tenancyv1.NewTenancyServiceClient)}}, quiet)
}

func serve(t testing.TB, backends []Backend) *httptest.Server { return serveLogged(t, backends, false) }

// backendGateway serves the gateway's own entry for the backend name (with
// its raw routes) in front of the real service spec, started with args.
func backendGateway(t *testing.T, name string, spec service.Spec, args ...string) *httptest.Server {
	t.Helper()
	conn := servicetest.Start(t, spec, servicetest.Options{AuthMode: "optional", Args: args})
	for _, b := range Backends() {
		if b.Name == name {
			b.Conn = conn
			return serve(t, []Backend{b})
		}
	}
	t.Fatalf("no %s backend", name)
	return nil
}

func serveLogged(t testing.TB, backends []Backend, quiet bool) *httptest.Server {
	t.Helper()
	srv, _ := startGateway(t, Config{}, backends, quiet)
	return srv
}

// startGateway serves a gateway configured by cfg (with the tests' body
// limit and call timeout when cfg leaves them zero) over httptest.
func startGateway(t testing.TB, cfg Config, backends []Backend, quiet bool) (*httptest.Server, *Gateway) {
	t.Helper()
	log := zap.NewNop()
	if !quiet {
		log = zaptest.NewLogger(t)
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 64 << 10
	}
	if cfg.CallTimeout == 0 {
		cfg.CallTimeout = 5 * time.Second
	}
	gw, err := New(context.Background(), cfg, backends, log)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	t.Cleanup(func() {
		srv.Close()
		gw.Close()
	})
	return srv, gw
}

func token(t testing.TB, tenant string, roles ...string) string {
	t.Helper()
	tok, err := identity.MintHS256([]byte(servicetest.Secret), identity.Claims{Subject: "u-" + tenant, TenantID: tenant, Roles: roles}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type reply struct {
	status  int
	header  http.Header
	raw     string
	body    map[string]any
	errCode string
}

func do(t *testing.T, srv *httptest.Server, method, path, body string, headers ...string) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if err := json.Unmarshal(raw, &r.body); err != nil {
		t.Fatalf("%s %s: not JSON (%d): %q", method, path, resp.StatusCode, raw)
	}
	if e, ok := r.body["error"].(map[string]any); ok {
		r.errCode, _ = e["reason"].(string)
	}
	return r
}

func TestTenantInfoSeedShape(t *testing.T) {
	srv := newGateway(t, "optional")
	r := do(t, srv, "GET", "/api/tenant/info", "")
	want := `{"ok":true,"tenant_id":"default","tenant_verified":false,"stats":{"total_events":1,"tenants":{"default":1},"denied_access":0,"cross_tenant_denied":0}}`
	if r.status != http.StatusOK || r.raw != want {
		t.Fatalf("got %d %s\nwant %s", r.status, r.raw, want)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("content type %q", ct)
	}
	if r.header.Get("X-Request-Id") == "" {
		t.Fatal("no X-Request-Id on the response")
	}
}

func TestIdentityThroughGateway(t *testing.T) {
	srv := newGateway(t, "optional")
	acme := "Bearer " + token(t, "acme", "user")
	admin := "Bearer " + token(t, "default", "admin")
	cases := []struct {
		name    string
		method  string
		path    string
		body    string
		headers []string
		status  int
		reason  string
	}{
		{"header names own tenant", "GET", "/api/tenant/info", "", []string{"Authorization", acme, "X-Tenant-ID", "acme"}, 200, ""},
		{"header names other tenant", "GET", "/api/tenant/info", "", []string{"Authorization", acme, "X-Tenant-ID", "globex"}, 403, "CROSS_TENANT_DENIED"},
		{"query names other tenant", "GET", "/api/tenant/info?tenant_id=globex", "", []string{"Authorization", acme}, 403, "CROSS_TENANT_DENIED"},
		{"path names other tenant", "GET", "/api/tenants/globex", "", []string{"Authorization", acme}, 403, "CROSS_TENANT_DENIED"},
		{"header and query disagree", "GET", "/api/tenant/info?tenant_id=globex", "", []string{"X-Tenant-ID", "acme"}, 400, "TENANT_CONFLICT"},
		{"garbage token", "GET", "/api/tenant/info", "", []string{"Authorization", "Bearer not.a.token"}, 401, "TOKEN_INVALID"},
		{"anonymous cannot create tenants", "POST", "/api/tenants", `{"tenant_id":"acme"}`, nil, 403, ""},
		{"admin creates tenant", "POST", "/api/tenants", `{"tenant_id":"acme"}`, []string{"Authorization", admin}, 200, ""},
		{"admin reads another tenant", "GET", "/api/tenants/acme", "", []string{"Authorization", admin}, 200, ""},
		{"admin cannot write as another tenant", "POST", "/api/tenants", `{"tenant_id":"globex"}`, []string{"Authorization", admin, "X-Tenant-ID", "acme"}, 403, ""},
		{"missing required query field", "GET", "/api/tenant/test-access", "", nil, 400, "FIELD_REQUIRED"},
		{"malformed JSON", "POST", "/api/tenants", `{"tenant_id":`, []string{"Authorization", admin}, 400, "INVALID_REQUEST"},
		{"unknown JSON field", "POST", "/api/tenants", `{"tenant":"x"}`, []string{"Authorization", admin}, 400, "INVALID_REQUEST"},
		{"wrong JSON type", "POST", "/api/tenants", `{"tenant_id":5}`, []string{"Authorization", admin}, 400, "INVALID_REQUEST"},
		{"negative page size", "GET", "/api/tenants?page_size=-1", "", []string{"Authorization", admin}, 400, "PAGE_SIZE_INVALID"},
		{"non-numeric page size", "GET", "/api/tenants?page_size=abc", "", []string{"Authorization", admin}, 400, "INVALID_REQUEST"},
		{"huge page size is capped", "GET", "/api/tenants?page_size=2000000000", "", []string{"Authorization", admin}, 200, ""},
		{"bad page token", "GET", "/api/tenants?page_token=zzz", "", []string{"Authorization", admin}, 400, "PAGE_TOKEN_INVALID"},
		{"unknown path", "GET", "/api/nothing", "", nil, 404, "PATH_NOT_FOUND"},
		{"wrong method", "DELETE", "/api/tenant/info", "", nil, 405, "METHOD_NOT_ALLOWED"},
		{"oversized body", "POST", "/api/tenants", `{"tenant_id":"` + strings.Repeat("a", 70<<10) + `"}`, []string{"Authorization", admin}, 413, "BODY_TOO_LARGE"},
		{"invalid UTF-8", "POST", "/api/tenants", "{\"tenant_id\":\"\xff\xfe\"}", []string{"Authorization", admin}, 400, "INVALID_REQUEST"},
		{"deep nesting", "POST", "/api/tenants", strings.Repeat("[", 10000) + strings.Repeat("]", 10000), []string{"Authorization", admin}, 400, "INVALID_REQUEST"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, srv, tc.method, tc.path, tc.body, tc.headers...)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.raw)
			}
			if tc.status >= 400 {
				if r.body["ok"] != false {
					t.Fatalf("error without ok=false: %s", r.raw)
				}
				if tc.reason != "" && r.errCode != tc.reason {
					t.Fatalf("reason %q, want %q: %s", r.errCode, tc.reason, r.raw)
				}
				e := r.body["error"].(map[string]any)
				if e["code"] != float64(tc.status) || e["message"] == "" || e["status"] == "" {
					t.Fatalf("incomplete error envelope: %s", r.raw)
				}
			} else if r.body["ok"] != true {
				t.Fatalf("success without ok=true: %s", r.raw)
			}
		})
	}
}

func TestListTenantsPaginates(t *testing.T) {
	srv := newGateway(t, "optional")
	admin := "Bearer " + token(t, "default", "admin")
	for _, id := range []string{"alpha", "bravo", "charlie"} {
		if r := do(t, srv, "POST", "/api/tenants", `{"tenant_id":"`+id+`"}`, "Authorization", admin); r.status != 200 {
			t.Fatalf("create %s: %s", id, r.raw)
		}
	}
	var seen []string
	next := ""
	for page := 0; page < 5; page++ {
		r := do(t, srv, "GET", "/api/tenants?page_size=2&page_token="+next, "", "Authorization", admin)
		if r.status != 200 {
			t.Fatalf("list: %s", r.raw)
		}
		for _, tn := range r.body["tenants"].([]any) {
			seen = append(seen, tn.(map[string]any)["tenant_id"].(string))
		}
		next = r.body["next_page_token"].(string)
		if next == "" {
			break
		}
	}
	if strings.Join(seen, ",") != "alpha,bravo,charlie" {
		t.Fatalf("pages gave %v", seen)
	}
	// A non-admin sees only its own tenant.
	r := do(t, srv, "GET", "/api/tenants", "", "Authorization", "Bearer "+token(t, "bravo", "user"))
	if got := r.body["tenants"].([]any); len(got) != 1 || got[0].(map[string]any)["tenant_id"] != "bravo" {
		t.Fatalf("bravo sees %s", r.raw)
	}
}

func TestHealthOpenAPIAndMetrics(t *testing.T) {
	conn := servicetest.Start(t, app.Spec(), servicetest.Options{})
	srv, gw := startGateway(t, Config{}, []Backend{{Name: "tenancy", Conn: conn, Register: handlers(tenancyv1.RegisterTenancyServiceHandlerClient, tenancyv1.NewTenancyServiceClient)}}, false)
	r := do(t, srv, "GET", "/health", "")
	if r.status != 200 || r.body["status"] != "ok" || r.body["services"].(map[string]any)["tenancy"] != "SERVING" {
		t.Fatalf("/health: %s", r.raw)
	}
	r = do(t, srv, "GET", "/openapi.json", "")
	paths := r.body["paths"].(map[string]any)
	for _, p := range []string{
		// The seed's eleven.
		"/api/tenant/info", "/api/tenant/test-access", "/api/finops/summary", "/api/finops/tenants", "/api/audit/chain",
		"/api/compliance/webhook", "/api/queue/enqueue", "/api/queue/status", "/api/growth/referrals",
		"/api/growth/referral/create", "/api/growth/payouts/export",
		// Some of ours, and the gateway's own.
		"/api/tenants", "/api/tenants/{tenant_id}", "/r/{referral_code}", "/api/growth/referral/events",
		"/health", "/openapi.json"} {
		if paths[p] == nil {
			t.Errorf("openapi lacks %s", p)
		}
	}
	if paths["/metrics"] != nil {
		t.Error("openapi lists /metrics, which the API port does not serve")
	}
	// Enums are documented by the JSON names the API takes, not proto names.
	defs := r.body["components"].(map[string]any)["schemas"].(map[string]any)
	for def, want := range map[string]string{"v1Priority": "[ critical high normal low]", "v1JobStatus": "[ queued processing completed failed dead cancelled]",
		"v1Severity": "[ low medium high critical]"} {
		if d, _ := defs[def].(map[string]any); d == nil || fmt.Sprint(d["enum"]) != want || d["default"] != "" {
			t.Errorf("openapi %s: %v", def, d)
		}
	}
	do(t, srv, "GET", "/api/tenant/info", "")
	// /metrics is on the admin handler only; on the API port it is an
	// unknown path like any other.
	if r := do(t, srv, "GET", "/metrics", ""); r.status != http.StatusNotFound || r.errCode != "PATH_NOT_FOUND" {
		t.Fatalf("/metrics on the API port: %d %s", r.status, r.raw)
	}
	admin := httptest.NewServer(gw.AdminHandler())
	defer admin.Close()
	resp, err := admin.Client().Get(admin.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(b), `echopilot_gateway_request_duration_seconds_count{code="200",method="GET",pattern="/api/tenant/info"}`) {
		t.Fatalf("metrics lack the route pattern:\n%s", b)
	}
	resp, err = admin.Client().Get(admin.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz on the admin handler: %d", resp.StatusCode)
	}
}

func TestRequestIDForwardedAndEchoed(t *testing.T) {
	srv := newGateway(t, "optional")
	r := do(t, srv, "GET", "/api/tenant/info", "", "X-Request-ID", "req-123")
	if r.header.Get("X-Request-Id") != "req-123" {
		t.Fatalf("request id not echoed: %v", r.header)
	}
	r = do(t, srv, "GET", "/api/tenants/nosuch", "", "X-Request-ID", "req-456", "Authorization", "Bearer "+token(t, "default", "admin"))
	if r.status != 404 || r.body["error"].(map[string]any)["request_id"] != "req-456" {
		t.Fatalf("error lacks request id: %s", r.raw)
	}
}

func TestBackendDownIs503(t *testing.T) {
	// Nothing listens on port 1 of loopback.
	conn, err := grpc.NewClient("127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	srv := serve(t, []Backend{{Name: "tenancy", Conn: conn, Register: handlers(tenancyv1.RegisterTenancyServiceHandlerClient, tenancyv1.NewTenancyServiceClient)}})
	r := do(t, srv, "GET", "/api/tenant/info", "")
	if r.status != http.StatusServiceUnavailable || r.errCode != "BACKEND_UNAVAILABLE" {
		t.Fatalf("got %d %s", r.status, r.raw)
	}
	r = do(t, srv, "GET", "/health", "")
	if r.status != 200 || r.body["status"] != "degraded" {
		t.Fatalf("/health with tenancy down: %s", r.raw)
	}
}
