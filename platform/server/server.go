// Package server is the gRPC runtime every service shares: the interceptor
// chain (metrics → logging → identity/policy → validation → recovery),
// health and reflection, Prometheus metrics and graceful shutdown.
package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/echopilot/echopilot/platform/tracing"
	"github.com/echopilot/echopilot/platform/validate"
)

// Interceptors is what the identity/policy layer provides to the chain.
type Interceptors interface {
	UnaryServerInterceptor() grpc.UnaryServerInterceptor
	StreamServerInterceptor() grpc.StreamServerInterceptor
}

// Options configure New.
type Options struct {
	Log *zap.Logger
	// Identity enforces tokens and method policies. Required: a service
	// without it would serve every caller.
	Identity Interceptors
	// MaxConnectionAge makes clients reconnect now and then so new replicas
	// behind a headless Service get traffic (0 = 5 minutes).
	MaxConnectionAge time.Duration
	// MaxRecvBytes bounds one request message (0 = 4 MiB).
	MaxRecvBytes int
	// Registry collects the server's and the service's metrics (nil = new).
	Registry *prometheus.Registry
	// Reflection registers gRPC server reflection, which lists every method
	// to anyone who can connect: for local runs and debugging only.
	Reflection bool
	// MaxConcurrentStreams bounds the calls in flight on one connection
	// (0 = 1000), so one client cannot hold unbounded server goroutines.
	MaxConcurrentStreams uint32
	// Creds secure the listener (TLS); nil serves plaintext.
	Creds credentials.TransportCredentials
}

// keepaliveMinTime is the shortest client ping interval the servers accept;
// clients that ping more often (a cheap way to keep a server busy) are
// sent GOAWAY. Edge workers ping every 30 s.
const keepaliveMinTime = 10 * time.Second

// Server is a gRPC server with the shared chain. Register services on GRPC
// before calling Run.
type Server struct {
	GRPC     *grpc.Server
	Health   *health.Server
	Registry *prometheus.Registry
	log      *zap.Logger
}

// New builds the server. Health is always registered, reflection when
// opt.Reflection says so.
func New(opt Options) (*Server, error) {
	if opt.Log == nil || opt.Identity == nil {
		return nil, errors.New("server: Log and Identity are required")
	}
	if opt.MaxConnectionAge <= 0 {
		opt.MaxConnectionAge = 5 * time.Minute
	}
	if opt.MaxConcurrentStreams == 0 {
		opt.MaxConcurrentStreams = 1000
	}
	if opt.MaxRecvBytes <= 0 {
		opt.MaxRecvBytes = 4 << 20
	}
	reg := opt.Registry
	if reg == nil {
		reg = NewRegistry()
	}
	metrics := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
		grpcprom.WithHistogramBuckets([]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}),
	))
	reg.MustRegister(metrics)

	logger := zapLogger(opt.Log)
	logOpts := []logging.Option{
		logging.WithLogOnEvents(logging.FinishCall),
		logging.WithLevels(callLevel),
	}
	recoverOpt := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		opt.Log.Error("panic in handler", zap.Any("panic", p), zap.String("request_id", RequestID(ctx)),
			zap.ByteString("stack", debug.Stack()))
		return internalError(RequestID(ctx))
	})
	var checker validate.Checker

	var creds []grpc.ServerOption
	if opt.Creds != nil {
		creds = append(creds, grpc.Creds(opt.Creds))
	}
	g := grpc.NewServer(append(creds,
		grpc.StatsHandler(tracing.ServerHandler()),
		// Handlers run on long-lived workers, not a new goroutine per
		// call: a fresh goroutine's stack grows again on every call (a
		// SQLite query is deep), which cost tenancy an eighth of its CPU
		// under load (BENCHMARKS.md). Past the workers, grpc-go starts
		// goroutines as before.
		grpc.NumStreamWorkers(streamWorkers()),
		grpc.MaxRecvMsgSize(opt.MaxRecvBytes),
		grpc.MaxConcurrentStreams(opt.MaxConcurrentStreams),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionAge:      opt.MaxConnectionAge,
			MaxConnectionAgeGrace: 30 * time.Second,
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             keepaliveMinTime,
			PermitWithoutStream: true, // idle edge workers keep their connection warm
		}),
		grpc.ChainUnaryInterceptor(
			metrics.UnaryServerInterceptor(),
			requestIDUnary,
			logging.UnaryServerInterceptor(logger, logOpts...),
			maskUnary(opt.Log),
			opt.Identity.UnaryServerInterceptor(),
			checker.UnaryServerInterceptor(),
			recovery.UnaryServerInterceptor(recoverOpt),
		),
		grpc.ChainStreamInterceptor(
			metrics.StreamServerInterceptor(),
			requestIDStream,
			logging.StreamServerInterceptor(logger, logOpts...),
			maskStream(opt.Log),
			opt.Identity.StreamServerInterceptor(),
			checker.StreamServerInterceptor(),
			recovery.StreamServerInterceptor(recoverOpt),
		),
	)...)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(g, hs)
	if opt.Reflection {
		reflection.Register(g)
	}
	return &Server{GRPC: g, Health: hs, Registry: reg, log: opt.Log}, nil
}

// RunConfig says where to listen and how to stop.
type RunConfig struct {
	GRPCAddr    string
	Listener    net.Listener  // used instead of GRPCAddr when set
	MetricsAddr string        // "" disables the /metrics listener
	Pprof       bool          // also serve net/http/pprof there (WithPprof)
	Drain       time.Duration // NOT_SERVING before stopping, so balancers move away
	StopTimeout time.Duration // GracefulStop longer than this becomes Stop
}

// Run serves until ctx ends, then drains: health NOT_SERVING → wait Drain →
// GracefulStop, forced after StopTimeout.
func (s *Server) Run(ctx context.Context, rc RunConfig) error {
	ln := rc.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", rc.GRPCAddr); err != nil {
			return fmt.Errorf("listen grpc %s: %w", rc.GRPCAddr, err)
		}
	}
	s.markServing()
	var metricsSrv *http.Server
	errc := make(chan error, 2)
	if rc.MetricsAddr != "" {
		mln, err := net.Listen("tcp", rc.MetricsAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen metrics %s: %w", rc.MetricsAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{Registry: s.Registry}))
		var h http.Handler = mux
		if rc.Pprof {
			h = WithPprof(mux)
		}
		metricsSrv = &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := metricsSrv.Serve(mln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("metrics server: %w", err)
			}
		}()
		s.log.Info("metrics listening", zap.String("addr", mln.Addr().String()))
	}
	go func() {
		if err := s.GRPC.Serve(ln); err != nil {
			errc <- fmt.Errorf("grpc server: %w", err)
		}
	}()
	s.log.Info("grpc listening", zap.String("addr", ln.Addr().String()))

	select {
	case err := <-errc:
		s.GRPC.Stop()
		return err
	case <-ctx.Done():
	}
	s.log.Info("shutting down", zap.Duration("drain", rc.Drain))
	s.Health.Shutdown()
	time.Sleep(rc.Drain)
	stopped := make(chan struct{})
	go func() { s.GRPC.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(rc.StopTimeout):
		s.log.Warn("graceful stop timed out; closing connections")
		s.GRPC.Stop()
	}
	if metricsSrv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = metricsSrv.Shutdown(sctx)
	}
	return nil
}

func (s *Server) markServing() {
	s.Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	for name := range s.GRPC.GetServiceInfo() {
		s.Health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
}

// NewRegistry returns a registry with the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// NewLogger returns a JSON zap logger at level (debug, info, warn, error).
func NewLogger(level, service string) (*zap.Logger, error) {
	cfg := zap.NewProductionConfig()
	if err := cfg.Level.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	cfg.Sampling = nil
	l, err := cfg.Build()
	if err != nil {
		return nil, fmt.Errorf("build logger: %w", err)
	}
	return l.With(zap.String("service", service)), nil
}

// streamWorkers is the number of handler goroutines kept: enough for the
// calls a small replica serves at once.
func streamWorkers() uint32 { return uint32(max(16, 4*runtime.GOMAXPROCS(0))) }
