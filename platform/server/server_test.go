package server

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/identity"
)

const secret = "server-test-secret-0123456789abcdef0123"

// faulty is a TenancyService whose handlers misbehave on purpose, to check
// what the chain does with it.
type faulty struct {
	tenancyv1.UnimplementedTenancyServiceServer
	release chan struct{} // GetTenant waits on it, to hold a call in flight
	calls   atomic.Int32
}

func (f *faulty) GetTenantInfo(ctx context.Context, _ *tenancyv1.GetTenantInfoRequest) (*tenancyv1.GetTenantInfoResponse, error) {
	f.calls.Add(1)
	return nil, errors.New("pq: password authentication failed for user secret_admin")
}

func (f *faulty) TestAccess(ctx context.Context, _ *tenancyv1.TestAccessRequest) (*tenancyv1.TestAccessResponse, error) {
	panic("boom")
}

func (f *faulty) ListTenants(ctx context.Context, _ *tenancyv1.ListTenantsRequest) (*tenancyv1.ListTenantsResponse, error) {
	return nil, apierr.NotFound("THING_NOT_FOUND", "no thing").InDomain("test.echopilot")
}

func (f *faulty) GetTenant(ctx context.Context, req *tenancyv1.GetTenantRequest) (*tenancyv1.GetTenantResponse, error) {
	<-f.release
	return &tenancyv1.GetTenantResponse{Tenant: &tenancyv1.Tenant{TenantId: req.GetTenantId()}}, nil
}

type harness struct {
	srv    *Server
	client tenancyv1.TenancyServiceClient
	health healthpb.HealthClient
	svc    *faulty
	stop   context.CancelFunc
	done   chan error
	logs   *observer.ObservedLogs
}

func start(t *testing.T, mode identity.Mode, drain time.Duration) *harness {
	t.Helper()
	observed, logs := observer.New(zapcore.InfoLevel)
	log := zap.New(zapcore.NewTee(zaptest.NewLogger(t).Core(), observed))
	v, err := identity.NewVerifier(identity.VerifierConfig{HS256Secret: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	ic, err := identity.NewInterceptor(identity.InterceptorConfig{Verifier: v, Mode: mode, Sink: identity.SinkFunc(func(identity.Decision) {})})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Options{Log: log, Identity: ic})
	if err != nil {
		t.Fatal(err)
	}
	svc := &faulty{release: make(chan struct{})}
	tenancyv1.RegisterTenancyServiceServer(srv.GRPC, svc)
	lis := bufconn.Listen(1 << 20)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, RunConfig{Listener: lis, Drain: drain, StopTimeout: 5 * time.Second}) }()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{srv: srv, client: tenancyv1.NewTenancyServiceClient(conn), health: healthpb.NewHealthClient(conn), svc: svc, stop: cancel, done: done,
		logs: logs}
	t.Cleanup(func() {
		conn.Close()
		cancel()
		<-done
	})
	return h
}

func TestInternalErrorsAreMasked(t *testing.T) {
	h := start(t, identity.ModeOptional, 0)
	_, err := h.client.GetTenantInfo(context.Background(), &tenancyv1.GetTenantInfoRequest{})
	if status.Code(err) != codes.Internal || apierr.Reason(err) != "INTERNAL" {
		t.Fatalf("got %v", err)
	}
	if strings.Contains(err.Error(), "secret_admin") || strings.Contains(err.Error(), "password") {
		t.Fatalf("internal detail leaked to the client: %v", err)
	}
}

func TestPanicBecomesInternalAndServerSurvives(t *testing.T) {
	h := start(t, identity.ModeOptional, 0)
	_, err := h.client.TestAccess(context.Background(), &tenancyv1.TestAccessRequest{TargetTenantId: "acme"})
	if status.Code(err) != codes.Internal || strings.Contains(err.Error(), "boom") {
		t.Fatalf("panic gave %v", err)
	}
	if _, err := h.client.ListTenants(context.Background(), &tenancyv1.ListTenantsRequest{}); apierr.Reason(err) != "THING_NOT_FOUND" {
		t.Fatalf("server did not survive the panic: %v", err)
	}
}

// An internal error and a panic are each logged once at error level, by the
// place that knows the cause (with the error, or the stack); the access
// log's line for the call stays at info.
func TestErrorsLoggedOnce(t *testing.T) {
	h := start(t, identity.ModeOptional, 0)
	errorLines := func() []string {
		var out []string
		for _, e := range h.logs.FilterLevelExact(zapcore.ErrorLevel).All() {
			out = append(out, e.Message)
		}
		return out
	}
	if _, err := h.client.GetTenantInfo(context.Background(), &tenancyv1.GetTenantInfoRequest{}); status.Code(err) != codes.Internal {
		t.Fatalf("got %v", err)
	}
	if got := errorLines(); len(got) != 1 || got[0] != "internal error" {
		t.Fatalf("error lines after an internal error: %q", got)
	}
	if _, err := h.client.TestAccess(context.Background(), &tenancyv1.TestAccessRequest{TargetTenantId: "acme"}); status.Code(err) != codes.Internal {
		t.Fatalf("got %v", err)
	}
	if got := errorLines(); len(got) != 2 || got[1] != "panic in handler" {
		t.Fatalf("error lines after a panic: %q", got)
	}
	if n := h.logs.FilterMessageSnippet("finished call").FilterLevelExact(zapcore.InfoLevel).Len(); n < 2 {
		t.Fatalf("%d access log lines at info for the two failed calls", n)
	}
}

func TestClientErrorsPassThroughWithReason(t *testing.T) {
	h := start(t, identity.ModeOptional, 0)
	_, err := h.client.ListTenants(context.Background(), &tenancyv1.ListTenantsRequest{})
	if status.Code(err) != codes.NotFound || apierr.Reason(err) != "THING_NOT_FOUND" {
		t.Fatalf("got %v", err)
	}
}

// Identity runs before validation: a caller without a token learns nothing
// about the request's shape.
func TestIdentityBeforeValidation(t *testing.T) {
	h := start(t, identity.ModeRequired, 0)
	_, err := h.client.TestAccess(context.Background(), &tenancyv1.TestAccessRequest{})
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("got %v, want Unauthenticated before FIELD_REQUIRED", err)
	}
	h2 := start(t, identity.ModeOptional, 0)
	_, err = h2.client.TestAccess(context.Background(), &tenancyv1.TestAccessRequest{})
	if status.Code(err) != codes.InvalidArgument || apierr.Reason(err) != "FIELD_REQUIRED" {
		t.Fatalf("got %v, want FIELD_REQUIRED", err)
	}
}

func TestRequestIDEchoedOrGenerated(t *testing.T) {
	h := start(t, identity.ModeOptional, 0)
	var hdr metadata.MD
	ctx := metadata.AppendToOutgoingContext(context.Background(), RequestIDKey, "req-42")
	_, _ = h.client.ListTenants(ctx, &tenancyv1.ListTenantsRequest{}, grpc.Header(&hdr))
	if got := hdr.Get(RequestIDKey); len(got) != 1 || got[0] != "req-42" {
		t.Fatalf("request id header = %v", got)
	}
	_, _ = h.client.ListTenants(context.Background(), &tenancyv1.ListTenantsRequest{}, grpc.Header(&hdr))
	if got := hdr.Get(RequestIDKey); len(got) != 1 || len(got[0]) != 26 {
		t.Fatalf("generated request id = %v, want a ULID", got)
	}
}

func TestMetricsCountCalls(t *testing.T) {
	h := start(t, identity.ModeOptional, 0)
	_, _ = h.client.ListTenants(context.Background(), &tenancyv1.ListTenantsRequest{})
	n, err := testutil.GatherAndCount(h.srv.Registry, "grpc_server_handled_total")
	if err != nil || n == 0 {
		t.Fatalf("grpc_server_handled_total series = %d, %v", n, err)
	}
}

// On shutdown the server reports NOT_SERVING while draining and lets the
// call in flight finish.
func TestGracefulShutdown(t *testing.T) {
	h := start(t, identity.ModeOptional, 300*time.Millisecond)
	resp, err := h.health.Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health before = %v, %v", resp, err)
	}
	inflight := make(chan error, 1)
	go func() {
		_, err := h.client.GetTenant(context.Background(), &tenancyv1.GetTenantRequest{TenantId: "acme"})
		inflight <- err
	}()
	time.Sleep(50 * time.Millisecond) // let the call reach the handler
	h.stop()
	deadline := time.Now().Add(time.Second)
	for {
		resp, err := h.health.Check(context.Background(), &healthpb.HealthCheckRequest{})
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_NOT_SERVING {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never NOT_SERVING during drain: %v %v", resp, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(h.svc.release)
	if err := <-inflight; err != nil {
		t.Fatalf("in-flight call cut off: %v", err)
	}
	select {
	case err := <-h.done:
		if err != nil {
			t.Fatalf("Run returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after shutdown")
	}
	h.done <- nil // for Cleanup
}

// Reflection lists every method to anyone who connects: off unless asked.
func TestReflectionOnlyWhenAsked(t *testing.T) {
	log := zaptest.NewLogger(t)
	ic, err := identity.NewInterceptor(identity.InterceptorConfig{
		Verifier: mustVerifier(t), Mode: identity.ModeRequired, Sink: identity.SinkFunc(func(identity.Decision) {}),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, on := range []bool{false, true} {
		srv, err := New(Options{Log: log, Identity: ic, Reflection: on})
		if err != nil {
			t.Fatal(err)
		}
		_, registered := srv.GRPC.GetServiceInfo()["grpc.reflection.v1.ServerReflection"]
		if registered != on {
			t.Errorf("Reflection %v: reflection registered = %v", on, registered)
		}
	}
}

func mustVerifier(t *testing.T) *identity.Verifier {
	t.Helper()
	v, err := identity.NewVerifier(identity.VerifierConfig{HS256Secret: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	return v
}
