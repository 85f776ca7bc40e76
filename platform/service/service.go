// Package service is the common main of every EchoPilot service: config,
// logging, database and migrations, identity, decision reporting, the gRPC
// server and background jobs. A service's main supplies only what is its own.
package service

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	tenantdatav1 "github.com/echopilot/echopilot/gen/go/echopilot/tenantdata/v1"
	"github.com/echopilot/echopilot/platform/apikeys"
	"github.com/echopilot/echopilot/platform/batcher"
	"github.com/echopilot/echopilot/platform/config"
	"github.com/echopilot/echopilot/platform/decisions"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/netguard"
	"github.com/echopilot/echopilot/platform/server"
	"github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/platform/svcauth"
	"github.com/echopilot/echopilot/platform/tenantdata"
	"github.com/echopilot/echopilot/platform/tracing"
)

// Config holds the settings every service shares.
type Config struct {
	GRPCAddr           string
	MetricsAddr        string
	Pprof              bool
	DatabaseURL        string
	DBMaxConns         int
	MigrateDatabaseURL string
	LogLevel           string
	AuthMode           string
	HS256Secret        string
	PublicKeyFiles     string
	JWKSURL            string
	Issuer             string
	Audience           string
	TenancyAddr        string
	ServiceTokenFile   string
	Reflection         bool
	// AllowOptionalAuthOnNetwork lets auth=optional listen beyond loopback.
	AllowOptionalAuthOnNetwork bool
	// AllowUnboundTokens lets auth=required run without issuer and audience.
	AllowUnboundTokens bool
	Drain              time.Duration
	StopTimeout        time.Duration
	MaxConnectionAge   time.Duration
	OTLPEndpoint       string
	TLS                TLS
}

// Spec is what a service brings to Run. A Spec runs once at a time: its
// Flags write the variables its Setup and background jobs read, so a second
// replica in one process needs a Spec of its own.
type Spec struct {
	Name        string
	GRPCAddr    string // default listen address, e.g. ":9101"
	MetricsAddr string // default metrics address, e.g. ":9201"
	Migrations  store.Migrations
	// ExtraMigrations are shared components' schemas (such as the outbox),
	// each with its own version table, applied after Migrations.
	ExtraMigrations []store.Migrations
	// Flags registers the service's own settings.
	Flags func(l *config.Loader)
	// LocalDecisions, when set, handles this service's access decisions
	// instead of tenancy's ReportDecisions (tenancy itself uses it).
	LocalDecisions func(rt *Runtime) decisions.Local
	// LocalAPIKeys, when set, resolves API keys without a call to tenancy
	// (tenancy itself, which keeps them). It runs after LocalDecisions.
	LocalAPIKeys func(rt *Runtime) identity.APIKeyLookup
	// LocalTenantStates, when set, reads tenant states without a call to
	// tenancy (tenancy itself). It runs after LocalDecisions.
	LocalTenantStates func(rt *Runtime) identity.TenantStateLookup
	// Setup registers the gRPC services and starts background jobs.
	Setup func(ctx context.Context, rt *Runtime) error
	// TenantData, when set, returns the service's exceptions to exporting
	// and erasing every tenant row (platform/tenantdata). It runs after
	// Setup, so its hooks may use what Setup built. Every service serves
	// TenantDataService, with or without rules.
	TenantData func(rt *Runtime) tenantdata.Rules
}

// Runtime is what Setup works with.
type Runtime struct {
	Config    Config
	Log       *zap.Logger
	DB        *store.DB
	Server    *server.Server
	Decisions *decisions.Reporter
	// Credential is this service's own identity on calls to its peers
	// (DialPeer attaches it).
	Credential svcauth.TokenSource
	// Transport is how the server listens and DialPeer dials (TLS or not).
	Transport *Transport
	// TenantStates is the cached view of tenant states the identity layer
	// refuses suspended tenants' writes with; services check it for work
	// that is not a call (webhook deliveries, referral clicks). Nil without
	// a tenancy address.
	TenantStates *identity.TenantStates

	jobs   sync.WaitGroup
	jobCtx context.Context
}

// TenantActive reports whether tenant's state lets its work go on (for work
// that is not a call, such as a webhook delivery or a referral click; calls
// are refused by the identity layer), at most identity.TenantStateCacheTTL
// old. Without a registry to ask, every tenant is active.
func (rt *Runtime) TenantActive(ctx context.Context, tenant string) bool {
	return rt.TenantStates == nil || rt.TenantStates.State(ctx, tenant).Active()
}

// GRPC is the server to register services on.
func (rt *Runtime) GRPC() *grpc.Server { return rt.Server.GRPC }

// Go runs fn until shutdown (an outbox relay, a listener); an error it
// returns before shutdown is logged.
func (rt *Runtime) Go(name string, fn func(context.Context) error) {
	rt.jobs.Add(1)
	go func() {
		defer rt.jobs.Done()
		if err := fn(rt.jobCtx); err != nil && rt.jobCtx.Err() == nil {
			rt.Log.Error("background job stopped", zap.String("job", name), zap.Error(err))
		}
	}()
}

// Every runs fn every interval until shutdown (a retention sweep, a relay).
func (rt *Runtime) Every(name string, interval time.Duration, fn func(context.Context) error) {
	rt.jobs.Add(1)
	go func() {
		defer rt.jobs.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if err := fn(rt.jobCtx); err != nil && rt.jobCtx.Err() == nil {
				rt.Log.Warn("background job failed", zap.String("job", name), zap.Error(err))
			}
			select {
			case <-rt.jobCtx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// Run is the whole life of a service until SIGTERM or Ctrl-C. args are
// os.Args[1:]; a first argument "migrate" applies the migrations and exits
// (for a Kubernetes Job).
func Run(args []string, spec Spec) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return RunContext(ctx, args, spec, Overrides{})
}

// Overrides let tests run a real service in-process. (Domain Hooks are
// something else: they hear of committed events.)
type Overrides struct {
	// Listener replaces listening on the gRPC address (e.g. a bufconn).
	Listener net.Listener
	// Log replaces the JSON logger (e.g. zaptest).
	Log *zap.Logger
	// Decisions replaces reporting to tenancy for services that report
	// remotely (tests that run one service alone).
	Decisions batcher.Sink[identity.Decision]
	// Registry replaces the server's new registry, so a test can gather
	// what the service registered.
	Registry *prometheus.Registry
}

// RunContext is Run until ctx ends.
func RunContext(ctx context.Context, args []string, spec Spec, ov Overrides) error {
	migrateOnly := len(args) > 0 && args[0] == "migrate"
	if migrateOnly {
		args = args[1:]
	}
	var cfg Config
	l := config.New(spec.Name)
	bind(l, &cfg, spec)
	if spec.Flags != nil {
		spec.Flags(l)
	}
	if err := l.Parse(args); err != nil {
		if errors.Is(err, config.ErrPrinted) {
			return nil // --print-config: described, nothing to start
		}
		return err
	}
	if cfg.DBMaxConns < 0 || cfg.DBMaxConns > 1000 {
		return fmt.Errorf("--db-max-conns=%d: want 0 (the default) to 1000", cfg.DBMaxConns)
	}
	log := ov.Log
	if log == nil {
		var err error
		if log, err = server.NewLogger(cfg.LogLevel, spec.Name); err != nil {
			return err
		}
		defer func() { _ = log.Sync() }()
	}

	if err := migrate(ctx, cfg, append([]store.Migrations{spec.Migrations}, spec.ExtraMigrations...), log); err != nil {
		return err
	}
	if migrateOnly {
		log.Info("migrations applied")
		return nil
	}
	stopTracing, err := tracing.Start(ctx, tracing.Config{Endpoint: cfg.OTLPEndpoint, Service: spec.Name}, log)
	if err != nil {
		return err
	}
	defer stopTracing()
	db, err := store.OpenPool(ctx, cfg.DatabaseURL, cfg.DBMaxConns)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := store.RoleSafety(ctx, db); err != nil {
		// Row-level security does not bind superusers or table owners; say
		// so loudly, but let local runs against a superuser URL work.
		log.Warn("database role weakens tenant isolation", zap.Error(err))
	}
	return serve(ctx, cfg, spec, db, log, ov)
}

func serve(ctx context.Context, cfg Config, spec Spec, db *store.DB, log *zap.Logger, ov Overrides) error {
	mode, err := identity.ParseMode(cfg.AuthMode)
	if err != nil {
		return err
	}
	if err := checkAuthExposure(cfg, mode, ov.Listener != nil); err != nil {
		return err
	}
	transport, err := cfg.TLS.Open(log)
	if err != nil {
		return err
	}
	jobCtx, stopJobs := context.WithCancel(context.Background())
	defer stopJobs()
	rt := &Runtime{Config: cfg, Log: log, DB: db, Credential: credential(cfg, spec.Name), Transport: transport, jobCtx: jobCtx}

	var local decisions.Local
	switch {
	case spec.LocalDecisions != nil:
		local = spec.LocalDecisions(rt)
	case ov.Decisions != nil:
		local.Sink = ov.Decisions
	default:
		conn, err := rt.DialPeer(cfg.TenancyAddr)
		if err != nil {
			return err
		}
		defer conn.Close()
		local.Sink = decisions.RemoteSink(tenancyv1.NewTenancyServiceClient(conn), spec.Name)
	}
	keys, states, closeRegistry, err := registryLookups(rt, spec)
	if err != nil {
		return err
	}
	defer closeRegistry()
	if states != nil {
		rt.TenantStates = identity.NewTenantStates(states, log)
	}
	verifier, err := identity.NewVerifier(identity.VerifierConfig{
		HS256Secret:    []byte(cfg.HS256Secret),
		PublicKeyFiles: config.List(cfg.PublicKeyFiles),
		JWKSURL:        cfg.JWKSURL,
		Issuer:         cfg.Issuer,
		Audience:       cfg.Audience,
		Logger:         log,
		APIKeys:        keys,
	})
	if err != nil {
		return err
	}
	defer verifier.Close()
	srvOpts := server.Options{Log: log, MaxConnectionAge: cfg.MaxConnectionAge, Reflection: cfg.Reflection, Creds: transport.Server}
	reg := ov.Registry
	if reg == nil {
		reg = server.NewRegistry()
	}
	reg.MustRegister(transport.ExpiryGauge())
	rt.Decisions = decisions.NewReporter(local, log, reg)
	ic, err := identity.NewInterceptor(identity.InterceptorConfig{
		Verifier: verifier, Mode: mode, Sink: rt.Decisions, Logger: log, BindServicePeers: transport.BindsServicePeers(),
		TenantStates: rt.TenantStates,
	})
	if err != nil {
		return err
	}
	srvOpts.Identity, srvOpts.Registry = ic, reg
	srv, err := server.New(srvOpts)
	if err != nil {
		return err
	}
	rt.Server = srv

	// Decisions outlive the server so those made while draining still arrive.
	reporterDone := make(chan struct{})
	reporterCtx, stopReporter := context.WithCancel(context.Background())
	go func() { rt.Decisions.Run(reporterCtx, 5*time.Second); close(reporterDone) }()

	if err := spec.Setup(ctx, rt); err != nil {
		stopReporter()
		<-reporterDone
		return fmt.Errorf("setup: %w", err)
	}
	var rules tenantdata.Rules
	if spec.TenantData != nil {
		rules = spec.TenantData(rt)
	}
	tenantdatav1.RegisterTenantDataServiceServer(srv.GRPC, tenantdata.New(db, rules))
	log.Info("starting", zap.String("auth_mode", mode.String()), zap.String("database", db.Dialect.String()),
		zap.Stringer("transport", transport))
	runErr := srv.Run(ctx, server.RunConfig{
		GRPCAddr: cfg.GRPCAddr, Listener: ov.Listener, MetricsAddr: cfg.MetricsAddr, Pprof: cfg.Pprof, Drain: cfg.Drain, StopTimeout: cfg.StopTimeout,
	})
	stopJobs()
	rt.jobs.Wait()
	stopReporter()
	<-reporterDone
	log.Info("stopped")
	return runErr
}

func migrate(ctx context.Context, cfg Config, ms []store.Migrations, log *zap.Logger) error {
	url := cfg.MigrateDatabaseURL
	if url == "" {
		url = cfg.DatabaseURL
	}
	db, err := store.Open(ctx, url)
	if err != nil {
		return err
	}
	defer db.Close()
	for _, m := range ms {
		if err := db.Migrate(ctx, m); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	log.Debug("migrations current")
	return nil
}

// registryLookups are how the service resolves API keys and tenant states:
// its own (tenancy), or tenancy's LookupAPIKey and GetTenantState over one
// connection of its own (none without a tenancy address: API keys are then
// refused and every tenant is served as active).
func registryLookups(rt *Runtime, spec Spec) (keys identity.APIKeyLookup, states identity.TenantStateLookup, closeConn func(), err error) {
	if spec.LocalAPIKeys != nil {
		keys = spec.LocalAPIKeys(rt)
	}
	if spec.LocalTenantStates != nil {
		states = spec.LocalTenantStates(rt)
	}
	if (keys != nil && states != nil) || rt.Config.TenancyAddr == "" {
		return keys, states, func() {}, nil
	}
	conn, err := rt.DialPeer(rt.Config.TenancyAddr)
	if err != nil {
		return nil, nil, nil, err
	}
	client := tenancyv1.NewTenancyServiceClient(conn)
	if keys == nil {
		keys = apikeys.Remote(client)
	}
	if states == nil {
		states = apikeys.RemoteTenantStates(client)
	}
	return keys, states, func() { _ = conn.Close() }, nil
}

// credential is the service's own identity: the token file the deployment
// mounts for it, else one it mints from the HS256 secret (local runs).
func credential(cfg Config, name string) svcauth.TokenSource {
	if cfg.ServiceTokenFile != "" {
		return svcauth.File(cfg.ServiceTokenFile)
	}
	if cfg.HS256Secret != "" {
		return svcauth.Minted([]byte(cfg.HS256Secret), name)
	}
	return svcauth.Unavailable("no service identity: set ECHOPILOT_SERVICE_TOKEN_FILE or ECHOPILOT_JWT_HS256_SECRET")
}

// checkAuthExposure refuses settings that would open the service to anyone
// on the network by mistake: anonymous callers (auth=optional) beyond
// loopback, and tokens not bound to this deployment's issuer and audience
// (auth=required), each unless allowed explicitly. An in-process listener
// (tests) is not on a network.
func checkAuthExposure(cfg Config, mode identity.Mode, inProcess bool) error {
	switch {
	case mode == identity.ModeOptional && !inProcess && !cfg.AllowOptionalAuthOnNetwork && !IsLoopbackAddr(cfg.GRPCAddr):
		return fmt.Errorf("auth mode optional serves anonymous callers, and %s is not a loopback address: "+
			"listen on 127.0.0.1, use auth mode required, or pass --allow-optional-auth-on-network", cfg.GRPCAddr)
	case mode == identity.ModeRequired && !cfg.AllowUnboundTokens && (cfg.Issuer == "" || cfg.Audience == ""):
		return errors.New("auth mode required without ECHOPILOT_JWT_ISSUER and ECHOPILOT_JWT_AUDIENCE accepts " +
			"any token the keys verify, whoever it was issued for: set both, or pass --allow-unbound-tokens")
	}
	return nil
}

// IsLoopbackAddr reports whether the listen address host:port binds only
// loopback ("localhost", 127.0.0.0/8, ::1); an empty host binds every
// interface.
func IsLoopbackAddr(addr string) bool { return netguard.IsLoopbackHostPort(addr) }

// DialPeer opens a connection to a peer service that carries this
// service's identity on every call, over TLS when a CA bundle is set
// (presenting this service's certificate to a server that asks).
func (rt *Runtime) DialPeer(addr string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	return Dial(addr, append([]grpc.DialOption{rt.Transport.DialOption(), grpc.WithPerRPCCredentials(svcauth.Credentials(rt.Credential))}, opts...)...)
}

// Dial opens a client connection to a peer service, in plaintext unless
// opts bring transport credentials (Transport.DialOption). Addresses like
// dns:///tenancy-headless:9101 spread calls over every replica.
func Dial(addr string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient(addr, append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`),
		grpc.WithStatsHandler(tracing.ClientHandler()),
	}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return conn, nil
}

func bind(l *config.Loader, c *Config, spec Spec) {
	l.String(&c.GRPCAddr, "grpc-addr", "ECHOPILOT_GRPC_ADDR", spec.GRPCAddr, "gRPC listen address")
	l.String(&c.OTLPEndpoint, "otlp-endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT", "",
		"OpenTelemetry collector (OTLP/gRPC, host:port or http(s)://host:port) for traces; empty: no export")
	l.String(&c.MetricsAddr, "metrics-addr", "ECHOPILOT_METRICS_ADDR", spec.MetricsAddr, "Prometheus /metrics listen address (empty disables)")
	l.Bool(&c.Pprof, "pprof", "ECHOPILOT_PPROF", false, "also serve net/http/pprof on the metrics listener, for profiling (never where tenants reach it)")
	l.SecretOr(&c.DatabaseURL, "database-url", "ECHOPILOT_DATABASE_URL", "sqlite://"+spec.Name+".db", "sqlite:///path.db or postgres://… (the service's own, non-owner role)")
	l.Int(&c.DBMaxConns, "db-max-conns", "ECHOPILOT_DB_MAX_CONNS", 0,
		"most PostgreSQL connections this process opens (0: 16); replicas share the server's max_connections")
	l.Secret(&c.MigrateDatabaseURL, "migrate-database-url", "ECHOPILOT_MIGRATE_DATABASE_URL", "owner connection for migrations (default: database-url)")
	l.String(&c.LogLevel, "log-level", "ECHOPILOT_LOG_LEVEL", "info", "debug, info, warn or error")
	l.String(&c.AuthMode, "auth-mode", "ECHOPILOT_AUTH_MODE", "required", "optional (anonymous callers allowed, unverified) or required")
	l.Secret(&c.HS256Secret, "jwt-hs256-secret", "ECHOPILOT_JWT_HS256_SECRET", "HS256 secret for tokens (local runs)")
	l.String(&c.PublicKeyFiles, "jwt-public-keys", "ECHOPILOT_JWT_PUBLIC_KEYS", "", "comma-separated PEM files of RS256/ES256/EdDSA public keys")
	l.String(&c.JWKSURL, "jwks-url", "ECHOPILOT_JWKS_URL", "", "JWKS URL of the identity provider")
	l.String(&c.Issuer, "jwt-issuer", "ECHOPILOT_JWT_ISSUER", "", "required iss claim, when set")
	l.String(&c.Audience, "jwt-audience", "ECHOPILOT_JWT_AUDIENCE", "", "required aud claim, when set")
	l.String(&c.TenancyAddr, "tenancy-addr", "ECHOPILOT_TENANCY_ADDR", "127.0.0.1:9101", "tenancy gRPC address for decision reports and API key lookups")
	l.String(&c.ServiceTokenFile, "service-token-file", "ECHOPILOT_SERVICE_TOKEN_FILE", "",
		"file holding this service's own token (subject service:"+spec.Name+", tenant default, role service) for calls to other services, re-read when it changes (default: minted from the HS256 secret)")
	l.Bool(&c.Reflection, "grpc-reflection", "ECHOPILOT_GRPC_REFLECTION", false, "serve gRPC reflection (lists every method to anyone who connects; local runs)")
	l.Bool(&c.AllowOptionalAuthOnNetwork, "allow-optional-auth-on-network", "ECHOPILOT_ALLOW_OPTIONAL_AUTH_ON_NETWORK", false,
		"let auth mode optional listen on a non-loopback address")
	l.Bool(&c.AllowUnboundTokens, "allow-unbound-tokens", "ECHOPILOT_ALLOW_UNBOUND_TOKENS", false,
		"let auth mode required run without a required issuer and audience")
	l.Duration(&c.Drain, "shutdown-drain", "ECHOPILOT_SHUTDOWN_DRAIN", 0, "time NOT_SERVING before stopping, so load balancers move away")
	l.Duration(&c.StopTimeout, "shutdown-timeout", "ECHOPILOT_SHUTDOWN_TIMEOUT", 20*time.Second, "graceful stop limit")
	BindTLS(l, &c.TLS)
	l.Duration(&c.MaxConnectionAge, "max-connection-age", "ECHOPILOT_MAX_CONNECTION_AGE", 5*time.Minute, "clients reconnect after this, spreading load over new replicas")
}
