// Package gateway serves the REST contract: it maps every documented path to
// the gRPC services, forwards identity as metadata (an allow-list) without
// trusting it, and answers errors in the seed-compatible envelope.
package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.uber.org/zap"
	_ "google.golang.org/genproto/googleapis/rpc/errdetails" // ErrorInfo must resolve, or errors become 500s
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/echopilot/echopilot/gateway/internal/console"
	"github.com/echopilot/echopilot/gateway/internal/restjson"
	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	finopsv1 "github.com/echopilot/echopilot/gen/go/echopilot/finops/v1"
	growthv1 "github.com/echopilot/echopilot/gen/go/echopilot/growth/v1"
	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	"github.com/echopilot/echopilot/platform/server"
	"github.com/echopilot/echopilot/platform/service"
	"github.com/echopilot/echopilot/platform/tracing"
)

const (
	requestIDHeader = "X-Request-Id"
	tenantHeader    = "X-Tenant-Id"
	// TenantQueryKey carries a tenant_id query parameter to the services,
	// which treat it like X-Tenant-ID: a claim to check, never a credential.
	TenantQueryKey = "x-tenant-id-query"
)

// Backend is one gRPC service behind the gateway.
type Backend struct {
	Name string
	Addr string
	// Conn, when set, is used instead of dialing Addr (in-process tests).
	Conn *grpc.ClientConn
	// Register adds the service's routes to mux, calling it through conn.
	Register func(ctx context.Context, mux *runtime.ServeMux, conn grpc.ClientConnInterface) error
	// Raw lists the backend's webhook paths that take the body unparsed.
	Raw []RawRoute
}

// Backends lists every service the gateway serves, with the local address
// `make run` gives it; deployments override each with a dns:/// name.
func Backends() []Backend {
	return []Backend{
		{Name: "tenancy", Addr: "127.0.0.1:9101", Register: handlers(tenancyv1.RegisterTenancyServiceHandlerClient, tenancyv1.NewTenancyServiceClient)},
		{Name: "finops", Addr: "127.0.0.1:9102", Register: handlers(finopsv1.RegisterFinOpsServiceHandlerClient, finopsv1.NewFinOpsServiceClient), Raw: []RawRoute{{
			Method: http.MethodPost, Path: "/api/finops/stripe/webhook",
			FullMethod: finopsv1.FinOpsService_HandleStripeWebhook_FullMethodName,
			Call: func(ctx context.Context, conn *grpc.ClientConn, r RawRequest, opts ...grpc.CallOption) (proto.Message, error) {
				return finopsv1.NewFinOpsServiceClient(conn).HandleStripeWebhook(ctx, &finopsv1.HandleStripeWebhookRequest{
					Payload: r.Body, StripeSignature: r.Header.Get("Stripe-Signature"),
				}, opts...)
			},
		}}},
		{Name: "audit", Addr: "127.0.0.1:9103", Register: handlers(auditv1.RegisterAuditServiceHandlerClient, auditv1.NewAuditServiceClient), Raw: []RawRoute{{
			Method: http.MethodPost, Path: "/api/compliance/webhook",
			FullMethod: auditv1.AuditService_HandleComplianceWebhook_FullMethodName,
			Call: func(ctx context.Context, conn *grpc.ClientConn, r RawRequest, opts ...grpc.CallOption) (proto.Message, error) {
				tenant := r.Header.Get("X-Tenant-ID")
				if tenant == "" {
					tenant = r.URL.Query().Get("tenant_id")
				}
				return auditv1.NewAuditServiceClient(conn).HandleComplianceWebhook(ctx, &auditv1.HandleComplianceWebhookRequest{
					Payload: r.Body, TenantId: tenant,
					EchopilotSignature: r.Header.Get("X-EchoPilot-Signature"), WebhookId: r.Header.Get("Webhook-Id"),
					WebhookTimestamp: r.Header.Get("Webhook-Timestamp"), WebhookSignature: r.Header.Get("Webhook-Signature"),
				}, opts...)
			},
		}}},
		{Name: "queue", Addr: "127.0.0.1:9104", Register: handlers(queuev1.RegisterQueueServiceHandlerClient, queuev1.NewQueueServiceClient)},
		{Name: "growth", Addr: "127.0.0.1:9105", Register: handlers(growthv1.RegisterGrowthServiceHandlerClient, growthv1.NewGrowthServiceClient), Raw: []RawRoute{{
			Method: http.MethodGet, Path: "/r/{referral_code}",
			FullMethod: growthv1.GrowthService_TrackClick_FullMethodName,
			Call:       trackClick,
			Respond:    redirectClick,
		}}},
	}
}

// Config tunes the handler.
type Config struct {
	MaxBodyBytes int64         // larger bodies get 413 (default 1 MiB)
	CallTimeout  time.Duration // per request to a backend (default 30s)
	// WriteTimeout bounds each write of a response (0: none); see
	// withDeadlines.
	WriteTimeout time.Duration
	// RateLimits limit each tenant's and anonymous client's requests to
	// the API paths (the zero value limits nothing).
	RateLimits RateLimitConfig
	// Transport secures the backend connections (service.Transport's
	// DialOption); nil dials in plaintext.
	Transport grpc.DialOption
	// Console, when set, serves the operator console at /console/ over
	// the same backend connections (see package console).
	Console *console.Config
	// Collectors join the gateway's registry (the TLS certificate's expiry,
	// service.Transport.ExpiryGauge).
	Collectors []prometheus.Collector
}

// Gateway is the REST front door. Close releases the backend connections.
type Gateway struct {
	handler  http.Handler
	admin    http.Handler
	limiter  *limiter // nil without rate limits
	conns    map[string]*grpc.ClientConn
	backends []Backend
	log      *zap.Logger
	traffic  *traffic
	reg      *prometheus.Registry // what the admin handler's /metrics serves
}

// New dials every backend (lazily: a backend that is down yields 503s, not a
// failed start) and builds the handler.
func New(ctx context.Context, cfg Config, backends []Backend, log *zap.Logger) (*Gateway, error) {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 30 * time.Second
	}
	reg := server.NewRegistry()
	requests := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "echopilot_gateway_request_duration_seconds",
		Help:    "REST requests by route pattern, method and HTTP status.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"pattern", "method", "code"})
	reg.MustRegister(requests)
	reg.MustRegister(cfg.Collectors...)

	mux := runtime.NewServeMux(
		// HttpBody responses (CSV exports) go out as their own content type.
		runtime.WithMarshalerOption(runtime.MIMEWildcard, byteStreams{&runtime.HTTPBodyMarshaler{Marshaler: restjson.NewMarshaler()}}),
		// Enum query parameters take the seed strings, as bodies do.
		runtime.SetQueryParameterParser(restjson.QueryParser{}),
		runtime.WithIncomingHeaderMatcher(incomingHeader),
		runtime.WithOutgoingHeaderMatcher(outgoingHeader),
		runtime.WithMetadata(tenantQuery),
		runtime.WithErrorHandler(handleError),
		runtime.WithRoutingErrorHandler(handleRoutingError),
		runtime.WithMiddlewares(observe(requests)),
	)
	g := &Gateway{conns: map[string]*grpc.ClientConn{}, backends: backends, log: log, traffic: newTraffic(), reg: reg}
	for _, b := range backends {
		conn := b.Conn
		if conn == nil {
			var err error
			// round_robin over every replica behind a headless Service, traced.
			var opts []grpc.DialOption
			if cfg.Transport != nil {
				opts = append(opts, cfg.Transport)
			}
			conn, err = service.Dial(b.Addr, opts...)
			if err != nil {
				g.Close()
				return nil, fmt.Errorf("backend %s: %w", b.Name, err)
			}
		}
		g.conns[b.Name] = conn
		if err := b.Register(ctx, mux, earlyErrors{conn}); err != nil {
			g.Close()
			return nil, fmt.Errorf("register %s: %w", b.Name, err)
		}
		for _, rr := range b.Raw {
			if err := handleRaw(mux, conn, rr); err != nil {
				g.Close()
				return nil, fmt.Errorf("register %s %s: %w", b.Name, rr.Path, err)
			}
		}
	}

	root := http.NewServeMux()
	for path, h := range g.rootRoutes() {
		root.HandleFunc("GET "+path, h)
	}
	// Every other path, /metrics included (it is on the admin handler),
	// is the API's: rate-limited before its body is read.
	api := limitBody(cfg.MaxBodyBytes, withTimeout(cfg.CallTimeout, mux))
	if cfg.RateLimits.enabled() {
		var err error
		if g.limiter, err = newLimiter(cfg.RateLimits, reg, log); err != nil {
			g.Close()
			return nil, err
		}
		api = g.limiter.wrap(api)
	}
	root.Handle("/", g.traffic.count(api))
	if cfg.Console != nil {
		conns := make(map[string]grpc.ClientConnInterface, len(g.conns))
		for name, c := range g.conns {
			conns[name] = c
		}
		con, err := console.New(*cfg.Console, console.Deps{Conns: conns, Health: g.backendStates, Traffic: g.traffic.snapshot}, log)
		if err != nil {
			g.Close()
			return nil, err
		}
		root.Handle("/console/", con)
		root.Handle("GET /console", http.RedirectHandler("/console/", http.StatusMovedPermanently))
	}
	// The server span of a REST call, parent of its backend call's spans,
	// named after the route pattern so span names stay few.
	g.handler = withDeadlines(cfg.WriteTimeout, withRoute(tracing.HTTPHandler(withRequestID(root), "gateway",
		otelhttp.WithSpanNameFormatter(spanName),
		otelhttp.WithFilter(func(r *http.Request) bool { return r.URL.Path != "/health" }))))

	admin := http.NewServeMux()
	admin.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	admin.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	g.admin = admin
	return g, nil
}

// rootRoutes are the GET paths the gateway serves itself, beside the API's
// and the console's (apidoc documents them too).
func (g *Gateway) rootRoutes() map[string]http.HandlerFunc {
	return map[string]http.HandlerFunc{
		"/health":                   g.health,
		"/openapi.json":             serveOpenAPI,
		"/docs":                     serveDocsFile("docs/index.html", "text/html; charset=utf-8"),
		"/docs/redoc.standalone.js": serveDocsFile("docs/redoc.standalone.js", "text/javascript; charset=utf-8"),
	}
}

// AdminHandler serves the operators' endpoints, for a port of their own
// that is not exposed with the API: GET /metrics (Prometheus) and
// GET /healthz (200 while the process runs).
func (g *Gateway) AdminHandler() http.Handler { return g.admin }

// ServeHTTP implements http.Handler.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) { g.handler.ServeHTTP(w, r) }

// Close stops the rate limits' background lookups and closes the backend
// connections.
func (g *Gateway) Close() {
	if g.limiter != nil {
		g.limiter.close()
	}
	for _, c := range g.conns {
		_ = c.Close()
	}
}

// byteStreams is the marshaler with no delimiter between streamed
// messages: this API's server streams are byte streams (HttpBody, such as
// an export's JSON lines) that carry their own framing, and grpc-gateway
// would otherwise add a newline after every message.
type byteStreams struct{ *runtime.HTTPBodyMarshaler }

// Delimiter implements runtime.Delimited.
func (byteStreams) Delimiter() []byte { return nil }

// Marshal writes a stream's error in the API's error envelope, like every
// other error, and anything else as HTTPBodyMarshaler does.
func (m byteStreams) Marshal(v any) ([]byte, error) {
	if e, ok := streamError(v); ok {
		return restjson.Marshal(e)
	}
	return m.HTTPBodyMarshaler.Marshal(v)
}

// incomingHeader forwards only the identity and tracing headers; the
// services decide what they are worth. grpc-gateway forwards Authorization
// (a JWT or an API key) on its own; naming it here too would send it twice.
func incomingHeader(key string) (string, bool) {
	switch strings.ToLower(key) {
	case "x-tenant-id":
		return "x-tenant-id", true
	case "x-api-key":
		return "x-api-key", true
	case "x-request-id":
		return "x-request-id", true
	}
	return "", false
}

// outgoingHeader passes service headers meant for HTTP clients and drops the rest.
func outgoingHeader(key string) (string, bool) {
	switch strings.ToLower(key) {
	case "content-disposition":
		return "Content-Disposition", true
	}
	return "", false
}

func tenantQuery(_ context.Context, r *http.Request) metadata.MD {
	if v := r.URL.Query().Get("tenant_id"); v != "" {
		return metadata.Pairs(TenantQueryKey, v)
	}
	return nil
}

// withRequestID gives every request an id, forwarded to the services and
// echoed to the client.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(requestIDHeader)
		if id == "" || len(id) > 128 {
			id = ulid.Make().String()
			r.Header.Set(requestIDHeader, id)
		}
		w.Header().Set(requestIDHeader, id)
		next.ServeHTTP(w, r)
	})
}

func withTimeout(d time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// limitBody reads the body up front so an oversized one is a clean 413, not
// a decoding error deep inside grpc-gateway.
func limitBody(max int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		if r.ContentLength > max {
			writeError(w, r, http.StatusRequestEntityTooLarge, codes.InvalidArgument, "BODY_TOO_LARGE",
				fmt.Sprintf("request body exceeds %d bytes", max), nil)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				writeError(w, r, http.StatusRequestEntityTooLarge, codes.InvalidArgument, "BODY_TOO_LARGE",
					fmt.Sprintf("request body exceeds %d bytes", max), nil)
				return
			}
			writeError(w, r, http.StatusBadRequest, codes.InvalidArgument, "INVALID_REQUEST", "could not read request body", nil)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

// routeKey holds a *string through which observe, inside grpc-gateway's
// mux (the one that knows the route pattern), tells the tracing handler
// outside it what to name the span.
type routeKey struct{}

func withRoute(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), routeKey{}, new(string))))
	})
}

// spanName is "GET /api/tenant/info" style: the grpc-gateway pattern once
// routed, the root mux's pattern for its own paths, the method otherwise.
func spanName(_ string, r *http.Request) string {
	if route, ok := r.Context().Value(routeKey{}).(*string); ok && *route != "" {
		return r.Method + " " + *route
	}
	if r.Pattern != "" && r.Pattern != "/" {
		return r.Pattern
	}
	return r.Method
}

// observe records latency by route pattern (not raw path, which would explode
// label cardinality) and hands the pattern to spanName.
func observe(h *prometheus.HistogramVec) runtime.Middleware {
	return func(next runtime.HandlerFunc) runtime.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
			start := time.Now()
			sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
			next(sw, r, params)
			pattern := ""
			if p, ok := runtime.HTTPPattern(r.Context()); ok {
				pattern = p.String()
				if route, ok := r.Context().Value(routeKey{}).(*string); ok {
					*route = pattern
				}
			}
			h.WithLabelValues(pattern, r.Method, strconv.Itoa(sw.code)).Observe(time.Since(start).Seconds())
		}
	}
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// health answers without tenant context (as the seed's /health did) and
// reports each backend's gRPC health. The gateway itself is up if it answers.
func (g *Gateway) health(w http.ResponseWriter, r *http.Request) {
	states := g.backendStates(r.Context())
	overall := "ok"
	for _, s := range states {
		if s != "SERVING" {
			overall = "degraded"
		}
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = jsonEncode(w, map[string]any{"ok": true, "status": overall, "services": states})
}

// backendStates asks every backend for its gRPC health at once, within a
// second: SERVING, NOT_SERVING or UNREACHABLE by backend name.
func (g *Gateway) backendStates(ctx context.Context) map[string]string {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	states := make(map[string]string, len(g.backends))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, b := range g.backends {
		wg.Add(1)
		go func() {
			defer wg.Done()
			state := "UNREACHABLE"
			resp, err := healthpb.NewHealthClient(g.conns[b.Name]).Check(ctx, &healthpb.HealthCheckRequest{})
			if err == nil {
				state = resp.GetStatus().String()
			}
			mu.Lock()
			states[b.Name] = state
			mu.Unlock()
		}()
	}
	wg.Wait()
	return states
}
