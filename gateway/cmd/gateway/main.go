// Command gateway serves the REST API in front of the gRPC services.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/echopilot/echopilot/gateway/internal/gateway"
	"github.com/echopilot/echopilot/platform/config"
	"github.com/echopilot/echopilot/platform/server"
	"github.com/echopilot/echopilot/platform/tracing"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	l := config.New("gateway")
	var addr, logLevel, otlp string
	var maxBody int
	var drain, callTimeout time.Duration
	l.String(&addr, "addr", "ECHOPILOT_HTTP_ADDR", ":8080", "HTTP listen address")
	l.String(&logLevel, "log-level", "ECHOPILOT_LOG_LEVEL", "info", "log level")
	l.String(&otlp, "otlp-endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT", "",
		"OpenTelemetry collector (OTLP/gRPC, host:port or http(s)://host:port) for traces; empty: no export")
	l.Int(&maxBody, "max-body-bytes", "ECHOPILOT_MAX_BODY_BYTES", 1<<20, "largest accepted request body")
	l.Duration(&drain, "drain", "ECHOPILOT_SHUTDOWN_DRAIN", 0, "wait before closing listeners on SIGTERM")
	l.Duration(&callTimeout, "call-timeout", "ECHOPILOT_CALL_TIMEOUT", 30*time.Second, "deadline of one backend call")
	backends := gateway.Backends()
	for i := range backends {
		b := &backends[i]
		l.String(&b.Addr, b.Name+"-addr", "ECHOPILOT_"+strings.ToUpper(b.Name)+"_ADDR", b.Addr, b.Name+" gRPC address")
	}
	if err := l.Parse(args); err != nil {
		return err
	}
	log, err := server.NewLogger(logLevel, "gateway")
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	stopTracing, err := tracing.Start(ctx, tracing.Config{Endpoint: otlp, Service: "gateway"}, log)
	if err != nil {
		return err
	}
	defer stopTracing()

	gw, err := gateway.New(ctx, gateway.Config{MaxBodyBytes: int64(maxBody), CallTimeout: callTimeout}, backends, log)
	if err != nil {
		return err
	}
	defer gw.Close()

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: gw, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("gateway listening", zap.String("addr", ln.Addr().String()))

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	time.Sleep(drain)
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
