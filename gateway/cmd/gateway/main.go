// Command gateway serves the REST API in front of the gRPC services.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/echopilot/echopilot/gateway/internal/console"
	"github.com/echopilot/echopilot/gateway/internal/gateway"
	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	"github.com/echopilot/echopilot/platform/apikeys"
	"github.com/echopilot/echopilot/platform/config"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/server"
	"github.com/echopilot/echopilot/platform/service"
	"github.com/echopilot/echopilot/platform/svcauth"
	"github.com/echopilot/echopilot/platform/tracing"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

// settings are the gateway's flags (env fallbacks in their usage).
type settings struct {
	addr, adminAddr, logLevel, otlp string
	pprof                           bool
	maxBody, maxHeaderBytes         int
	drain, callTimeout              time.Duration
	readHeaderTimeout, readTimeout  time.Duration
	writeTimeout, idleTimeout       time.Duration

	// Rate limits.
	readRate, readBurst, writeRate, writeBurst int
	limitKeys                                  int
	limitCacheTTL, refusalDelay                time.Duration
	trustedProxies                             string

	// Token verification, the same settings as the services'.
	hs256Secret, publicKeys, jwksURL, issuer, audience string
	// The gateway's own identity towards tenancy.
	serviceTokenFile string
	// TLS of the backend connections (the HTTP listener is plain: TLS for
	// browsers ends at the ingress in front of it).
	tls service.TLS

	// The operator console at /console/.
	console                                     bool
	consoleSessionKeyFile, consoleDevTicketFile string
	oidcIssuer, oidcClientID, oidcSecretFile    string
	oidcRedirectURL, oidcForward                string
}

func bind(l *config.Loader, s *settings) {
	l.String(&s.addr, "addr", "ECHOPILOT_HTTP_ADDR", ":8080", "HTTP listen address of the API")
	l.String(&s.adminAddr, "admin-addr", "ECHOPILOT_ADMIN_ADDR", ":9280",
		"listen address of /metrics and /healthz, kept off the API port (empty disables)")
	l.Bool(&s.pprof, "pprof", "ECHOPILOT_PPROF", false, "also serve net/http/pprof on the admin listener, for profiling (never where tenants reach it)")
	l.String(&s.logLevel, "log-level", "ECHOPILOT_LOG_LEVEL", "info", "log level")
	l.String(&s.otlp, "otlp-endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT", "",
		"OpenTelemetry collector (OTLP/gRPC, host:port or http(s)://host:port) for traces; empty: no export")
	l.Int(&s.maxBody, "max-body-bytes", "ECHOPILOT_MAX_BODY_BYTES", 1<<20, "largest accepted request body")
	l.Int(&s.maxHeaderBytes, "max-header-bytes", "ECHOPILOT_HTTP_MAX_HEADER_BYTES", 64<<10, "largest accepted request line and headers")
	l.Duration(&s.drain, "shutdown-drain", "ECHOPILOT_SHUTDOWN_DRAIN", 0, "wait before closing listeners on SIGTERM")
	l.Duration(&s.callTimeout, "call-timeout", "ECHOPILOT_CALL_TIMEOUT", 30*time.Second, "deadline of one backend call")
	l.Duration(&s.readHeaderTimeout, "read-header-timeout", "ECHOPILOT_HTTP_READ_HEADER_TIMEOUT", 5*time.Second,
		"time to read a request's line and headers")
	l.Duration(&s.readTimeout, "read-timeout", "ECHOPILOT_HTTP_READ_TIMEOUT", 30*time.Second,
		"time to read a whole request, headers and body")
	l.Duration(&s.writeTimeout, "write-timeout", "ECHOPILOT_HTTP_WRITE_TIMEOUT", 30*time.Second,
		"time one write of a response may take; streamed responses renew it with every chunk (0: no limit)")
	l.Duration(&s.idleTimeout, "idle-timeout", "ECHOPILOT_HTTP_IDLE_TIMEOUT", 2*time.Minute,
		"time a keep-alive connection may wait for its next request")

	l.Int(&s.readRate, "rate-limit-read", "ECHOPILOT_RATE_LIMIT_READ", 100,
		"reads (GET, HEAD, OPTIONS) per second per tenant and per anonymous client address (0: unlimited)")
	l.Int(&s.readBurst, "rate-limit-read-burst", "ECHOPILOT_RATE_LIMIT_READ_BURST", 200, "largest burst of reads (0: the rate)")
	l.Int(&s.writeRate, "rate-limit-write", "ECHOPILOT_RATE_LIMIT_WRITE", 50,
		"writes (every other method) per second per tenant and per anonymous client address (0: unlimited)")
	l.Int(&s.writeBurst, "rate-limit-write-burst", "ECHOPILOT_RATE_LIMIT_WRITE_BURST", 100, "largest burst of writes (0: the rate)")
	l.Int(&s.limitKeys, "rate-limit-keys", "ECHOPILOT_RATE_LIMIT_KEYS", 100_000,
		"tenants and client addresses whose limit state is kept, least recently seen dropped first")
	l.Duration(&s.limitCacheTTL, "rate-limit-cache-ttl", "ECHOPILOT_RATE_LIMIT_CACHE_TTL", 30*time.Second,
		"how long a tenant's own limits from tenancy are used before they are looked up again")
	l.Duration(&s.refusalDelay, "rate-limit-refusal-delay", "ECHOPILOT_RATE_LIMIT_REFUSAL_DELAY", 250*time.Millisecond,
		"how long a 429 is held before it is answered, so clients that retry at once cannot spend the gateway's CPU on refusals (0: at once)")
	l.String(&s.trustedProxies, "trusted-proxies", "ECHOPILOT_TRUSTED_PROXIES", "",
		"comma-separated addresses or CIDR prefixes of proxies whose X-Forwarded-For names the client (empty: X-Forwarded-For is ignored)")

	l.Secret(&s.hs256Secret, "jwt-hs256-secret", "ECHOPILOT_JWT_HS256_SECRET", "HS256 secret for tokens (local runs)")
	l.String(&s.publicKeys, "jwt-public-keys", "ECHOPILOT_JWT_PUBLIC_KEYS", "", "comma-separated PEM files of RS256/ES256/EdDSA public keys")
	l.String(&s.jwksURL, "jwks-url", "ECHOPILOT_JWKS_URL", "", "JWKS URL of the identity provider")
	l.String(&s.issuer, "jwt-issuer", "ECHOPILOT_JWT_ISSUER", "", "required iss claim, when set")
	l.String(&s.audience, "jwt-audience", "ECHOPILOT_JWT_AUDIENCE", "", "required aud claim, when set")
	l.String(&s.serviceTokenFile, "service-token-file", "ECHOPILOT_SERVICE_TOKEN_FILE", "",
		"file holding the gateway's service token for tenancy lookups (default: minted from the HS256 secret)")
	service.BindTLSClient(l, &s.tls)
	l.Bool(&s.console, "console", "ECHOPILOT_CONSOLE", true, "serve the operator console at /console/")
	l.String(&s.consoleSessionKeyFile, "console-session-key-file", "ECHOPILOT_CONSOLE_SESSION_KEY_FILE", "",
		"file whose bytes (32 random bytes or more) seal console session cookies; the same file on every replica (empty: a random key per process, sessions end with it)")
	l.String(&s.consoleDevTicketFile, "console-dev-ticket-file", "ECHOPILOT_CONSOLE_DEV_TICKET_FILE", "",
		"make run only: a one-time console sign-in ticket written by devstack (never in production)")
	l.String(&s.oidcIssuer, "console-oidc-issuer", "ECHOPILOT_CONSOLE_OIDC_ISSUER", "",
		"OpenID Connect issuer for console sign-in (empty: sign in by pasting a token only)")
	l.String(&s.oidcClientID, "console-oidc-client-id", "ECHOPILOT_CONSOLE_OIDC_CLIENT_ID", "", "the console's OIDC client id")
	l.String(&s.oidcSecretFile, "console-oidc-client-secret-file", "ECHOPILOT_CONSOLE_OIDC_CLIENT_SECRET_FILE", "",
		"file holding the console's OIDC client secret (empty: a public client, PKCE only)")
	l.String(&s.oidcRedirectURL, "console-oidc-redirect-url", "ECHOPILOT_CONSOLE_OIDC_REDIRECT_URL", "",
		"the console's callback as browsers reach it, https://<host>/console/oidc/callback, registered with the provider")
	l.String(&s.oidcForward, "console-oidc-forward", "ECHOPILOT_CONSOLE_OIDC_FORWARD", "access_token",
		"the provider's token the console carries to the services: access_token or id_token")
}

// consoleConfig reads the console's key and dev ticket files; nil when the
// console is off.
func consoleConfig(s settings) (*console.Config, error) {
	if !s.console {
		return nil, nil
	}
	cfg := &console.Config{}
	if s.consoleSessionKeyFile != "" {
		key, err := os.ReadFile(s.consoleSessionKeyFile)
		if err != nil {
			return nil, fmt.Errorf("console session key: %w", err)
		}
		if len(bytes.TrimSpace(key)) < 32 {
			return nil, fmt.Errorf("console session key %s: want 32 bytes or more", s.consoleSessionKeyFile)
		}
		cfg.SessionKey = bytes.TrimSpace(key)
	}
	if s.oidcIssuer != "" {
		cfg.OIDC = &console.OIDC{Issuer: s.oidcIssuer, ClientID: s.oidcClientID, RedirectURL: s.oidcRedirectURL, Forward: s.oidcForward}
		if s.oidcSecretFile != "" {
			secret, err := os.ReadFile(s.oidcSecretFile)
			if err != nil {
				return nil, fmt.Errorf("console OIDC client secret: %w", err)
			}
			cfg.OIDC.ClientSecret = string(bytes.TrimSpace(secret))
		}
	}
	if s.consoleDevTicketFile != "" {
		t, err := console.LoadDevTicket(s.consoleDevTicketFile)
		if err != nil {
			return nil, err
		}
		cfg.DevTicket = t
	}
	return cfg, nil
}

// loader registers the gateway's settings, an address per backend among
// them, and declares the backends for --print-config (deploy's checks of
// network policies and environment read them there).
func loader(s *settings) (*config.Loader, []gateway.Backend) {
	l := config.New("gateway")
	bind(l, s)
	backends := gateway.Backends()
	names := make([]string, len(backends))
	for i := range backends {
		b := &backends[i]
		names[i] = b.Name
		l.String(&b.Addr, b.Name+"-addr", "ECHOPILOT_"+strings.ToUpper(b.Name)+"_ADDR", b.Addr, b.Name+" gRPC address")
	}
	l.Fact("backends", names)
	return l, backends
}

func run(args []string) error {
	var s settings
	l, backends := loader(&s)
	if err := l.Parse(args); err != nil {
		if errors.Is(err, config.ErrPrinted) {
			return nil
		}
		return err
	}
	log, err := server.NewLogger(s.logLevel, "gateway")
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	stopTracing, err := tracing.Start(ctx, tracing.Config{Endpoint: s.otlp, Service: "gateway"}, log)
	if err != nil {
		return err
	}
	defer stopTracing()

	transport, err := s.tls.Open(log)
	if err != nil {
		return err
	}
	limits, closeLimits, err := rateLimits(s, backends, transport, log)
	if err != nil {
		return err
	}
	defer closeLimits()
	con, err := consoleConfig(s)
	if err != nil {
		return err
	}
	gw, err := gateway.New(ctx, gateway.Config{
		MaxBodyBytes: int64(s.maxBody), CallTimeout: s.callTimeout, WriteTimeout: s.writeTimeout, RateLimits: limits,
		Transport: transport.DialOption(), Console: con, Collectors: []prometheus.Collector{transport.ExpiryGauge()},
	}, backends, log)
	if err != nil {
		return err
	}
	defer gw.Close()

	var admin *http.Server
	if s.adminAddr != "" {
		aln, err := net.Listen("tcp", s.adminAddr)
		if err != nil {
			return fmt.Errorf("listen %s: %w", s.adminAddr, err)
		}
		h := gw.AdminHandler()
		if s.pprof {
			h = server.WithPprof(h)
		}
		admin = &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
			WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10}
		go func() {
			if err := admin.Serve(aln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("admin server stopped", zap.Error(err))
			}
		}()
		log.Info("admin listening", zap.String("addr", aln.Addr().String()))
	}

	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.addr, err)
	}
	// No server-wide WriteTimeout: the gateway bounds each write instead
	// (gateway.Config.WriteTimeout), which a streamed export of any length
	// can live with.
	srv := &http.Server{
		Handler:           gw,
		ReadHeaderTimeout: s.readHeaderTimeout,
		ReadTimeout:       s.readTimeout,
		IdleTimeout:       s.idleTimeout,
		MaxHeaderBytes:    s.maxHeaderBytes,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("gateway listening", zap.String("addr", ln.Addr().String()), zap.Stringer("backend_transport", transport),
		zap.Int("rate_limit_read", s.readRate), zap.Int("rate_limit_write", s.writeRate))

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	time.Sleep(s.drain)
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if admin != nil {
		defer func() { _ = admin.Shutdown(sctx) }()
	}
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// rateLimits builds the limits' settings: the token verifier that tells
// tenants apart, and the lookup of tenants' own limits in tenancy over a
// connection of its own that carries the gateway's service identity (the
// backend connections forward each user's token and must carry no other).
func rateLimits(s settings, backends []gateway.Backend, transport *service.Transport, log *zap.Logger) (gateway.RateLimitConfig, func(), error) {
	for name, v := range map[string]int{
		"ECHOPILOT_RATE_LIMIT_READ": s.readRate, "ECHOPILOT_RATE_LIMIT_READ_BURST": s.readBurst,
		"ECHOPILOT_RATE_LIMIT_WRITE": s.writeRate, "ECHOPILOT_RATE_LIMIT_WRITE_BURST": s.writeBurst,
	} {
		if v < 0 {
			return gateway.RateLimitConfig{}, nil, fmt.Errorf("%s is %d: want 0 (rates: off; bursts: the rate) or more", name, v)
		}
	}
	cfg := gateway.RateLimitConfig{
		Read:         gateway.Budget{Rate: float64(s.readRate), Burst: s.readBurst},
		Write:        gateway.Budget{Rate: float64(s.writeRate), Burst: s.writeBurst},
		MaxKeys:      s.limitKeys,
		OverrideTTL:  s.limitCacheTTL,
		RefusalDelay: s.refusalDelay,
	}
	nothing := func() {}
	if cfg.Read.Rate == 0 && cfg.Write.Rate == 0 {
		log.Warn("rate limits are off (ECHOPILOT_RATE_LIMIT_READ=0 and ECHOPILOT_RATE_LIMIT_WRITE=0)")
		return gateway.RateLimitConfig{}, nothing, nil
	}
	proxies, err := gateway.ParsePrefixes(s.trustedProxies)
	if err != nil {
		return cfg, nil, err
	}
	cfg.TrustedProxies = proxies
	keys := strings.Split(s.publicKeys, ",")
	for i := range keys {
		keys[i] = strings.TrimSpace(keys[i])
	}
	keys = slices.DeleteFunc(keys, func(k string) bool { return k == "" })
	if s.hs256Secret == "" && len(keys) == 0 && s.jwksURL == "" {
		// Every tenant would share its client address's budget: behind a
		// load balancer, one budget for everybody.
		return cfg, nil, errors.New("rate limits tell tenants apart by their verified tokens: set ECHOPILOT_JWT_HS256_SECRET, " +
			"ECHOPILOT_JWT_PUBLIC_KEYS or ECHOPILOT_JWKS_URL as for the services, or turn the limits off with " +
			"ECHOPILOT_RATE_LIMIT_READ=0 and ECHOPILOT_RATE_LIMIT_WRITE=0")
	}
	vcfg := identity.VerifierConfig{
		HS256Secret: []byte(s.hs256Secret), PublicKeyFiles: keys, JWKSURL: s.jwksURL,
		Issuer: s.issuer, Audience: s.audience, Logger: log,
	}

	var src svcauth.TokenSource
	switch {
	case s.serviceTokenFile != "":
		src = svcauth.File(s.serviceTokenFile)
	case s.hs256Secret != "":
		src = svcauth.Minted([]byte(s.hs256Secret), "gateway")
	default:
		log.Warn("no service identity (ECHOPILOT_SERVICE_TOKEN_FILE or ECHOPILOT_JWT_HS256_SECRET): " +
			"every tenant gets the default rate limits, tenant overrides are not read, API keys are limited by client address")
		v, err := identity.NewVerifier(vcfg)
		if err != nil {
			return cfg, nil, err
		}
		cfg.Verifier = v
		return cfg, v.Close, nil
	}
	tenancyAddr := ""
	for _, b := range backends {
		if b.Name == "tenancy" {
			tenancyAddr = b.Addr
		}
	}
	conn, err := service.Dial(tenancyAddr, transport.DialOption(), grpc.WithPerRPCCredentials(svcauth.Credentials(src)))
	if err != nil {
		return cfg, nil, err
	}
	tenancy := tenancyv1.NewTenancyServiceClient(conn)
	// API keys are charged to their tenant like tokens: the gateway
	// resolves them as every service does.
	vcfg.APIKeys = apikeys.Remote(tenancy)
	v, err := identity.NewVerifier(vcfg)
	if err != nil {
		_ = conn.Close()
		return cfg, nil, err
	}
	cfg.Verifier = v
	cfg.Overrides = gateway.TenancyOverrides(tenancy)
	return cfg, func() { _ = conn.Close(); v.Close() }, nil
}
