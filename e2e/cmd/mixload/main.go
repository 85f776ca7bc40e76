// Command mixload runs mixed REST traffic (every service's main paths,
// reads and writes) through the gateway of a fresh local stack of real
// binaries, at a fixed concurrency for a fixed time, and prints requests/s,
// p50/p99 and errors per path, and each process's memory before and after
// (and every -sample interval, for a soak run). It fails when any request
// fails.
//
//	go run ./e2e/cmd/mixload -duration 60s -concurrency 16
//	go run ./e2e/cmd/mixload -duration 10m -sample 1m   (soak: memory over time)
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
	sample := flag.Duration("sample", 0, "also print each process's RSS at this interval (0: before and after only)")
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
	samples := []map[string]int64{rss(st.Stack)}
	stop := make(chan struct{})
	sampled := make(chan []map[string]int64)
	go func() {
		var got []map[string]int64
		var tick <-chan time.Time // nil without -sample: never fires
		if *sample > 0 {
			t := time.NewTicker(*sample)
			defer t.Stop()
			tick = t.C
		}
		for {
			select {
			case <-tick:
				got = append(got, rss(st.Stack))
			case <-stop:
				sampled <- got
				return
			}
		}
	}()
	rep := mixload.Run(ctx, stack, *conc, *duration)
	close(stop)
	samples = append(samples, <-sampled...)
	samples = append(samples, rss(st.Stack))
	fmt.Print(rep)
	printRSS(samples, *sample)
	if _, errs := rep.Requests(); errs > 0 {
		return fmt.Errorf("%d requests failed", errs)
	}
	return nil
}

// printRSS prints one row per process: its RSS before the run, at each
// sample and after it.
func printRSS(samples []map[string]int64, every time.Duration) {
	fmt.Printf("\n%-10s %12s", "process", "RSS before")
	for i := 1; i < len(samples)-1; i++ {
		fmt.Printf(" %12s", time.Duration(i)*every)
	}
	fmt.Printf(" %12s\n", "RSS after")
	names := make([]string, 0, len(samples[0]))
	for n := range samples[0] {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Printf("%-10s", n)
		for _, s := range samples {
			fmt.Printf(" %9.1f MB", float64(s[n])/1e6)
		}
		fmt.Println()
	}
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
