// Package tracing sets up OpenTelemetry tracing for a process. W3C trace
// context always propagates through gRPC and HTTP, so a trace crosses the
// gateway and the services; spans are recorded and exported over OTLP/gRPC
// only when an endpoint is configured, and cost next to nothing otherwise.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.uber.org/zap"
	"google.golang.org/grpc/stats"
)

// Config says where spans go.
type Config struct {
	// Endpoint is the OTLP/gRPC collector, as host:port or
	// http(s)://host:port (http: is sent without TLS); empty disables export.
	Endpoint string
	// Service is the service.name resource attribute.
	Service string
}

// Setup installs the global propagator and, when cfg.Endpoint is set, a
// tracer provider exporting to it. The returned shutdown flushes buffered
// spans; call it on exit.
func Setup(ctx context.Context, cfg Config) (shutdown func(context.Context) error, err error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	if cfg.Endpoint == "" {
		return func(context.Context) error { return nil }, nil
	}
	opts, err := exporterOptions(cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	exp, err := otlptracegrpc.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing: exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", cfg.Service)))
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	// The sampler comes from OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG
	// (default: parent-based, always on).
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Second)),
		sdktrace.WithResource(res),
	)
	otel.SetTracerProvider(tp)
	// A Setup without an endpoint (another component of the same process)
	// leaves this provider, and exporting, in place.
	exporting.Store(true)
	return func(ctx context.Context) error {
		exporting.Store(false)
		return tp.Shutdown(ctx)
	}, nil
}

// exporterOptions turns an endpoint into exporter options.
func exporterOptions(endpoint string) ([]otlptracegrpc.Option, error) {
	if !strings.Contains(endpoint, "://") {
		return []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(endpoint), otlptracegrpc.WithInsecure()}, nil
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, errors.New("tracing: OTLP endpoint must be host:port or http(s)://host:port")
	}
	opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(u.Host)}
	if u.Scheme == "http" {
		opts = append(opts, otlptracegrpc.WithInsecure())
	}
	return opts, nil
}

// ServerHandler traces incoming gRPC calls, except health checks, which
// probes make every few seconds; without an exporter it only takes the
// caller's trace context (Exporting). Call it after Setup.
func ServerHandler() stats.Handler {
	if !Exporting() {
		return propagator{}
	}
	return otelgrpc.NewServerHandler(otelgrpc.WithFilter(func(info *stats.RPCTagInfo) bool {
		return !strings.HasPrefix(info.FullMethodName, "/grpc.health.v1.Health/")
	}))
}

// ClientHandler traces outgoing gRPC calls and propagates their context;
// without an exporter it only propagates it (Exporting). Call it after
// Setup.
func ClientHandler() stats.Handler {
	if !Exporting() {
		return propagator{client: true}
	}
	return otelgrpc.NewClientHandler()
}

// Start is Setup for a process's main: the returned stop flushes buffered
// spans, waiting at most 5 s, and logs a flush that failed.
func Start(ctx context.Context, cfg Config, log *zap.Logger) (stop func(), err error) {
	shutdown, err := Setup(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return func() {
		flushCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdown(flushCtx); err != nil {
			log.Warn("flushing traces", zap.Error(err))
		}
	}, nil
}
