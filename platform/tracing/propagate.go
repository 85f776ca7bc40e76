package tracing

import (
	"context"
	"net/http"
	"sync/atomic"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
)

// exporting is set by Setup: spans go to a collector.
var exporting atomic.Bool

// Exporting reports whether Setup configured an exporter. Without one the
// handlers below only carry an incoming trace context on (the W3C headers
// still cross the gateway and the services), which costs a header lookup
// instead of the instrumentation's spans, attribute sets and metric
// records on every call: a tenth of the gateway's CPU per request
// (BENCHMARKS.md, issue 18).
func Exporting() bool { return exporting.Load() }

// HTTPHandler is otelhttp's handler named operation when exporting, and
// otherwise one that puts an incoming traceparent into the request's
// context, so the backend calls it makes continue that trace.
func HTTPHandler(h http.Handler, operation string, opts ...otelhttp.Option) http.Handler {
	if Exporting() {
		return otelhttp.NewHandler(h, operation, opts...)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("traceparent") != "" {
			r = r.WithContext(otel.GetTextMapPropagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header)))
		}
		h.ServeHTTP(w, r)
	})
}

// propagator is the stats.Handler of a process that exports nothing: the
// server side takes the caller's trace context from the incoming metadata,
// the client side passes the context's on in the outgoing metadata.
type propagator struct{ client bool }

func (p propagator) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	if p.client {
		if !trace.SpanContextFromContext(ctx).IsValid() {
			return ctx
		}
		md, _ := metadata.FromOutgoingContext(ctx)
		md = md.Copy()
		otel.GetTextMapPropagator().Inject(ctx, mdCarrier(md))
		return metadata.NewOutgoingContext(ctx, md)
	}
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok || len(md.Get("traceparent")) == 0 {
		return ctx
	}
	return otel.GetTextMapPropagator().Extract(ctx, mdCarrier(md))
}

func (propagator) HandleRPC(context.Context, stats.RPCStats) {}

func (propagator) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

func (propagator) HandleConn(context.Context, stats.ConnStats) {}

// mdCarrier adapts gRPC metadata to the propagators.
type mdCarrier metadata.MD

func (c mdCarrier) Get(key string) string {
	if v := metadata.MD(c).Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

func (c mdCarrier) Set(key, value string) { metadata.MD(c).Set(key, value) }

func (c mdCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
