package console

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/echopilot/echopilot/gateway/internal/backendtest"
	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	growthv1 "github.com/echopilot/echopilot/gen/go/echopilot/growth/v1"
	outboxv1 "github.com/echopilot/echopilot/gen/go/echopilot/outbox/v1"
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
	return startStackArgs(t, db, cfg, nil)
}

// startStackArgs is startStack with flags of each service's own.
func startStackArgs(t *testing.T, db storetest.Backend, cfg Config, args map[string][]string) *stack {
	t.Helper()
	conns := map[string]grpc.ClientConnInterface{}
	for name, c := range backendtest.StartEach(t, db, args) {
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
	token := mint(t, "acme")
	p := b.post("/console/login", url.Values{"csrf": {b.csrf}, "token": {token}})
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
	// Sealed: no part of the token (header, claims or signature, each
	// long enough that chance cannot produce it) shows through.
	for _, part := range strings.Split(token, ".") {
		if strings.Contains(got.Value, part) {
			t.Fatalf("the session cookie carries the token's %q: want it sealed", part)
		}
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
			"/console/outbox?service=queue":               {"Outbox dead letters", "No dead events in queue"},
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
	t.Run("priority filter", func(t *testing.T) {
		// acme's jobs are of normal priority: the queue filters by it.
		want(t, admin.get("/console/queue?tenant=acme&priority=normal"), http.StatusOK, job)
		if p := admin.get("/console/queue?tenant=acme&priority=high"); p.status != http.StatusOK || strings.Contains(p.body, job) {
			t.Fatalf("high jobs of acme: %d, listing %s", p.status, job)
		}
		want(t, admin.get("/console/queue?priority=urgent"), http.StatusBadRequest, "INVALID_PRIORITY")
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
		// The action is in acme's audit log, with the person who made it.
		logged, err := auditv1.NewAuditServiceClient(st.conns["audit"]).GetChain(asToken(acme),
			&auditv1.GetChainRequest{EventType: "console.cancel_job"})
		if err != nil || len(logged.GetEntries()) != 1 || logged.GetEntries()[0].GetUser() != "u@acme" ||
			logged.GetEntries()[0].GetDetails().GetFields()["job_id"].GetStringValue() != job {
			t.Fatalf("audit log after the cancel: %v, %v", logged.GetEntries(), err)
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
	ch := barChart([]bar{{Label: "a", Values: []float64{10, 5}}, {Label: "b", Values: []float64{0, 0}}}, "x", "y")
	if ch.Empty || len(ch.Bars) != 2 || len(ch.Bars[0].Rects) != 2 || ch.Bars[0].Rects[0].H != chartH || ch.Bars[0].Rects[1].H != chartH/2 || ch.Bars[1].Rects[0].H != 0 {
		t.Fatalf("chart %+v", ch)
	}
	if ch.Bars[0].Rects[1].Class != "s1" || ch.Series[1].Name != "y" {
		t.Fatalf("series %+v", ch)
	}
	// A loss hangs below the zero line.
	ch = barChart([]bar{{Label: "d", Values: []float64{30, -10}}}, "revenue", "profit")
	if ch.ZeroY != chartH*3/4 || ch.Bars[0].Rects[1].Y != ch.ZeroY || ch.Bars[0].Rects[1].H != chartH/4 || ch.Bars[0].Rects[0].Y != 0 {
		t.Fatalf("negative chart %+v", ch)
	}
	if !barChart(nil, "x", "").Empty || !barChart([]bar{{Label: "z", Values: []float64{0}}}, "x").Empty {
		t.Fatal("an empty series is not Empty")
	}
}

// hook is a webhook receiver on loopback that answers 500 while failing
// and counts the deliveries it accepted.
type hook struct {
	mu       sync.Mutex
	failing  bool
	accepted int
	url      string
}

func newHook(t *testing.T) *hook {
	h := &hook{failing: true}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.failing {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		h.accepted++
	}))
	t.Cleanup(srv.Close)
	h.url = srv.URL + "/hook"
	return h
}

func (h *hook) fail(f bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failing = f
}

func (h *hook) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.accepted
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// latestOutcomes are the outcomes of the latest attempt of each delivery
// to endpoint, by delivery id.
func latestOutcomes(t *testing.T, c auditv1.AuditServiceClient, ctx context.Context, endpoint string) map[string]string {
	t.Helper()
	res, err := c.ListDeliveryAttempts(ctx, &auditv1.ListDeliveryAttemptsRequest{EndpointId: endpoint, PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, a := range res.GetAttempts() { // newest first
		if _, ok := out[a.GetDeliveryId()]; !ok {
			out[a.GetDeliveryId()] = a.GetOutcome()
		}
	}
	return out
}

// deadOne appends a critical entry for acme and waits until its delivery
// to endpoint is dead, returning the delivery id.
func deadOne(t *testing.T, c auditv1.AuditServiceClient, ctx context.Context, endpoint string) string {
	t.Helper()
	before := latestOutcomes(t, c, ctx, endpoint)
	if _, err := c.AppendEntries(ctx, &auditv1.AppendEntriesRequest{Entries: []*auditv1.NewEntry{{
		EventType: "user.login", User: "alice", Action: "sign_in", Resource: "console", Severity: auditv1.Severity_SEVERITY_CRITICAL}}}); err != nil {
		t.Fatal(err)
	}
	var id string
	waitUntil(t, "a dead delivery", func() bool {
		for d, o := range latestOutcomes(t, c, ctx, endpoint) {
			if _, old := before[d]; !old && o == "dead" {
				id = d
				return true
			}
		}
		return false
	})
	// The attempt is recorded before the relay marks its outbox event dead,
	// in another transaction; redelivery and requeue take marked events.
	admin := asToken(mint(t, "default", "admin"))
	waitUntil(t, "the event marked dead", func() bool {
		r, err := c.ListDeadEvents(admin, &outboxv1.ListDeadEventsRequest{PageSize: 100})
		return err == nil && slices.ContainsFunc(r.GetEvents(), func(e *outboxv1.DeadEvent) bool { return e.GetId() == id })
	})
	return id
}

// refusals checks the refusals every action shares: no CSRF token, no
// confirmation, and (when other is set) another tenant's object, which
// the backend's NotFound turns into a 404 page.
func refusals(t *testing.T, owner, other *browser, action string, form url.Values) {
	t.Helper()
	path := "/console/actions/" + action
	with := func(kv ...string) url.Values {
		f := url.Values{}
		for k, v := range form {
			f[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			f.Set(kv[i], kv[i+1])
		}
		return f
	}
	want(t, owner.post(path, with("confirm", "yes")), http.StatusForbidden, "CSRF_TOKEN_MISMATCH")
	want(t, owner.post(path, with("confirm", "yes", "csrf", "forged")), http.StatusForbidden, "CSRF_TOKEN_MISMATCH")
	want(t, owner.post(path, with("csrf", owner.csrf)), http.StatusBadRequest, "CONFIRMATION_REQUIRED")
	if other != nil {
		want(t, other.post(path, with("confirm", "yes", "csrf", other.csrf)), http.StatusNotFound, "NOT_FOUND")
	}
}

// done posts action confirmed and follows its redirect.
func (b *browser) done(action string, form url.Values, texts ...string) page {
	b.t.Helper()
	form.Set("csrf", b.csrf)
	form.Set("confirm", "yes")
	p := b.post("/console/actions/"+action, form)
	if p.status != http.StatusSeeOther {
		b.t.Fatalf("%s: %d %s", action, p.status, p.body)
	}
	next := b.get(p.header.Get("Location"))
	want(b.t, next, http.StatusOK, texts...)
	return next
}

func TestRepairActions(t *testing.T) {
	for _, db := range storetest.Backends() {
		t.Run(db.Name, func(t *testing.T) { testRepairActions(t, db) })
	}
}

func testRepairActions(t *testing.T, db storetest.Backend) {
	st := startStackArgs(t, db, Config{}, map[string][]string{
		// Loopback receivers, two quick attempts before a delivery is dead.
		"audit":  {"--outbound-allow=127.0.0.1/32", "--webhook-retry-base=20ms", "--webhook-retry-cap=100ms", "--webhook-max-attempts=2"},
		"growth": {"--commission-hold=0s"},
	})
	acmeTok := mint(t, "acme")
	acmeCtx := asToken(acmeTok)
	ac := auditv1.NewAuditServiceClient(st.conns["audit"])
	h := newHook(t)
	created, err := ac.CreateEndpoint(acmeCtx, &auditv1.CreateEndpointRequest{Url: h.url})
	if err != nil {
		t.Fatal(err)
	}
	ep := created.GetEndpoint().GetEndpointId()
	dead := deadOne(t, ac, acmeCtx, ep)

	acme, globex, admin := st.browser(t), st.browser(t), st.browser(t)
	acme.login(acmeTok)
	globex.login(mint(t, "globex"))
	admin.login(mint(t, "default", "admin"))

	t.Run("webhooks page", func(t *testing.T) {
		p := acme.get("/console/webhooks")
		want(t, p, http.StatusOK, ep, "enabled", "every type", "high", dead, ">dead<",
			"/console/actions/redeliver_delivery?delivery_id="+dead,
			"/console/actions/redeliver_endpoint?endpoint_id="+ep, "/console/actions/disable_endpoint?endpoint_id="+ep,
			"/console/actions/update_endpoint?", "/console/actions/rotate_endpoint_secret?endpoint_id="+ep)
		if strings.Contains(p.body, "/console/actions/enable_endpoint") {
			t.Fatal("an enabled endpoint is offered Enable")
		}
		want(t, acme.get("/console/actions/redeliver_delivery?delivery_id="+dead+"&endpoint_id="+ep), http.StatusOK, "Yes, redeliver it")
	})
	t.Run("redeliver a delivery", func(t *testing.T) {
		refusals(t, acme, globex, "redeliver_delivery", url.Values{"delivery_id": {dead}, "endpoint_id": {ep}})
		h.fail(false)
		acme.done("redeliver_delivery", url.Values{"delivery_id": {dead}, "endpoint_id": {ep}}, "Redeliver: done.")
		waitUntil(t, "the redelivery received", func() bool { return h.count() == 1 })
		waitUntil(t, "the redelivery recorded", func() bool { return latestOutcomes(t, ac, acmeCtx, ep)[dead] == "delivered" })
	})
	t.Run("redeliver an endpoint", func(t *testing.T) {
		h.fail(true)
		d := deadOne(t, ac, acmeCtx, ep)
		refusals(t, acme, globex, "redeliver_endpoint", url.Values{"endpoint_id": {ep}})
		h.fail(false)
		acme.done("redeliver_endpoint", url.Values{"endpoint_id": {ep}}, "Redeliver dead deliveries: done (1).")
		waitUntil(t, "the endpoint's redelivery received", func() bool { return latestOutcomes(t, ac, acmeCtx, ep)[d] == "delivered" })
	})
	t.Run("disable and enable", func(t *testing.T) {
		refusals(t, acme, globex, "disable_endpoint", url.Values{"endpoint_id": {ep}, "reason": {"receiver moving"}})
		p := acme.done("disable_endpoint", url.Values{"endpoint_id": {ep}, "reason": {"receiver moving"}}, "Disable: done.", "disabled", "receiver moving",
			"/console/actions/enable_endpoint?endpoint_id="+ep)
		if strings.Contains(p.body, "/console/actions/disable_endpoint") || strings.Contains(p.body, "/console/actions/redeliver_endpoint") {
			t.Fatal("a disabled endpoint is offered Disable or Redeliver")
		}
		refusals(t, acme, globex, "enable_endpoint", url.Values{"endpoint_id": {ep}})
		acme.done("enable_endpoint", url.Values{"endpoint_id": {ep}}, "Enable: done (0).", "enabled")
		got, err := ac.ListEndpoints(acmeCtx, &auditv1.ListEndpointsRequest{})
		if err != nil || len(got.GetEndpoints()) != 1 || !got.GetEndpoints()[0].GetEnabled() {
			t.Fatalf("endpoints after enable: %v %v", got, err)
		}
	})
	t.Run("update filters", func(t *testing.T) {
		form := url.Values{"endpoint_id": {ep}, "event_types": {"user.login, billing.refund"}, "min_severity": {"critical"}}
		refusals(t, acme, globex, "update_endpoint", form)
		want(t, acme.get("/console/actions/update_endpoint?endpoint_id="+ep+"&min_severity=critical"), http.StatusOK, "<option selected>critical</option>")
		bad := url.Values{"endpoint_id": {ep}, "min_severity": {"urgent"}, "csrf": {acme.csrf}, "confirm": {"yes"}}
		want(t, acme.post("/console/actions/update_endpoint", bad), http.StatusBadRequest, "INVALID_SEVERITY")
		acme.done("update_endpoint", form, "Change filters: done.", "user.login, billing.refund", "critical")
		got, _ := ac.ListEndpoints(acmeCtx, &auditv1.ListEndpointsRequest{})
		if e := got.GetEndpoints()[0]; e.GetMinSeverity() != auditv1.Severity_SEVERITY_CRITICAL || strings.Join(e.GetEventTypes(), ",") != "user.login,billing.refund" {
			t.Fatalf("endpoint after update: %v", e)
		}
	})
	t.Run("rotate the secret", func(t *testing.T) {
		form := url.Values{"endpoint_id": {ep}, "grace_seconds": {"3600"}}
		refusals(t, acme, globex, "rotate_endpoint_secret", form)
		bad := url.Values{"endpoint_id": {ep}, "grace_seconds": {"soon"}, "csrf": {acme.csrf}, "confirm": {"yes"}}
		want(t, acme.post("/console/actions/rotate_endpoint_secret", bad), http.StatusBadRequest, "INVALID_GRACE")
		form.Set("csrf", acme.csrf)
		form.Set("confirm", "yes")
		p := acme.post("/console/actions/rotate_endpoint_secret", form)
		want(t, p, http.StatusOK, "Copy this secret now", "shown only this once", "The previous secret also signs deliveries until")
		// As the page escapes it: html/template writes '+' as &#43;.
		shown := regexp.MustCompile(`whsec_(?:[A-Za-z0-9/=]|&#43;)+`).FindString(p.body)
		secret := html.UnescapeString(shown)
		if secret == "" || p.header.Get("Cache-Control") != "no-store" {
			t.Fatalf("no secret on the result page (or cached): %v\n%s", p.header, p.body)
		}
		if w := acme.get("/console/webhooks"); strings.Contains(w.body, shown) || strings.Contains(w.body, secret) {
			t.Fatal("the webhooks page shows the new secret again")
		}
		got, _ := ac.ListEndpoints(acmeCtx, &auditv1.ListEndpointsRequest{})
		if got.GetEndpoints()[0].GetPreviousSecretExpireTime() == nil {
			t.Fatal("no grace period after the rotation")
		}
	})

	t.Run("outbox dead letters", func(t *testing.T) {
		h.fail(true)
		want(t, acme.get("/console/actions/update_endpoint"), http.StatusOK) // keep acme's CSRF fresh
		if _, err := ac.UpdateEndpoint(acmeCtx, &auditv1.UpdateEndpointRequest{EndpointId: ep}); err != nil {
			t.Fatal(err)
		}
		d := deadOne(t, ac, acmeCtx, ep) // a dead webhook delivery is a dead audit outbox event
		// The attempt is recorded before the relay marks its event dead, in
		// another transaction: the overview shows it a moment later.
		p := admin.get("/console/")
		for deadline := time.Now().Add(5 * time.Second); !strings.Contains(p.body, "requeue_dead_events?service=audit") && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
			p = admin.get("/console/")
		}
		want(t, p, http.StatusOK, "Outboxes: lag and dead letters", "Lag (oldest waiting)", "/console/outbox?service=audit",
			"/console/actions/requeue_dead_events?service=audit")
		if strings.Contains(p.body, "requeue_dead_events?service=queue") {
			t.Fatal("requeue-all offered for a service with no dead events")
		}
		if p := acme.get("/console/"); strings.Contains(p.body, "Outboxes: lag") || strings.Contains(p.body, `href="/console/outbox"`) {
			t.Fatal("a tenant user's overview shows the outbox")
		}
		want(t, admin.get("/console/outbox?service=audit"), http.StatusOK, d, "audit.webhook", "acme",
			"/console/actions/requeue_dead_event?id="+d+"&amp;service=audit")
		want(t, admin.get("/console/outbox?service=tenancy"), http.StatusOK, "No dead events")
		want(t, admin.get("/console/outbox?service=growth"), http.StatusBadRequest, "UNKNOWN_SERVICE")

		// Refused for anyone but a platform admin, by the services.
		want(t, acme.get("/console/outbox?service=audit"), http.StatusForbidden)
		for _, a := range []string{"requeue_dead_event", "requeue_dead_events"} {
			want(t, acme.post("/console/actions/"+a, url.Values{"service": {"audit"}, "id": {d}, "all": {"true"}, "csrf": {acme.csrf}, "confirm": {"yes"}}), http.StatusForbidden)
			refusals(t, admin, nil, a, url.Values{"service": {"audit"}, "id": {d}})
		}
		want(t, admin.post("/console/actions/requeue_dead_event", url.Values{"service": {"nope"}, "id": {d}, "csrf": {admin.csrf}, "confirm": {"yes"}}), http.StatusBadRequest, "UNKNOWN_SERVICE")
		want(t, admin.post("/console/actions/requeue_dead_event", url.Values{"service": {"audit"}, "id": {"no-such-event"}, "csrf": {admin.csrf}, "confirm": {"yes"}}), http.StatusNotFound)

		h.fail(false)
		before := h.count()
		admin.done("requeue_dead_event", url.Values{"service": {"audit"}, "id": {d}}, "Requeue: done (1).")
		waitUntil(t, "the requeued event delivered", func() bool { return h.count() > before })

		h.fail(true)
		d2 := deadOne(t, ac, acmeCtx, ep)
		h.fail(false)
		p = admin.done("requeue_dead_events", url.Values{"service": {"audit"}}, "Requeue all dead events: done (1).")
		if strings.Contains(p.body, d2) {
			t.Fatal("the requeued event is still listed dead")
		}
		waitUntil(t, "every requeued event delivered", func() bool { return latestOutcomes(t, ac, acmeCtx, ep)[d2] == "delivered" })
	})

	t.Run("commissions and payouts", func(t *testing.T) {
		gc := growthv1.NewGrowthServiceClient(st.conns["growth"])
		ref, err := gc.CreateReferral(acmeCtx, &growthv1.CreateReferralRequest{ReferrerId: "ann", Campaign: "spring"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := gc.RecordEvent(acmeCtx, &growthv1.RecordEventRequest{Event: &growthv1.Event{
			EventId: "conv-1", Type: "conversion", ReferralCode: ref.GetReferralCode(), CustomerId: "cust-1", Revenue: 100}}); err != nil {
			t.Fatal(err)
		}
		p := acme.get("/console/growth?state=approved")
		want(t, p, http.StatusOK, "conv-1", "approved", "20.00", "/console/growth/payouts.csv?state=approved",
			"/console/actions/create_payout_batch")
		want(t, acme.get("/console/growth?state=bogus"), http.StatusBadRequest, "COMMISSION_STATE_INVALID")
		want(t, acme.get("/console/growth"), http.StatusOK, "/console/growth/payouts.csv?days=30&amp;state=all")
		csv := acme.get("/console/growth/payouts.csv?state=approved")
		want(t, csv, http.StatusOK, "referral_code", ref.GetReferralCode()+",ann,spring")

		refusals(t, acme, nil, "create_payout_batch", url.Values{})
		p = acme.done("create_payout_batch", url.Values{}, "Create payout batch: done.", "to pay", "/console/actions/mark_payout_paid?batch_id=")
		batch := regexp.MustCompile(`mark_payout_paid\?batch_id=([^"&]+)`).FindStringSubmatch(p.body)[1]
		want(t, acme.post("/console/actions/create_payout_batch", url.Values{"csrf": {acme.csrf}, "confirm": {"yes"}}), http.StatusBadRequest, "PAYOUT_EMPTY")
		want(t, acme.get("/console/growth/payouts.csv?batch_id="+batch), http.StatusOK, ref.GetReferralCode()+",ann,spring")

		// globex marks acme's batch paid: growth says NotFound, a 404.
		refusals(t, acme, globex, "mark_payout_paid", url.Values{"batch_id": {batch}})
		// A platform admin reads acme's commissions but pays nothing of it.
		want(t, admin.get("/console/growth?tenant=acme&state=approved"), http.StatusOK, "conv-1")
		want(t, admin.post("/console/actions/mark_payout_paid", url.Values{"batch_id": {batch}, "tenant": {"acme"}, "csrf": {admin.csrf}, "confirm": {"yes"}}), http.StatusForbidden)

		acme.done("mark_payout_paid", url.Values{"batch_id": {batch}}, "Mark paid: done (1).", "conv-1", ">paid<")
		l, err := gc.ListCommissions(acmeCtx, &growthv1.ListCommissionsRequest{State: "paid"})
		if err != nil || len(l.GetCommissions()) != 1 || l.GetCommissions()[0].GetBatchId() != batch {
			t.Fatalf("paid commissions: %v %v", l, err)
		}
		if p := acme.get("/console/growth?state=paid"); strings.Contains(p.body, "mark_payout_paid") {
			t.Fatal("a paid batch is offered Mark paid")
		}
	})
	t.Run("finops chart per day", func(t *testing.T) {
		want(t, acme.get("/console/finops?days=7"), http.StatusOK, "Revenue, costs and profit per day (7 days, tenant acme", "By tenant")
		want(t, admin.get("/console/finops?days=90"), http.StatusOK, "per day (90 days, every tenant")
		want(t, acme.get("/console/finops?tenant=globex"), http.StatusForbidden)
	})
}
