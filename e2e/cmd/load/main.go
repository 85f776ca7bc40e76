// Command load measures GET /api/tenant/info through the gateway beside the
// same call made directly over gRPC, in one run against a fresh local stack
// (real binaries on SQLite, or on PostgreSQL when ECHOPILOT_DATABASE_URL is
// set), and beside a bare grpc-gateway forwarding GET /healthz to the gRPC
// health service in a second process (the same layout, none of our work).
// It prints requests/s and p50/p99 for each, the latency the gateway adds,
// and each server process's CPU seconds per 10,000 requests.
//
//	go run ./e2e/cmd/load -duration 10s -concurrency 16
//	go run ./e2e/cmd/load -baseline-only -serve   # the baseline alone, for wrk
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/echopilot/echopilot/e2e/internal/localstack"
	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	"github.com/echopilot/echopilot/platform/devstack"
)

func main() {
	run := run
	if role := os.Getenv(roleEnv); role != "" {
		run = func() error { return serveRole(role) }
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

type result struct {
	name      string
	n, errors int64
	elapsed   time.Duration
	lat       []time.Duration
	cpu       map[string]float64 // CPU seconds per 10,000 requests, by process
	cpuErr    error
}

func (r result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[int(float64(len(r.lat)-1)*p)]
}

func (r result) rate() float64 { return float64(r.n) / r.elapsed.Seconds() }

func (r result) String() string {
	return fmt.Sprintf("%-8s %8.0f req/s  p50 %7.0fµs  p99 %7.0fµs  requests %d  errors %d",
		r.name, r.rate(), us(r.pct(0.5)), us(r.pct(0.99)), r.n, r.errors)
}

// cpuLine lists the CPU seconds per 10,000 requests of each process in
// names, then the sum of the rest but the load client, then the client.
func (r result) cpuLine(names ...string) string {
	if r.cpuErr != nil {
		return fmt.Sprintf("  %-8s CPU: %v", r.name, r.cpuErr)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "  %-8s CPU s/10k req:", r.name)
	rest, nrest := 0.0, 0
	for name, v := range r.cpu {
		if name != selfName && !slices.Contains(names, name) {
			rest += v
			nrest++
		}
	}
	for _, name := range names {
		fmt.Fprintf(&b, "  %s %.3f", name, r.cpu[name])
	}
	if nrest > 0 {
		fmt.Fprintf(&b, "  other services %.3f", rest)
	}
	fmt.Fprintf(&b, "  (%s %.3f)", selfName, r.cpu[selfName])
	return b.String()
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func run() error {
	duration := flag.Duration("duration", 10*time.Second, "measured time per mode")
	warmup := flag.Duration("warmup", 2*time.Second, "unmeasured time before each mode")
	conc := flag.Int("concurrency", 16, "concurrent requests")
	limit := flag.Int("rate-limit", 0, "the gateway's per-tenant read and write rate and burst; 0 turns the limits off. "+
		"A rate no run reaches measures what limiting costs (the gateway then verifies every token too)")
	baselineOnly := flag.Bool("baseline-only", false, "start only the bare grpc-gateway baseline pair and measure it")
	serve := flag.Bool("serve", false, "with -baseline-only: print the baseline's URL and serve it until interrupted (for wrk)")
	flag.Parse()
	if *serve && !*baselineOnly {
		return errors.New("-serve needs -baseline-only")
	}

	ctx := context.Background()
	bl, err := startBaseline(ctx)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	defer bl.Close()
	blServers := []server{{"bare-gw", bl.gatewayMet}, {"bare-grpc", bl.backendMet}}
	blReq := []byte("GET " + baselinePath + " HTTP/1.1\r\nHost: baseline\r\n\r\n")
	viaBaseline := func(c *httpConn) error { return c.get(bl.Addr, blReq) }
	const blDesc = "baseline: GET " + baselinePath + " through a bare grpc-gateway (default ServeMux) to grpc.health.v1 Health.Check in a second process"
	if *serve {
		fmt.Println(blDesc)
		fmt.Printf("pids: bare-gw %d, bare-grpc %d; serving until interrupted:\n", bl.gateway.Pid(), bl.backend.Pid())
		fmt.Println(bl.URL)
		sctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
		<-sctx.Done()
		return nil
	}
	if *baselineOnly {
		fmt.Printf("%s; concurrency %d, %v measured\n", blDesc, *conc, *duration)
		b := measure(ctx, "baseline", viaBaseline, blServers, *conc, *warmup, *duration)
		fmt.Println(b)
		fmt.Println(b.cpuLine("bare-gw", "bare-grpc"))
		return failed(b)
	}

	limits := localstack.NoRateLimits
	if *limit > 0 {
		n := strconv.Itoa(*limit)
		limits = []string{"ECHOPILOT_RATE_LIMIT_READ=" + n, "ECHOPILOT_RATE_LIMIT_READ_BURST=" + n,
			"ECHOPILOT_RATE_LIMIT_WRITE=" + n, "ECHOPILOT_RATE_LIMIT_WRITE_BURST=" + n}
	}
	st, err := localstack.Start(ctx, limits...)
	if err != nil {
		return err
	}
	defer st.Close()
	tok, err := st.Token("acme", "user")
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(st.GRPCAddrs["tenancy"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := tenancyv1.NewTenancyServiceClient(conn)
	grpcCtx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
	direct := func() error {
		_, err := client.GetTenantInfo(grpcCtx, &tenancyv1.GetTenantInfoRequest{})
		return err
	}
	// One keep-alive connection per worker, written and read in place:
	// net/http's client adds goroutine hand-offs per request that would be
	// charged to the gateway. The gRPC side likewise reuses one connection.
	rawReq := []byte("GET /api/tenant/info HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer " + tok + "\r\n\r\n")
	gatewayAddr := strings.TrimPrefix(st.GatewayURL, "http://")
	viaGateway := func(c *httpConn) error { return c.get(gatewayAddr, rawReq) }
	// Every process of the stack, so that background work in the idle
	// services shows too.
	ours := []server{{"gateway", st.GatewayAdminURL + "/metrics"}}
	for _, svc := range devstack.Services() {
		ours = append(ours, server{svc.Name, "http://" + st.MetricsAddrs[svc.Name] + "/metrics"})
	}

	fmt.Printf("GET /api/tenant/info as tenant acme (HS256 token), concurrency %d, %v per mode, %s\n", *conc, *duration, st.Backend)
	fmt.Println(blDesc + ", same run")
	// For profilers that attach to a process (perf record -p): our
	// binaries serve no pprof endpoint.
	fmt.Printf("pids: gateway %d, tenancy %d, bare-gw %d, bare-grpc %d\n",
		st.Procs["gateway"].Pid(), st.Procs["tenancy"].Pid(), bl.gateway.Pid(), bl.backend.Pid())
	g := measure(ctx, "grpc", func(*httpConn) error { return direct() }, ours, *conc, *warmup, *duration)
	h := measure(ctx, "gateway", viaGateway, ours, *conc, *warmup, *duration)
	b := measure(ctx, "baseline", viaBaseline, blServers, *conc, *warmup, *duration)
	fmt.Println(g)
	fmt.Println(h)
	fmt.Println(b)
	fmt.Printf("gateway adds p50 %+.0fµs, p99 %+.0fµs; throughput ratio gateway/grpc %.2f, gateway/baseline %.2f\n",
		us(h.pct(0.5)-g.pct(0.5)), us(h.pct(0.99)-g.pct(0.99)), h.rate()/g.rate(), h.rate()/b.rate())
	fmt.Println("CPU seconds per 10,000 requests (each process's " + cpuMetric + ", 10 ms ticks):")
	fmt.Println(g.cpuLine("tenancy", "gateway"))
	fmt.Println(h.cpuLine("gateway", "tenancy"))
	fmt.Println(b.cpuLine("bare-gw", "bare-grpc"))
	if h.cpuErr == nil && b.cpuErr == nil {
		ourPair, barePair := h.cpu["gateway"]+h.cpu["tenancy"], b.cpu["bare-gw"]+b.cpu["bare-grpc"]
		fmt.Printf("CPU per request: our gateway / bare grpc-gateway %.2f; gateway+tenancy / bare pair %.2f\n",
			h.cpu["gateway"]/b.cpu["bare-gw"], ourPair/barePair)
	}
	return failed(g, h, b)
}

// failed says whether any request or CPU reading failed.
func failed(rs ...result) error {
	var errs []error
	for _, r := range rs {
		if r.errors > 0 {
			errs = append(errs, fmt.Errorf("%s: %d requests failed", r.name, r.errors))
		}
		if r.cpuErr != nil {
			errs = append(errs, fmt.Errorf("%s: CPU: %w", r.name, r.cpuErr))
		}
	}
	return errors.Join(errs...)
}

// measure runs call from conc goroutines: warmup first, then duration
// measured, with the CPU of servers read just before and after.
func measure(ctx context.Context, name string, call func(*httpConn) error, servers []server, conc int, warmup, duration time.Duration) result {
	var measuring atomic.Bool
	var n, errs atomic.Int64
	lats := make([][]time.Duration, conc)
	stop := time.Now().Add(warmup + duration)
	var wg sync.WaitGroup
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var hc httpConn
			for time.Now().Before(stop) {
				start := time.Now()
				err := call(&hc)
				d := time.Since(start)
				if !measuring.Load() {
					continue
				}
				n.Add(1)
				if err != nil {
					errs.Add(1)
					continue
				}
				lats[i] = append(lats[i], d)
			}
		}()
	}
	time.Sleep(warmup)
	before, errBefore := sampleCPU(ctx, servers)
	measuring.Store(true)
	began := time.Now()
	wg.Wait()
	r := result{name: name, n: n.Load(), errors: errs.Load(), elapsed: time.Since(began)}
	after, errAfter := sampleCPU(ctx, servers)
	if r.cpuErr = errors.Join(errBefore, errAfter); r.cpuErr == nil {
		r.cpu = cpuPer10k(before, after, r.n)
	}
	for _, l := range lats {
		r.lat = append(r.lat, l...)
	}
	slices.Sort(r.lat)
	return r
}
