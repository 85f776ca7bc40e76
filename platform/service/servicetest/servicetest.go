// Package servicetest runs a real service in-process for tests: the same
// Spec, interceptor chain, store and migrations as the binary, served over
// an in-memory bufconn listener.
package servicetest

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/metricstest"
	"github.com/echopilot/echopilot/platform/server"
	"github.com/echopilot/echopilot/platform/service"
	"github.com/echopilot/echopilot/platform/svcauth"
	"github.com/echopilot/echopilot/platform/tracing"
)

// Secret is the HS256 secret the in-process services verify tokens with.
const Secret = "servicetest-secret-0123456789abcdef0123456789"

// Options tune Start.
type Options struct {
	AuthMode    string // default "optional"
	DatabaseURL string // default: a SQLite file in t.TempDir()
	MigrateURL  string // owner URL for migrations (PostgreSQL)
	Args        []string
	// Quiet discards the service's logs (benchmarks, and fuzz targets, which
	// may not log through the test).
	Quiet bool
	// TCP serves on a loopback port instead of an in-memory pipe, for
	// benchmarks that should pay what a remote client pays.
	TCP bool
	// Listener, when set, is the TCP listener to serve on (implies TCP):
	// peers can be given its address before the service starts, and a
	// restarted service can listen on the address of the one it replaces.
	Listener net.Listener
	// Decisions receives the access decisions of a service that reports to
	// tenancy; nil accepts and forgets them (tenancy is not under test).
	Decisions func(context.Context, []identity.Decision) error
	// Registry, when set, is the service's metrics registry (see
	// metricstest), instead of one nobody can read.
	Registry *prometheus.Registry
}

// Start runs spec until the test ends and returns a client connection to it.
func Start(t testing.TB, spec service.Spec, opt Options) *grpc.ClientConn {
	t.Helper()
	conn, _ := StartStoppable(t, spec, opt)
	return conn
}

// StartStoppable is Start, with a stop function that ends the service
// before the test does (a crash or restart); calling it again does nothing.
func StartStoppable(t testing.TB, spec service.Spec, opt Options) (*grpc.ClientConn, func()) {
	t.Helper()
	if opt.AuthMode == "" {
		opt.AuthMode = "optional"
	}
	if opt.DatabaseURL == "" {
		opt.DatabaseURL = "sqlite://" + filepath.Join(t.TempDir(), spec.Name+".db")
	}
	args := append([]string{
		"--auth-mode=" + opt.AuthMode,
		"--database-url=" + opt.DatabaseURL,
		"--migrate-database-url=" + opt.MigrateURL,
		"--jwt-hs256-secret=" + Secret,
		"--metrics-addr=",
		// Test tokens name no issuer or audience.
		"--allow-unbound-tokens",
	}, opt.Args...)
	log := zaptest.NewLogger(t)
	if opt.Quiet {
		log = zap.NewNop()
	}
	var lis net.Listener
	// Traced like the platform's own clients (service.Dial).
	target, dialOpts := "", []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(tracing.ClientHandler())}
	if opt.Listener != nil {
		lis, target = opt.Listener, opt.Listener.Addr().String()
	} else if opt.TCP {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		lis, target = l, l.Addr().String()
	} else {
		bl := bufconn.Listen(1 << 20)
		lis, target = bl, "passthrough:///bufnet"
		dialOpts = append(dialOpts, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return bl.DialContext(ctx) }))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		decisions := opt.Decisions
		if decisions == nil {
			decisions = func(context.Context, []identity.Decision) error { return nil }
		}
		done <- service.RunContext(ctx, args, spec, service.Overrides{Listener: lis, Log: log, Decisions: decisions, Registry: opt.Registry})
	}()
	conn, err := grpc.NewClient(target, dialOpts...)
	if err != nil {
		cancel()
		t.Fatalf("dial %s: %v", spec.Name, err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			conn.Close()
			cancel()
			if err := <-done; err != nil {
				t.Errorf("%s stopped with %v", spec.Name, err)
			}
		})
	}
	t.Cleanup(stop)
	if err := waitServing(conn, done); err != nil {
		t.Fatalf("%s did not start: %v", spec.Name, err)
	}
	return conn, stop
}

func waitServing(conn *grpc.ClientConn, done chan error) error {
	client := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			done <- err // let Cleanup see it too
			return err
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("not SERVING after 30s")
}

// As is a caller of tenant with roles, through a token verified with Secret.
func As(t testing.TB, tenant string, roles ...string) context.Context {
	t.Helper()
	tok, err := identity.MintHS256([]byte(Secret),
		identity.Claims{Subject: "u@" + tenant, TenantID: tenant, Roles: roles}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+tok)
}

// AsService is platform service name acting for tenant ("" for its own),
// with the identity the service mints for itself.
func AsService(t testing.TB, name, tenant string) context.Context {
	t.Helper()
	tok, err := svcauth.Minted([]byte(Secret), name)(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+tok)
	if tenant != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, identity.MDTenant, tenant)
	}
	return ctx
}

// WantErr fails t unless err has code and the ErrorInfo reason.
func WantErr(t testing.TB, err error, code codes.Code, reason string) {
	t.Helper()
	if status.Code(err) != code || apierr.Reason(err) != reason {
		t.Fatalf("got %v (reason %q), want %v %s", err, apierr.Reason(err), code, reason)
	}
}

// GoldenMetrics starts spec (with args) on a registry of its own and
// compares the metric names a scrape of it shows with the committed list
// in file (metricstest.Golden; -update-metrics rewrites it).
func GoldenMetrics(t *testing.T, spec service.Spec, file string, args ...string) {
	t.Helper()
	reg := server.NewRegistry()
	Start(t, spec, Options{Registry: reg, Quiet: true, Args: args})
	metricstest.Golden(t, reg, file)
}
