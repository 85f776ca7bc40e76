package gateway

import (
	"context"
	"encoding/hex"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace/noop"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/echopilot/echopilot/platform/tracing"
	"github.com/echopilot/echopilot/platform/tracing/tracingtest"
)

// A REST call that arrives with a W3C traceparent continues that trace
// through the gateway into the service: gateway span → gRPC client span →
// the service's server span, each the child of the one before.
func TestTraceCrossesGateway(t *testing.T) {
	col := tracingtest.Start(t)
	shutdown, err := tracing.Setup(t.Context(), tracing.Config{Endpoint: col.Endpoint, Service: "suite"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { otel.SetTracerProvider(noop.NewTracerProvider()) })
	srv := newGateway(t, "optional")

	const traceID, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	r := do(t, srv, "GET", "/api/tenant/info", "", "X-Tenant-ID", "acme", "traceparent", "00-"+traceID+"-"+parent+"-01")
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	const method = "echopilot.tenancy.v1.TenancyService/GetTenantInfo"
	col.Await(t, "suite", map[string]tracepb.Span_SpanKind{
		"GET /api/tenant/info": tracepb.Span_SPAN_KIND_SERVER,
		method:                 tracepb.Span_SPAN_KIND_CLIENT,
	})
	col.Await(t, "suite", map[string]tracepb.Span_SpanKind{method: tracepb.Span_SPAN_KIND_SERVER})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	gw := col.Find("suite", "GET /api/tenant/info", tracepb.Span_SPAN_KIND_SERVER)
	client := col.Find("suite", method, tracepb.Span_SPAN_KIND_CLIENT)
	server := col.Find("suite", method, tracepb.Span_SPAN_KIND_SERVER)
	if gw == nil || client == nil || server == nil {
		t.Fatalf("want the gateway, client and service spans; got %v", col.Spans("suite"))
	}
	for _, link := range []struct {
		name          string
		span          *tracepb.Span
		parentSpanHex string
	}{
		{"gateway", gw, parent},
		{"client", client, hex.EncodeToString(gw.GetSpanId())},
		{"service", server, hex.EncodeToString(client.GetSpanId())},
	} {
		if got := hex.EncodeToString(link.span.GetTraceId()); got != traceID {
			t.Errorf("%s span in trace %s, want %s", link.name, got, traceID)
		}
		if got := hex.EncodeToString(link.span.GetParentSpanId()); got != link.parentSpanHex {
			t.Errorf("%s span's parent is %s, want %s", link.name, got, link.parentSpanHex)
		}
	}
}
