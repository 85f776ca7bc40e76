package tracing_test

import (
	"context"
	"net"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/echopilot/echopilot/platform/tracing"
	"github.com/echopilot/echopilot/platform/tracing/tracingtest"
)

type echo struct {
	testpb.UnimplementedTestServiceServer
}

func (echo) EmptyCall(context.Context, *testpb.Empty) (*testpb.Empty, error) {
	return &testpb.Empty{}, nil
}

func serve(t *testing.T, register func(*grpc.Server), opts ...grpc.ServerOption) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(opts...)
	register(s)
	go func() { _ = s.Serve(l) }()
	t.Cleanup(s.Stop)
	return l.Addr().String()
}

// A call from a traced client to a traced server exports one trace: the
// server's span is the child of the client's. Health checks are not traced.
func TestSpansReachTheCollector(t *testing.T) {
	col := tracingtest.Start(t)
	shutdown, err := tracing.Setup(t.Context(), tracing.Config{Endpoint: col.Endpoint, Service: "svc-under-test"})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, func(s *grpc.Server) {
		testpb.RegisterTestServiceServer(s, echo{})
		healthpb.RegisterHealthServer(s, health.NewServer())
	}, grpc.StatsHandler(tracing.ServerHandler()))
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(tracing.ClientHandler()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := testpb.NewTestServiceClient(conn).EmptyCall(t.Context(), &testpb.Empty{}); err != nil {
		t.Fatal(err)
	}
	if _, err := healthpb.NewHealthClient(conn).Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	const method = "grpc.testing.TestService/EmptyCall"
	col.Await(t, "svc-under-test", map[string]tracepb.Span_SpanKind{
		method: tracepb.Span_SPAN_KIND_CLIENT, "grpc.health.v1.Health/Check": tracepb.Span_SPAN_KIND_CLIENT,
	})
	col.Await(t, "svc-under-test", map[string]tracepb.Span_SpanKind{method: tracepb.Span_SPAN_KIND_SERVER})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := shutdown(ctx); err != nil { // flushes the rest
		t.Fatal(err)
	}

	client := col.Find("svc-under-test", method, tracepb.Span_SPAN_KIND_CLIENT)
	server := col.Find("svc-under-test", method, tracepb.Span_SPAN_KIND_SERVER)
	if client == nil || server == nil {
		t.Fatalf("spans exported: %v; want the client and server spans of EmptyCall", col.Spans("svc-under-test"))
	}
	if string(server.GetTraceId()) != string(client.GetTraceId()) || string(server.GetParentSpanId()) != string(client.GetSpanId()) {
		t.Fatalf("server span %x/%x parent %x is not the child of client span %x/%x",
			server.GetTraceId(), server.GetSpanId(), server.GetParentSpanId(), client.GetTraceId(), client.GetSpanId())
	}
	if s := col.Find("svc-under-test", "grpc.health.v1.Health/Check", tracepb.Span_SPAN_KIND_SERVER); s != nil {
		t.Fatalf("a health check was traced on the server: %v", s)
	}
}

func TestEndpointForms(t *testing.T) {
	for _, bad := range []string{"ftp://collector:4317", "http://", "://x"} {
		if _, err := tracing.Setup(t.Context(), tracing.Config{Endpoint: bad, Service: "x"}); err == nil {
			t.Errorf("endpoint %q accepted", bad)
		}
	}
	shutdown, err := tracing.Setup(t.Context(), tracing.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
}
