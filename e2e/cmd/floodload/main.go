// Command floodload checks that one tenant's flood does not hurt another
// tenant, under the gateway's default rate limits: against a fresh local
// stack of real binaries it sends tenant B's steady mixed traffic (every
// service's main paths, reads and writes, paced below B's own budget)
// alone, then again while tenant A floods the gateway from many
// connections, and reports B's p50/p99 both times, their ratio, and the
// share of A's requests refused with 429. It fails when B's p99 more than
// doubles or B sees a 429 or an error.
//
// The flood runs in a process of its own at a lower CPU priority
// (-flood-nice), standing in for an attacker's own machines: on one small
// host the load generator would otherwise take the cores from the stack
// and from B's client, which no gateway can prevent.
//
//	go run ./e2e/cmd/floodload -duration 30s -rate 50 -flood-concurrency 32
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/echopilot/echopilot/e2e/internal/localstack"
	"github.com/echopilot/echopilot/e2e/internal/mixload"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "floodload:", err)
		os.Exit(1)
	}
}

func run() error {
	duration := flag.Duration("duration", 30*time.Second, "measured time of each phase")
	warmup := flag.Duration("warmup", 5*time.Second, "unmeasured steady traffic first")
	rate := flag.Float64("rate", 50, "tenant B's requests per second (the default budgets are 100 reads and 50 writes a second)")
	floodConc := flag.Int("flood-concurrency", 32, "tenant A's concurrent requests")
	maxRatio := flag.Float64("max-ratio", 2, "largest acceptable ratio of B's p99 during the flood to its p99 alone")
	nice := flag.Int("flood-nice", 10, "scheduling niceness of the flooding process (0: as the rest)")
	refusalDelay := flag.String("refusal-delay", "", "the gateway's ECHOPILOT_RATE_LIMIT_REFUSAL_DELAY (empty: its default)")
	floodURL := flag.String("flood-only", "", "internal: flood this URL for -duration with the token in $"+floodTokenEnv+" and print the counts")
	flag.Parse()
	ctx := context.Background()
	if *floodURL != "" {
		ctx, cancel := context.WithTimeout(ctx, *duration)
		defer cancel()
		return json.NewEncoder(os.Stdout).Encode(flood(ctx, *floodURL, os.Getenv(floodTokenEnv), *floodConc))
	}

	stripeSecret := "whsec_floodload"
	env := slices.Concat(localstack.DefaultRateLimits, []string{"ECHOPILOT_STRIPE_WEBHOOK_SECRET=" + stripeSecret})
	if *refusalDelay != "" {
		env = append(env, "ECHOPILOT_RATE_LIMIT_REFUSAL_DELAY="+*refusalDelay)
	}
	st, err := localstack.Start(ctx, env...)
	if err != nil {
		return err
	}
	defer st.Close()
	steady := mixload.Stack{GatewayURL: st.GatewayURL, StripeSecret: stripeSecret}
	if steady.UserToken, err = st.Token("tenant-b", "user"); err != nil {
		return err
	}
	if steady.AdminToken, err = st.Token("default", "admin"); err != nil {
		return err
	}
	floodToken, err := st.Token("tenant-a", "user")
	if err != nil {
		return err
	}

	delay := *refusalDelay
	if delay == "" {
		delay = "default 250ms"
	}
	fmt.Printf("tenant B: mixed REST traffic at %.0f requests/s; tenant A: GET /api/tenant/info from %d connections as fast as answered (niceness %d)\n"+
		"%s, default limits (100 reads/s burst 200, 50 writes/s burst 100 per tenant; refusal delay %s), %v per phase after %v warm-up\n\n",
		*rate, *floodConc, *nice, st.Backend, delay, *duration, *warmup)
	mixload.RunPaced(ctx, steady, *rate, *warmup)
	alone := mixload.RunPaced(ctx, steady, *rate, *duration)
	fmt.Printf("B alone:        %s\n", alone)

	// The flood comes from a process of its own, at a lower CPU priority:
	// an attacker's load generator runs on the attacker's machines, and
	// here it would otherwise compete with B's client and the stack for
	// the same cores.
	floodDone := make(chan floodResult, 1)
	floodErr := make(chan error, 1)
	go func() {
		a, err := floodProcess(st.GatewayURL+"/api/tenant/info", floodToken, *floodConc, *duration+2*time.Second, *nice)
		floodDone <- a
		floodErr <- err
	}()
	time.Sleep(time.Second) // the flood at full strength before measuring
	during := mixload.RunPaced(ctx, steady, *rate, *duration)
	a := <-floodDone
	if err := <-floodErr; err != nil {
		return err
	}
	fmt.Printf("B during flood: %s\n", during)
	fmt.Printf("A's flood:      %d requests in %v (%.0f/s): %d served, %d refused with 429 (%.1f%%), %d other\n",
		a.total(), a.Elapsed.Round(time.Millisecond), float64(a.total())/a.Elapsed.Seconds(),
		a.OK, a.Limited, 100*float64(a.Limited)/float64(max(1, a.total())), a.Other)

	ratio := float64(during.P99) / float64(alone.P99)
	fmt.Printf("\nB's p50 %.2f → %.2f ms (×%.2f), p99 %.2f → %.2f ms (×%.2f; target ≤ ×%.1f)\n",
		ms(alone.P50), ms(during.P50), float64(during.P50)/float64(alone.P50), ms(alone.P99), ms(during.P99), ratio, *maxRatio)
	switch {
	case alone.Limited+alone.Failed+during.Limited+during.Failed > 0:
		return fmt.Errorf("tenant B had refusals or failures (first: %s%s)", alone.FirstError, during.FirstError)
	case ratio > *maxRatio:
		return fmt.Errorf("tenant B's p99 rose ×%.2f during the flood, more than ×%.1f", ratio, *maxRatio)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// floodTokenEnv passes tenant A's token to the flooding process.
const floodTokenEnv = "FLOODLOAD_TOKEN"

// floodProcess runs this command again as the flooder (-flood-only) for
// duration at niceness nice, and returns its counts.
func floodProcess(url, token string, conc int, duration time.Duration, nice int) (floodResult, error) {
	self, err := os.Executable()
	if err != nil {
		return floodResult{}, err
	}
	cmd := exec.Command(self, "-flood-only", url, "-flood-concurrency", strconv.Itoa(conc), "-duration", duration.String())
	cmd.Env = append(os.Environ(), floodTokenEnv+"="+token)
	cmd.Stderr = os.Stderr
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		return floodResult{}, fmt.Errorf("start flooder: %w", err)
	}
	if nice != 0 {
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, cmd.Process.Pid, nice); err != nil {
			fmt.Fprintln(os.Stderr, "floodload: flooder keeps normal priority:", err)
		}
	}
	if err := cmd.Wait(); err != nil {
		return floodResult{}, fmt.Errorf("flooder: %w", err)
	}
	var r floodResult
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		return floodResult{}, fmt.Errorf("flooder's report %q: %w", out.String(), err)
	}
	return r, nil
}

type floodResult struct {
	OK, Limited, Other int64
	Elapsed            time.Duration
}

func (f floodResult) total() int64 { return f.OK + f.Limited + f.Other }

// flood sends GET url as fast as answered from conc goroutines until ctx
// ends.
func flood(ctx context.Context, url, token string, conc int) floodResult {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	var ok, limited, other atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				req.Header.Set("Authorization", "Bearer "+token)
				res, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						other.Add(1)
					}
					continue
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				switch res.StatusCode {
				case http.StatusOK:
					ok.Add(1)
				case http.StatusTooManyRequests:
					limited.Add(1)
				default:
					other.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return floodResult{OK: ok.Load(), Limited: limited.Load(), Other: other.Load(), Elapsed: time.Since(start)}
}
