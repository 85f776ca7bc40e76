package main

// The baseline: a bare grpc-gateway in front of a gRPC server, in two
// processes like our gateway and tenancy, so the load command can say what
// our gateway costs beside the library it is built on. Both are this binary
// run again with roleEnv set.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/echopilot/echopilot/platform/devstack"
)

const (
	roleEnv        = "ECHOPILOT_LOAD_ROLE" // baseline-backend or baseline-gateway
	listenEnv      = "ECHOPILOT_LOAD_ADDR"
	metricsEnv     = "ECHOPILOT_LOAD_METRICS_ADDR"
	backendEnv     = "ECHOPILOT_LOAD_BACKEND"
	baselinePath   = "/healthz"
	roleBackend    = "baseline-backend"
	roleBaselineGW = "baseline-gateway"
)

// serveRole runs this process as one half of the baseline until SIGTERM.
func serveRole(role string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	// The default registry carries the process collector:
	// process_cpu_seconds_total, as our binaries export it.
	mln, err := net.Listen("tcp", os.Getenv(metricsEnv))
	if err != nil {
		return err
	}
	metrics := &http.Server{Handler: promhttp.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = metrics.Serve(mln) }()
	defer metrics.Close()
	ln, err := net.Listen("tcp", os.Getenv(listenEnv))
	if err != nil {
		return err
	}
	switch role {
	case roleBackend:
		srv := grpc.NewServer()
		healthpb.RegisterHealthServer(srv, health.NewServer()) // "" is SERVING
		go func() { <-ctx.Done(); srv.Stop() }()
		return srv.Serve(ln)
	case roleBaselineGW:
		conn, err := grpc.NewClient(os.Getenv(backendEnv), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer conn.Close()
		srv := &http.Server{Handler: bareGateway(healthpb.NewHealthClient(conn))}
		go func() { <-ctx.Done(); _ = srv.Close() }()
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
	return fmt.Errorf("unknown role %q", role)
}

// bareGateway is grpc-gateway's default ServeMux with GET /healthz forwarded
// to Health.Check. grpc_health_v1 has no generated gateway, so the handler
// does what a generated *.pb.gw.go client handler does for a GET without
// parameters (see gen/go/.../tenancy.pb.gw.go), step for step.
func bareGateway(client healthpb.HealthClient) *runtime.ServeMux {
	mux := runtime.NewServeMux()
	const method = "/grpc.health.v1.Health/Check"
	err := mux.HandlePath(http.MethodGet, baselinePath, func(w http.ResponseWriter, req *http.Request, _ map[string]string) {
		ctx, cancel := context.WithCancel(req.Context())
		defer cancel()
		_, outbound := runtime.MarshalerForRequest(mux, req)
		ctx, err := runtime.AnnotateContext(ctx, mux, req, method, runtime.WithHTTPPathPattern(baselinePath))
		if err != nil {
			runtime.HTTPError(ctx, mux, outbound, w, req, err)
			return
		}
		var md runtime.ServerMetadata
		if req.Body != nil {
			_, _ = io.Copy(io.Discard, req.Body)
		}
		resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Header(&md.HeaderMD), grpc.Trailer(&md.TrailerMD))
		ctx = runtime.NewServerMetadataContext(ctx, md)
		if err != nil {
			runtime.HTTPError(ctx, mux, outbound, w, req, err)
			return
		}
		runtime.ForwardResponseMessage(ctx, mux, outbound, w, req, resp, mux.GetForwardResponseOptions()...)
	})
	if err != nil {
		panic(err) // a constant pattern
	}
	return mux
}

// baseline is a running baseline pair.
type baseline struct {
	URL                    string // the bare gateway's, ending in baselinePath
	Addr                   string // the bare gateway's host:port
	backend, gateway       *devstack.Proc
	backendMet, gatewayMet string // /metrics URLs
}

// startBaseline starts the pair, each on loopback ports of its own.
func startBaseline(ctx context.Context) (*baseline, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	ports, err := devstack.FreePorts(4)
	if err != nil {
		return nil, err
	}
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i]) }
	b := &baseline{Addr: addr(2), backendMet: "http://" + addr(1) + "/metrics", gatewayMet: "http://" + addr(3) + "/metrics"}
	b.URL = "http://" + b.Addr + baselinePath
	var mu sync.Mutex
	b.backend, err = devstack.Start("bare-grpc", self, []string{roleEnv + "=" + roleBackend, listenEnv + "=" + addr(0), metricsEnv + "=" + addr(1)},
		devstack.PrefixWriter(os.Stderr, &mu, "bare-grpc"))
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := devstack.WaitGRPC(wctx, addr(0), b.backend); err != nil {
		return nil, errors.Join(err, b.Close())
	}
	b.gateway, err = devstack.Start("bare-gw", self, []string{roleEnv + "=" + roleBaselineGW, listenEnv + "=" + addr(2), metricsEnv + "=" + addr(3), backendEnv + "=" + addr(0)},
		devstack.PrefixWriter(os.Stderr, &mu, "bare-gw"))
	if err != nil {
		return nil, errors.Join(err, b.Close())
	}
	if err := devstack.WaitHTTP(wctx, b.URL, b.gateway); err != nil {
		return nil, errors.Join(err, b.Close())
	}
	return b, nil
}

// Close stops the gateway, then the backend.
func (b *baseline) Close() error {
	var errs []error
	for _, p := range []*devstack.Proc{b.gateway, b.backend} {
		if p != nil {
			errs = append(errs, p.Stop(5*time.Second))
		}
	}
	return errors.Join(errs...)
}
