// Command load measures GET /api/tenant/info through the gateway beside the
// same call made directly over gRPC, in one run against a fresh local stack
// (real binaries on SQLite). It prints requests/s and p50/p99 for both and
// the latency the gateway adds.
//
//	go run ./e2e/cmd/load -duration 10s -concurrency 16
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	"github.com/echopilot/echopilot/platform/devstack"
	"github.com/echopilot/echopilot/platform/identity"
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
	flag.Parse()

	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "echopilot-load")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "bin")
	pkgs := []string{devstack.GatewayPkg}
	for _, s := range devstack.Services() {
		pkgs = append(pkgs, s.Pkg)
	}
	if err := devstack.Build(ctx, ".", bin, pkgs...); err != nil {
		return err
	}
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	secret := hex.EncodeToString(raw)
	st, err := devstack.Up(ctx, devstack.Options{BinDir: bin, DataDir: filepath.Join(tmp, "data"), Secret: secret, AuthMode: "required",
		Env: []string{"ECHOPILOT_LOG_LEVEL=warn"}})
	if err != nil {
		return err
	}
	defer st.Down()

	tok, err := identity.MintHS256([]byte(secret), identity.Claims{Subject: "load", TenantID: "acme", Roles: []string{"user"}}, time.Hour)
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
	httpClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *conc * 2}}
	viaGateway := func() error {
		req, _ := http.NewRequest(http.MethodGet, st.GatewayURL+"/api/tenant/info", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := httpClient.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}

	fmt.Printf("GET /api/tenant/info as tenant acme (HS256 token), concurrency %d, %v per mode, SQLite\n", *conc, *duration)
	g := measure("grpc", direct, *conc, *warmup, *duration)
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

// measure runs call from conc goroutines: warmup first, then duration measured.
func measure(name string, call func() error, conc int, warmup, duration time.Duration) result {
	var measuring atomic.Bool
	var n, errs atomic.Int64
	lats := make([][]time.Duration, conc)
	stop := time.Now().Add(warmup + duration)
	var wg sync.WaitGroup
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				start := time.Now()
				err := call()
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
