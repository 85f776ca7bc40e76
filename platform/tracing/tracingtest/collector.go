// Package tracingtest runs an OpenTelemetry collector for tests: a real
// OTLP/gRPC server, outside the system under test, that keeps the spans it
// receives.
package tracingtest

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
)

// Collector keeps exported spans by service.name.
type Collector struct {
	collectorpb.UnimplementedTraceServiceServer
	// Endpoint is where to export to (http://127.0.0.1:port).
	Endpoint string

	mu    sync.Mutex
	spans map[string][]*tracepb.Span
}

// Start serves a collector until the test ends.
func Start(t testing.TB) *Collector {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &Collector{Endpoint: "http://" + l.Addr().String(), spans: map[string][]*tracepb.Span{}}
	s := grpc.NewServer()
	collectorpb.RegisterTraceServiceServer(s, c)
	go func() { _ = s.Serve(l) }()
	t.Cleanup(s.Stop)
	return c
}

// Export implements the OTLP trace service.
func (c *Collector) Export(_ context.Context, req *collectorpb.ExportTraceServiceRequest) (*collectorpb.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		name := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				name = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			c.spans[name] = append(c.spans[name], ss.GetSpans()...)
		}
	}
	return &collectorpb.ExportTraceServiceResponse{}, nil
}

// Spans returns what service has exported so far.
func (c *Collector) Spans(service string) []*tracepb.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*tracepb.Span(nil), c.spans[service]...)
}

// Find returns the first span of service with that name and kind, or nil.
func (c *Collector) Find(service, name string, kind tracepb.Span_SpanKind) *tracepb.Span {
	for _, s := range c.Spans(service) {
		if s.GetName() == name && s.GetKind() == kind {
			return s
		}
	}
	return nil
}

// Await flushes the process's tracer provider until service has exported
// every span of want (name and kind), or fails t after 10 s. Servers end a
// call's span after the reply reaches the client, so a test that got its
// answer may still have to wait for the span.
func (c *Collector) Await(t testing.TB, service string, want map[string]tracepb.Span_SpanKind) {
	t.Helper()
	flusher, ok := otel.GetTracerProvider().(interface{ ForceFlush(context.Context) error })
	if !ok {
		t.Fatal("tracing is not set up: no exporting tracer provider")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := flusher.ForceFlush(t.Context()); err != nil {
			t.Fatal(err)
		}
		missing := ""
		for name, kind := range want {
			if c.Find(service, name, kind) == nil {
				missing = name + " (" + kind.String() + ")"
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("span %s never exported; got %v", missing, c.Spans(service))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
