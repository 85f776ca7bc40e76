// Command mixload runs mixed REST traffic (every service's main paths,
// reads and writes) through the gateway of a fresh local stack of real
// binaries, at a fixed concurrency for a fixed time, and prints requests/s,
// p50/p99 and errors per path, and each process's memory before and after.
// It fails when any request fails.
//
//	go run ./e2e/cmd/mixload -duration 60s -concurrency 16
//	ECHOPILOT_DATABASE_URL=postgres://… go run ./e2e/cmd/mixload   (PostgreSQL)
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"sort"
	"time"

	"github.com/echopilot/echopilot/e2e/internal/localstack"
	"github.com/echopilot/echopilot/e2e/internal/mixload"
	"github.com/echopilot/echopilot/platform/devstack"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "mixload:", err)
		os.Exit(1)
	}
}

func run() error {
	duration := flag.Duration("duration", 60*time.Second, "measured time")
	warmup := flag.Duration("warmup", 5*time.Second, "unmeasured time first")
	conc := flag.Int("concurrency", 16, "concurrent requests")
	flag.Parse()
	ctx := context.Background()

	stripeSecret := "whsec_mixload"
	// Throughput is measured, not the limits: they are off (floodload
	// measures under the limits).
	st, err := localstack.Start(ctx, slices.Concat(localstack.NoRateLimits, []string{"ECHOPILOT_STRIPE_WEBHOOK_SECRET=" + stripeSecret})...)
	if err != nil {
		return err
	}
	defer st.Close()
	stack := mixload.Stack{GatewayURL: st.GatewayURL, StripeSecret: stripeSecret}
	if stack.UserToken, err = st.Token("acme", "user"); err != nil {
		return err
	}
	if stack.AdminToken, err = st.Token("default", "admin"); err != nil {
		return err
	}

	fmt.Printf("mixed REST traffic through the gateway, %s, HS256 tokens, concurrency %d, %v (after %v warm-up)\n",
		st.Backend, *conc, *duration, *warmup)
	mixload.Run(ctx, stack, *conc, *warmup)
	before := rss(st.Stack)
	rep := mixload.Run(ctx, stack, *conc, *duration)
	after := rss(st.Stack)
	fmt.Print(rep)
	fmt.Printf("\n%-10s %12s %12s\n", "process", "RSS before", "RSS after")
	names := make([]string, 0, len(before))
	for n := range before {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Printf("%-10s %10.1f MB %10.1f MB\n", n, float64(before[n])/1e6, float64(after[n])/1e6)
	}
	if _, errs := rep.Requests(); errs > 0 {
		return fmt.Errorf("%d requests failed", errs)
	}
	return nil
}

func rss(st *devstack.Stack) map[string]int64 {
	out := map[string]int64{}
	for name, p := range st.Procs {
		if v, err := mixload.RSS(p.Pid()); err == nil {
			out[name] = v
		}
	}
	return out
}
