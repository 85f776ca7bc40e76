// Command load measures GET /api/tenant/info through the gateway beside the
// same call made directly over gRPC, in one run against a fresh local stack
// (real binaries on SQLite). It prints requests/s and p50/p99 for both and
// the latency the gateway adds.
//
//	go run ./e2e/cmd/load -duration 10s -concurrency 16
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/echopilot/echopilot/e2e/internal/localstack"
	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
)

func main() {
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
}

func (r result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[int(float64(len(r.lat)-1)*p)]
}

func (r result) String() string {
	return fmt.Sprintf("%-8s %8.0f req/s  p50 %7.0fµs  p99 %7.0fµs  requests %d  errors %d",
		r.name, float64(r.n)/r.elapsed.Seconds(), us(r.pct(0.5)), us(r.pct(0.99)), r.n, r.errors)
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func run() error {
	duration := flag.Duration("duration", 10*time.Second, "measured time per mode")
	warmup := flag.Duration("warmup", 2*time.Second, "unmeasured time before each mode")
	conc := flag.Int("concurrency", 16, "concurrent requests")
	limit := flag.Int("rate-limit", 0, "the gateway's per-tenant read and write rate and burst; 0 turns the limits off. "+
		"A rate no run reaches measures what limiting costs (the gateway then verifies every token too)")
	flag.Parse()

	ctx := context.Background()
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

	fmt.Printf("GET /api/tenant/info as tenant acme (HS256 token), concurrency %d, %v per mode, SQLite\n", *conc, *duration)
	g := measure("grpc", func(*httpConn) error { return direct() }, *conc, *warmup, *duration)
	h := measure("gateway", viaGateway, *conc, *warmup, *duration)
	fmt.Println(g)
	fmt.Println(h)
	fmt.Printf("gateway adds p50 %+.0fµs, p99 %+.0fµs; throughput ratio gateway/grpc %.2f\n",
		us(h.pct(0.5)-g.pct(0.5)), us(h.pct(0.99)-g.pct(0.99)),
		(float64(h.n)/h.elapsed.Seconds())/(float64(g.n)/g.elapsed.Seconds()))
	if g.errors+h.errors > 0 {
		return fmt.Errorf("%d requests failed", g.errors+h.errors)
	}
	return nil
}

// httpConn is one worker's keep-alive HTTP/1.1 connection.
type httpConn struct {
	conn net.Conn
	r    *bufio.Reader
}

func (c *httpConn) get(addr string, req []byte) error {
	if c.conn == nil {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		c.conn, c.r = conn, bufio.NewReader(conn)
	}
	if _, err := c.conn.Write(req); err != nil {
		c.conn.Close()
		c.conn = nil
		return err
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		c.conn.Close()
		c.conn = nil
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// measure runs call from conc goroutines: warmup first, then duration measured.
func measure(name string, call func(*httpConn) error, conc int, warmup, duration time.Duration) result {
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
	measuring.Store(true)
	began := time.Now()
	wg.Wait()
	r := result{name: name, n: n.Load(), errors: errs.Load(), elapsed: time.Since(began)}
	for _, l := range lats {
		r.lat = append(r.lat, l...)
	}
	slices.Sort(r.lat)
	return r
}
