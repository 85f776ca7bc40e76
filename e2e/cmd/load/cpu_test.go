package main

import (
	"context"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// The counter as the real process collector exports it follows this
// process's CPU time.
func TestScrapeCPUFollowsProcess(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	ctx := context.Background()
	before, err := sampleCPU(ctx, []server{{"self", srv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	burn(300 * time.Millisecond)
	after, err := sampleCPU(ctx, []server{{"self", srv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	// Same process: the scraped counter (10 ms ticks) and rusage agree.
	for name, s := range map[string]map[string]float64{"before": before, "after": after} {
		if d := s["self"] - s[selfName]; d > 0.05 || d < -0.05 {
			t.Errorf("%s: scraped %.3f s, rusage %.3f s", name, s["self"], s[selfName])
		}
	}
	if d := after["self"] - before["self"]; d < 0.25 {
		t.Errorf("burned 0.3 s of CPU, counter rose %.3f s", d)
	}
	per := cpuPer10k(before, after, 5000)
	// Float arithmetic in another order: equal to within rounding.
	if want := (after["self"] - before["self"]) * 2; math.Abs(per["self"]-want) > 1e-9 {
		t.Errorf("per 10k %v, want %v", per["self"], want)
	}
}

// burn spends about d of this process's CPU time.
func burn(d time.Duration) {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	x, end := 1.0, cpu()+d
	for cpu() < end {
		for i := 0; i < 100000; i++ {
			x = x*1.0000001 + 1e-9
		}
	}
	_ = x
}

// The bare gateway forwards to Health.Check and encodes its answer as
// grpc-gateway's default marshaler does.
func TestBareGatewayForwards(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	go func() { _ = gs.Serve(ln) }()
	defer gs.Stop()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	srv := httptest.NewServer(bareGateway(healthpb.NewHealthClient(conn)))
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(baselinePath); code != 200 || body != `{"status":"SERVING"}` {
		t.Fatalf("got %d %s", code, body)
	}
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	if code, body := get(baselinePath); code != 200 || body != `{"status":"NOT_SERVING"}` {
		t.Fatalf("after NOT_SERVING: got %d %s", code, body)
	}
	if code, _ := get("/other"); code != http.StatusNotFound {
		t.Fatalf("unrouted path: got %d", code)
	}
}
