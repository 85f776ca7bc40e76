package tracing_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/echopilot/echopilot/platform/tracing"
)

// seen records the span context its calls arrive with.
type seen struct {
	testpb.UnimplementedTestServiceServer
	got chan trace.SpanContext
}

func (s seen) EmptyCall(ctx context.Context, _ *testpb.Empty) (*testpb.Empty, error) {
	s.got <- trace.SpanContextFromContext(ctx)
	return &testpb.Empty{}, nil
}

// Without an exporter a trace context still crosses HTTP and gRPC hops:
// an incoming traceparent reaches the handler's context, and a call made
// from that context carries it to the next service.
func TestPropagatesWithoutExporter(t *testing.T) {
	shutdown, err := tracing.Setup(t.Context(), tracing.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = shutdown(context.Background()) })
	if tracing.Exporting() {
		t.Fatal("exporting without an endpoint")
	}
	srv := seen{got: make(chan trace.SpanContext, 2)}
	addr := serve(t, func(s *grpc.Server) { testpb.RegisterTestServiceServer(s, srv) },
		grpc.StatsHandler(tracing.ServerHandler()))
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(tracing.ClientHandler()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := testpb.NewTestServiceClient(conn)

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	var inHTTP trace.SpanContext
	h := tracing.HTTPHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inHTTP = trace.SpanContextFromContext(r.Context())
		if _, err := client.EmptyCall(r.Context(), &testpb.Empty{}); err != nil {
			t.Error(err)
		}
	}), "test")
	req := httptest.NewRequest("GET", "/x", nil)
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	h.ServeHTTP(httptest.NewRecorder(), req)
	if inHTTP.TraceID().String() != traceID || !inHTTP.IsRemote() {
		t.Fatalf("HTTP handler's span context %v; want the remote trace %s", inHTTP, traceID)
	}
	if got := <-srv.got; got.TraceID().String() != traceID || got.SpanID() != inHTTP.SpanID() {
		t.Fatalf("gRPC server got trace %v span %v; want %s and the HTTP caller's span %v", got.TraceID(), got.SpanID(), traceID, inHTTP.SpanID())
	}
	// A call without a trace context sends none.
	if _, err := client.EmptyCall(t.Context(), &testpb.Empty{}); err != nil {
		t.Fatal(err)
	}
	if got := <-srv.got; got.IsValid() {
		t.Fatalf("a call without a trace arrived with %v", got)
	}
}
