// Package console is the operator console the gateway serves at /console/:
// server-rendered pages (html/template, htmx as one vendored file that only
// enhances) over the same gRPC backends as the REST API. Every backend call
// carries the signed-in person's own bearer token, so the backends decide
// what the person may see and do, and audit the person as the actor; the
// console holds no credential of its own.
//
// Each page is one handler and one template; each action that changes
// something is one Action (a handler and a confirmation template) in the
// actions table, so new repair APIs plug in without touching the rest.
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	finopsv1 "github.com/echopilot/echopilot/gen/go/echopilot/finops/v1"
	growthv1 "github.com/echopilot/echopilot/gen/go/echopilot/growth/v1"
	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	"github.com/echopilot/echopilot/platform/apierr"
)

// Prefix is where the console is mounted.
const Prefix = "/console/"

// pageSize bounds every list a page shows: pages never load unbounded lists.
const pageSize = 50

// maxFormBytes bounds a console form.
const maxFormBytes = 64 << 10

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/htmx.min.js static/console.css
var staticFS embed.FS

// Config is the console's own settings.
type Config struct {
	// SessionKey seals session cookies (AES-256-GCM, the SHA-256 of these
	// bytes). Empty: a random key per process, so sessions neither survive
	// a restart nor span replicas.
	SessionKey []byte
	// DevTicket, when set, admits one sign-in through
	// /console/login?ticket=… (make run only).
	DevTicket *DevTicket
	// OIDC, when set, adds "Sign in with your identity provider" to the
	// sign-in page.
	OIDC *OIDC
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
}

// Traffic is what the gateway counted over the last hour.
type Traffic struct {
	Requests, Errors int64
	Minutes          []MinuteCount // oldest first
}

// MinuteCount is one minute of Traffic.
type MinuteCount struct {
	Start            time.Time
	Requests, Errors int64
}

// Deps are what the console borrows from the gateway.
type Deps struct {
	// Conns are the backend connections by service name (tenancy,
	// finops, audit, queue, growth).
	Conns map[string]grpc.ClientConnInterface
	// Health reports each backend's gRPC health.
	Health func(context.Context) map[string]string
	// Traffic reports the gateway's requests over the last hour.
	Traffic func() Traffic
}

// clients are the backends' gRPC clients.
type clients struct {
	tenancy tenancyv1.TenancyServiceClient
	finops  finopsv1.FinOpsServiceClient
	audit   auditv1.AuditServiceClient
	queue   queuev1.QueueServiceClient
	growth  growthv1.GrowthServiceClient
}

// Console is the console's http.Handler.
type Console struct {
	deps    Deps
	c       clients
	seal    *sealer
	ticket  *DevTicket
	now     func() time.Time
	pages   map[string]*template.Template
	handler http.Handler
	log     *zap.Logger
	oidc    *oidcClient // nil without OIDC
}

// New builds the console over deps.
func New(cfg Config, deps Deps, log *zap.Logger) (*Console, error) {
	for _, name := range []string{"tenancy", "finops", "audit", "queue", "growth"} {
		if deps.Conns[name] == nil {
			return nil, fmt.Errorf("console: no %s backend", name)
		}
	}
	if deps.Health == nil || deps.Traffic == nil {
		return nil, errors.New("console: Health and Traffic are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if len(cfg.SessionKey) == 0 {
		log.Warn("console: no session key (--console-session-key-file): a random one for this process, " +
			"so console sessions do not survive a restart and do not span gateway replicas")
	}
	seal, err := newSealer(cfg.SessionKey)
	if err != nil {
		return nil, err
	}
	pages, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	c := &Console{
		deps: deps, seal: seal, ticket: cfg.DevTicket, now: cfg.Now, pages: pages, log: log,
		c: clients{
			tenancy: tenancyv1.NewTenancyServiceClient(deps.Conns["tenancy"]),
			finops:  finopsv1.NewFinOpsServiceClient(deps.Conns["finops"]),
			audit:   auditv1.NewAuditServiceClient(deps.Conns["audit"]),
			queue:   queuev1.NewQueueServiceClient(deps.Conns["queue"]),
			growth:  growthv1.NewGrowthServiceClient(deps.Conns["growth"]),
		},
	}
	if cfg.OIDC != nil {
		if err := cfg.OIDC.check(); err != nil {
			return nil, err
		}
		c.oidc = &oidcClient{cfg: *cfg.OIDC}
	}
	if cfg.DevTicket != nil {
		log.Warn("console: a one-time dev sign-in ticket is enabled (--console-dev-ticket-file); never in production")
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /console/static/", http.StripPrefix("/console/static/", cacheStatic(http.FileServerFS(static))))
	mux.HandleFunc("GET /console/login", c.loginPage)
	mux.HandleFunc("POST /console/login", c.login)
	mux.HandleFunc("POST /console/logout", c.signedIn(c.logout))
	if c.oidc != nil {
		mux.HandleFunc("GET /console/oidc/start", c.oidcStart)
		mux.HandleFunc("GET /console/oidc/callback", c.oidcCallback)
	}
	for path, h := range map[string]pageHandler{
		"GET /console/{$}":                   c.overview,
		"GET /console/queue":                 c.queuePage,
		"GET /console/queue/jobs/{id}":       c.jobPage,
		"GET /console/workers":               c.workersPage,
		"GET /console/audit":                 c.auditPage,
		"GET /console/audit/checkpoint.json": c.checkpointJSON,
		"GET /console/audit/proof.json":      c.proofJSON,
		"GET /console/webhooks":              c.webhooksPage,
		"GET /console/finops":                c.finopsPage,
		"GET /console/growth":                c.growthPage,
		"GET /console/growth/payouts.csv":    c.payoutsCSV,
		"GET /console/tenants":               c.tenantsPage,
		"GET /console/outbox":                c.outboxPage,
		"GET /console/actions/{action}":      c.confirmAction,
		"POST /console/actions/{action}":     c.runAction,
	} {
		mux.HandleFunc(path, c.signedIn(h))
	}
	mux.HandleFunc("/console/", func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, nil, http.StatusNotFound, "NOT_FOUND", "There is no console page at "+r.URL.Path+".")
	})
	c.handler = secureHeaders(http.MaxBytesHandler(mux, maxFormBytes))
	return c, nil
}

// ServeHTTP implements http.Handler.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.handler.ServeHTTP(w, r) }

// csp allows the console's own script and style files and nothing inline.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'"

// secureHeaders sets the console's security headers on every answer.
func secureHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

func cacheStatic(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		next.ServeHTTP(w, r)
	})
}

// pageHandler serves a signed-in person's request.
type pageHandler func(w http.ResponseWriter, r *http.Request, s *session)

// call is the outgoing context of a backend call on the person's behalf:
// their own bearer token, and the tenant they chose when a platform admin
// reads another tenant (the backends refuse anyone else's choice).
func (c *Console) call(r *http.Request, s *session) context.Context {
	return c.callFor(r, s, viewTenant(r))
}

// callFor is call for tenant ("": the person's own), for the calls that
// take no other tenant (ListTenants lists what the person may see).
func (c *Console) callFor(r *http.Request, s *session, tenant string) context.Context {
	md := metadata.Pairs("authorization", "Bearer "+s.Token)
	if id := r.Header.Get("X-Request-Id"); id != "" {
		md.Append("x-request-id", id)
	}
	if tenant != "" {
		md.Append("x-tenant-id", tenant)
	}
	return metadata.NewOutgoingContext(r.Context(), md)
}

// viewTenant is the tenant a page was asked for (?tenant=), empty for the
// person's own.
func viewTenant(r *http.Request) string { return strings.TrimSpace(r.FormValue("tenant")) }

// view is what every page template gets.
type view struct {
	Title  string
	Nav    string
	S      *session
	CSRF   string
	Tenant string // ?tenant= of the page
	Data   any
	Err    *pageError
	Now    time.Time
}

type pageError struct {
	Status  int
	Reason  string
	Message string
}

// render writes page name with data.
func (c *Console) render(w http.ResponseWriter, r *http.Request, s *session, status int, name, title string, data any) {
	t, ok := c.pages[name]
	if !ok {
		c.log.Error("console: no template", zap.String("name", name))
		http.Error(w, "no such template", http.StatusInternalServerError)
		return
	}
	v := view{Title: title, Nav: name, S: s, Tenant: viewTenant(r), Data: data, Now: c.now()}
	if s != nil {
		v.CSRF = s.CSRF
	}
	if e, ok := data.(*pageError); ok {
		v.Err = e
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout", v); err != nil {
		c.log.Error("console: render", zap.String("page", name), zap.Error(err))
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

// fail shows an error page. A backend's refusal keeps its meaning: 403 for
// PermissionDenied, 404 for NotFound, 400 for bad input, never a 500 for
// something the person asked.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, s *session, code int, reason, msg string) {
	c.render(w, r, s, code, "error", http.StatusText(code), &pageError{Status: code, Reason: reason, Message: msg})
}

// backendFail shows a backend call's error as a page.
func (c *Console) backendFail(w http.ResponseWriter, r *http.Request, s *session, err error) {
	st, _ := status.FromError(err)
	code := runtime.HTTPStatusFromCode(st.Code())
	switch st.Code() {
	case codes.Canceled, codes.DeadlineExceeded, codes.Unavailable:
		code = http.StatusServiceUnavailable
	case codes.Unknown, codes.Internal, codes.DataLoss:
		code = http.StatusBadGateway
	}
	reason := apierr.Reason(err)
	if reason == "" {
		reason = st.Code().String()
	}
	c.fail(w, r, s, code, reason, st.Message())
}

// pageLink keeps a page's query (tenant, filters) while changing keys.
func pageLink(path string, q url.Values, kv ...string) string {
	q2 := url.Values{}
	for k, v := range q {
		if len(v) > 0 && v[0] != "" {
			q2[k] = []string{v[0]}
		}
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			q2.Del(kv[i])
		} else {
			q2.Set(kv[i], kv[i+1])
		}
	}
	if len(q2) == 0 {
		return path
	}
	return path + "?" + q2.Encode()
}
