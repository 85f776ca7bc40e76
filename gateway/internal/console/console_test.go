package console

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/echopilot/echopilot/gateway/internal/backendtest"
	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	"github.com/echopilot/echopilot/platform/devstack"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/platform/store/storetest"
)

// stack is the five real services in-process (auth required) and the
// console in front of them over httptest.
type stack struct {
	srv   *httptest.Server
	con   *Console
	conns map[string]grpc.ClientConnInterface
}

func startStack(t *testing.T, db storetest.Backend, cfg Config) *stack {
	t.Helper()
	conns := map[string]grpc.ClientConnInterface{}
	for name, c := range backendtest.Start(t, db) {
		conns[name] = c
	}
	health := func(ctx context.Context) map[string]string {
		out := map[string]string{}
		for name, c := range conns {
			resp, err := healthpb.NewHealthClient(c).Check(ctx, &healthpb.HealthCheckRequest{})
			out[name] = "UNREACHABLE"
			if err == nil {
				out[name] = resp.GetStatus().String()
			}
		}
		return out
	}
	traffic := func() Traffic {
		return Traffic{Requests: 42, Errors: 3, Minutes: []MinuteCount{{Start: time.Now(), Requests: 42, Errors: 3}}}
	}
	con, err := New(cfg, Deps{Conns: conns, Health: health, Traffic: traffic}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(con)
	t.Cleanup(srv.Close)
	return &stack{srv: srv, con: con, conns: conns}
}

// sqlite is the backend of the tests that are not about storage.
var sqlite = storetest.Backends()[0]

func mint(t *testing.T, tenant string, roles ...string) string {
	t.Helper()
	tok, err := identity.MintHS256([]byte(servicetest.Secret), identity.Claims{Subject: "u@" + tenant, TenantID: tenant, Roles: roles}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func asToken(tok string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
}

// browser is a cookie-keeping client that does not follow redirects.
type browser struct {
	t    *testing.T
	st   *stack
	c    *http.Client
	csrf string
}

func (st *stack) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, st: st, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type page struct {
	status int
	body   string
	header http.Header
}

func (b *browser) get(path string) page {
	b.t.Helper()
	resp, err := b.c.Get(b.st.srv.URL + path)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.read(resp)
}

func (b *browser) post(path string, form url.Values) page {
	b.t.Helper()
	resp, err := b.c.PostForm(b.st.srv.URL+path, form)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.read(resp)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) read(resp *http.Response) page {
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	p := page{status: resp.StatusCode, body: string(raw), header: resp.Header}
	if m := csrfField.FindStringSubmatch(p.body); m != nil {
		b.csrf = m[1]
	}
	return p
}

// login signs in with tok through the form and fails the test unless it
// succeeds.
func (b *browser) login(tok string) {
	b.t.Helper()
	if p := b.get("/console/login"); p.status != http.StatusOK {
		b.t.Fatalf("login page: %d", p.status)
	}
	p := b.post("/console/login", url.Values{"csrf": {b.csrf}, "token": {tok}, "next": {"/console/"}})
	if p.status != http.StatusSeeOther {
		b.t.Fatalf("login: %d %s", p.status, p.body)
	}
	if p := b.get("/console/"); p.status != http.StatusOK { // picks up the session's CSRF token
		b.t.Fatalf("overview after login: %d", p.status)
	}
}

func want(t *testing.T, p page, status int, texts ...string) {
	t.Helper()
	if p.status != status {
		t.Fatalf("status %d, want %d:\n%s", p.status, status, p.body)
	}
	for _, s := range texts {
		if !strings.Contains(p.body, s) {
			t.Fatalf("page lacks %q:\n%s", s, p.body)
		}
	}
}

func enqueue(t *testing.T, st *stack, tok, typ string) string {
	t.Helper()
	payload, _ := structpb.NewStruct(map[string]any{"prompt": "hello from " + typ})
	resp, err := queuev1.NewQueueServiceClient(st.conns["queue"]).EnqueueJob(asToken(tok), &queuev1.EnqueueJobRequest{Type: typ, Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetJobId()
}

func TestLoginRefusesBadTokens(t *testing.T) {
	st := startStack(t, sqlite, Config{})
	forged, err := identity.MintHS256([]byte("another-secret-0123456789abcdef0123456789"), identity.Claims{Subject: "x", TenantID: "default", Roles: []string{"admin"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"garbage": "not-a-token", "forged": forged, "empty": ""} {
		t.Run(name, func(t *testing.T) {
			b := st.browser(t)
			b.get("/console/login")
			p := b.post("/console/login", url.Values{"csrf": {b.csrf}, "token": {tok}})
			want(t, p, http.StatusUnauthorized, "Sign in", `class="error"`)
			for _, c := range b.c.Jar.Cookies(mustURL(t, st.srv.URL+"/console/")) {
				if c.Name == sessionCookie {
					t.Fatal("a refused token got a session cookie")
				}
			}
			if p := b.get("/console/queue"); p.status != http.StatusSeeOther {
				t.Fatalf("queue without a session: %d, want a redirect to sign in", p.status)
			}
		})
	}
	t.Run("no csrf", func(t *testing.T) {
		b := st.browser(t)
		p := b.post("/console/login", url.Values{"token": {mint(t, "default", "admin")}})
		want(t, p, http.StatusForbidden, "CSRF_TOKEN_MISMATCH")
	})
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestSessionCookie(t *testing.T) {
	st := startStack(t, sqlite, Config{})
	b := st.browser(t)
	b.get("/console/login")
	p := b.post("/console/login", url.Values{"csrf": {b.csrf}, "token": {mint(t, "acme")}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("login: %d", p.status)
	}
	var got *http.Cookie
	for _, c := range (&http.Response{Header: p.header}).Cookies() {
		if c.Name == sessionCookie {
			got = c
		}
	}
	if got == nil {
		t.Fatal("no session cookie")
	}
	if !got.HttpOnly || got.SameSite != http.SameSiteStrictMode || got.Path != Prefix || got.Secure {
		t.Fatalf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/console/, not Secure on loopback HTTP", got)
	}
	if d := time.Until(got.Expires); d < 55*time.Minute || d > 61*time.Minute {
		t.Fatalf("cookie expires in %v, want the token's hour", d)
	}
	if strings.Contains(got.Value, "acme") {
		t.Fatal("the session cookie is readable: want it sealed")
	}
	// Anywhere but loopback plain HTTP, the cookie is Secure.
	r := httptest.NewRequest("GET", "/console/", nil)
	r.RemoteAddr = "192.0.2.10:4431"
	if !secureCookie(r) {
		t.Fatal("a non-loopback request got a cookie without Secure")
	}
	// Logout clears it.
	b.get("/console/")
	p = b.post("/console/logout", url.Values{"csrf": {b.csrf}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("logout: %d", p.status)
	}
	if p := b.get("/console/"); p.status != http.StatusSeeOther {
		t.Fatalf("after logout: %d, want a redirect to sign in", p.status)
	}
}

// TestSessionSpansReplicas: a console with the same key opens another's
// session; one with another key does not.
func TestSessionSpansReplicas(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef-replicas")
	a, err := newSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := newSealer(key)
	other, _ := newSealer(nil)
	v, err := a.seal(&session{Token: "t", Tenant: "acme", CSRF: "c", Expires: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if s, err := b.open(v); err != nil || s.Tenant != "acme" {
		t.Fatalf("same key: %v %v", s, err)
	}
	if _, err := other.open(v); err == nil {
		t.Fatal("another key opened the session")
	}
	tampered := []byte(v)
	tampered[len(tampered)/2] ^= 1
	if _, err := b.open(string(tampered)); err == nil {
		t.Fatal("a tampered session opened")
	}
}

func TestPagesAndActions(t *testing.T) {
	for _, db := range storetest.Backends() {
		t.Run(db.Name, func(t *testing.T) { testPagesAndActions(t, db) })
	}
}

func testPagesAndActions(t *testing.T, db storetest.Backend) {
	st := startStack(t, db, Config{})
	acme := mint(t, "acme")
	job := enqueue(t, st, acme, "report_gen")
	globexJob := enqueue(t, st, mint(t, "globex"), "summarize")
	if _, err := auditv1.NewAuditServiceClient(st.conns["audit"]).AppendEntries(asToken(acme), &auditv1.AppendEntriesRequest{
		Entries: []*auditv1.NewEntry{{EventType: "login", User: "alice", Action: "sign_in", Resource: "console"}},
	}); err != nil {
		t.Fatal(err)
	}

	admin := st.browser(t)
	admin.login(mint(t, "default", "admin"))
	t.Run("every page as admin", func(t *testing.T) {
		for path, texts := range map[string][]string{
			"/console/":      {"Overview", "SERVING", "queue", "42", "Requests per minute", "<svg"},
			"/console/queue": {"Queue", "queued", "No jobs here"},
			"/console/queue?status=queued&tenant=globex":  {"summarize"},
			"/console/workers":                            {"Workers", "No worker has been seen"},
			"/console/audit?tenant=acme":                  {"Audit log", "sign_in", "verifies", "inclusion proof"},
			"/console/webhooks":                           {"Webhooks", "Endpoints", "Delivery attempts"},
			"/console/finops":                             {"FinOps", "Margin", "30 days"},
			"/console/finops?days=7":                      {"7 days"},
			"/console/growth":                             {"Growth", "Campaigns", "payouts.csv"},
			"/console/tenants":                            {"Tenants", "Access decisions", "Create tenant"},
			"/console/queue/jobs/" + job + "?tenant=acme": {job, "hello from report_gen", "Lease holder", "acme"},
			"/console/queue?tenant=acme":                  {"Viewing tenant", "report_gen"},
			"/console/static/htmx.min.js":                 {"htmx"},
			"/console/static/console.css":                 {"--accent"},
		} {
			p := admin.get(path)
			want(t, p, http.StatusOK, texts...)
			if csp := p.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
				t.Fatalf("%s: CSP %q", path, csp)
			}
			if p.header.Get("X-Content-Type-Options") != "nosniff" || p.header.Get("Referrer-Policy") != "same-origin" {
				t.Fatalf("%s: headers %v", path, p.header)
			}
		}
	})
	t.Run("downloads", func(t *testing.T) {
		want(t, admin.get("/console/audit/checkpoint.json?tenant=acme"), http.StatusOK, `"checkpoint"`, `"tree_size"`)
		want(t, admin.get("/console/audit/proof.json?tenant=acme&seq=1"), http.StatusOK, `"leaf_index"`)
		want(t, admin.get("/console/audit/proof.json?seq=x"), http.StatusBadRequest, "INVALID_SEQ")
		p := admin.get("/console/growth/payouts.csv")
		want(t, p, http.StatusOK, "referral_code")
		if !strings.Contains(p.header.Get("Content-Disposition"), "payouts.csv") {
			t.Fatalf("payouts: %v", p.header)
		}
	})
	t.Run("bad input is a 4xx page", func(t *testing.T) {
		want(t, admin.get("/console/queue?status=nope"), http.StatusBadRequest, "INVALID_STATUS")
		want(t, admin.get("/console/queue/jobs/no-such-job"), http.StatusNotFound)
		want(t, admin.get("/console/nowhere"), http.StatusNotFound)
		want(t, admin.get("/console/actions/nope"), http.StatusNotFound, "NO_SUCH_ACTION")
	})

	user := st.browser(t)
	user.login(acme)
	t.Run("tenant user sees own tenant only", func(t *testing.T) {
		p := user.get("/console/queue")
		want(t, p, http.StatusOK, "report_gen")
		if strings.Contains(p.body, "summarize") {
			t.Fatal("acme's queue page shows globex's job")
		}
		want(t, user.get("/console/queue?tenant=globex"), http.StatusForbidden, "CROSS_TENANT_DENIED")
		want(t, user.get("/console/audit?tenant=globex"), http.StatusForbidden)
		want(t, user.get("/console/finops?tenant=globex"), http.StatusForbidden)
		want(t, user.get("/console/webhooks?tenant=globex"), http.StatusForbidden)
		want(t, user.get("/console/queue/jobs/"+globexJob), http.StatusNotFound)
		want(t, user.get("/console/actions/create_tenant"), http.StatusOK) // the form shows; tenancy refuses the write
		want(t, user.post("/console/actions/create_tenant", url.Values{"csrf": {user.csrf}, "confirm": {"yes"}, "tenant_id": {"mine"}}), http.StatusForbidden)
	})
	t.Run("cancel a job with confirmation", func(t *testing.T) {
		p := user.get("/console/queue/jobs/" + job)
		want(t, p, http.StatusOK, "/console/actions/cancel_job?job_id="+job)
		want(t, user.get("/console/actions/cancel_job?job_id="+job), http.StatusOK, "Yes, cancel the job")
		want(t, user.post("/console/actions/cancel_job", url.Values{"job_id": {job}, "confirm": {"yes"}}), http.StatusForbidden, "CSRF_TOKEN_MISMATCH")
		want(t, user.post("/console/actions/cancel_job", url.Values{"job_id": {job}, "confirm": {"yes"}, "csrf": {"forged"}}), http.StatusForbidden, "CSRF_TOKEN_MISMATCH")
		want(t, user.post("/console/actions/cancel_job", url.Values{"job_id": {job}, "csrf": {user.csrf}}), http.StatusBadRequest, "CONFIRMATION_REQUIRED")
		// Another tenant's job: the queue refuses, the console says 404.
		want(t, user.post("/console/actions/cancel_job", url.Values{"job_id": {globexJob}, "confirm": {"yes"}, "csrf": {user.csrf}}), http.StatusNotFound)
		p = user.post("/console/actions/cancel_job", url.Values{"job_id": {job}, "confirm": {"yes"}, "csrf": {user.csrf}})
		if p.status != http.StatusSeeOther || !strings.HasPrefix(p.header.Get("Location"), "/console/queue/jobs/"+job) {
			t.Fatalf("cancel: %d %q", p.status, p.header.Get("Location"))
		}
		want(t, user.get(p.header.Get("Location")), http.StatusOK, "Cancel job: done.", "cancelled")
		got, err := queuev1.NewQueueServiceClient(st.conns["queue"]).GetJob(asToken(acme), &queuev1.GetJobRequest{JobId: job})
		if err != nil || got.GetJob().GetStatus() != queuev1.JobStatus_JOB_STATUS_CANCELLED {
			t.Fatalf("job after cancel: %v %v", got.GetJob().GetStatus(), err)
		}
	})
	t.Run("admin reads across tenants but cannot write there", func(t *testing.T) {
		other := enqueue(t, st, acme, "report_gen")
		want(t, admin.get("/console/queue/jobs/"+other+"?tenant=acme"), http.StatusOK, other)
		want(t, admin.post("/console/actions/cancel_job", url.Values{"job_id": {other}, "tenant": {"acme"}, "confirm": {"yes"}, "csrf": {admin.csrf}}), http.StatusForbidden)
	})
	t.Run("admin creates a tenant", func(t *testing.T) {
		want(t, admin.get("/console/actions/create_tenant"), http.StatusOK, "I mean to create this tenant")
		want(t, admin.post("/console/actions/create_tenant", url.Values{"csrf": {admin.csrf}, "tenant_id": {"newco"}, "display_name": {"New Co"}}), http.StatusBadRequest, "CONFIRMATION_REQUIRED")
		p := admin.post("/console/actions/create_tenant", url.Values{"csrf": {admin.csrf}, "confirm": {"yes"}, "tenant_id": {"newco"}, "display_name": {"New Co"}})
		if p.status != http.StatusSeeOther {
			t.Fatalf("create tenant: %d %s", p.status, p.body)
		}
		want(t, admin.get("/console/tenants?done=create_tenant"), http.StatusOK, "newco", "New Co", "Create tenant: done.")
		want(t, admin.post("/console/actions/create_tenant", url.Values{"csrf": {admin.csrf}, "confirm": {"yes"}, "tenant_id": {"Not A Tenant!"}}), http.StatusBadRequest)
	})
}

func TestSignedOutRequests(t *testing.T) {
	st := startStack(t, sqlite, Config{})
	b := st.browser(t)
	p := b.get("/console/queue?status=failed")
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.header.Get("Location"), "/console/login?next=") {
		t.Fatalf("signed out GET: %d %q", p.status, p.header.Get("Location"))
	}
	want(t, b.post("/console/actions/cancel_job", url.Values{"job_id": {"x"}, "confirm": {"yes"}}), http.StatusForbidden, "SESSION_REQUIRED")
	if got := safeNext("https://evil.example/"); got != Prefix {
		t.Fatalf("safeNext let %q through", got)
	}
	for _, next := range []string{"//evil.example/console/", "/console/..//evil.example", "/console/\\evil.example"} {
		if got := safeNext(next); got != Prefix {
			t.Fatalf("safeNext let %q through", got)
		}
	}
	if got := safeNext("/console/queue?status=failed"); got != "/console/queue?status=failed" {
		t.Fatalf("safeNext(/console/queue?status=failed) = %q", got)
	}
}

func TestDevTicket(t *testing.T) {
	tok := mint(t, "default", "admin")
	// The file as make run's devstack writes it.
	secret, path, link, err := devstack.ConsoleTicket(t.TempDir(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if link != "/console/login?ticket="+secret {
		t.Fatalf("sign-in link %q", link)
	}
	ticket, err := LoadDevTicket(path)
	if err != nil {
		t.Fatal(err)
	}
	st := startStack(t, sqlite, Config{DevTicket: ticket})
	b := st.browser(t)
	want(t, b.get("/console/login?ticket=wrong-0123456789abcdef"), http.StatusForbidden, "not valid")
	p := b.get(link)
	if p.status != http.StatusSeeOther {
		t.Fatalf("ticket: %d %s", p.status, p.body)
	}
	want(t, b.get("/console/"), http.StatusOK, "platform admin")
	// Single use.
	want(t, st.browser(t).get(link), http.StatusForbidden, "not valid")

	// Expired.
	old := &DevTicket{Ticket: "ticket-expired-0123456789", Token: tok, Expires: time.Now().Add(-time.Minute)}
	st2 := startStack(t, sqlite, Config{DevTicket: old})
	want(t, st2.browser(t).get("/console/login?ticket=ticket-expired-0123456789"), http.StatusForbidden, "not valid")
	// None configured.
	want(t, st2.browser(t).get("/console/login?ticket=anything-at-all-0123"), http.StatusForbidden)
}

func TestBarChart(t *testing.T) {
	ch := barChart([]bar{{Label: "a", Value: 10, Alt: 5}, {Label: "b", Value: 0}}, "x", "y")
	if ch.Empty || len(ch.Bars) != 2 || ch.Bars[0].H != chartH || ch.Bars[0].AltH != chartH/2 || ch.Bars[1].H != 0 {
		t.Fatalf("chart %+v", ch)
	}
	if !barChart(nil, "x", "").Empty || !barChart([]bar{{Label: "z"}}, "x", "").Empty {
		t.Fatal("an empty series is not Empty")
	}
}
