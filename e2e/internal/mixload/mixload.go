// Package mixload drives mixed REST traffic at the gateway of a running
// stack: every service's main paths, reads and writes, from a fixed number
// of workers for a fixed time, and reports requests/s, latency quantiles and
// errors per path.
package mixload

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/echopilot/echopilot/platform/hmacsig"
	"github.com/echopilot/echopilot/platform/loadtest"
)

// Stack is what the traffic needs to know of the stack.
type Stack struct {
	GatewayURL   string
	UserToken    string // a tenant's user
	AdminToken   string // the platform admin
	StripeSecret string // to sign payment webhooks
}

// op is one kind of request; n is a number unique to the call.
type op struct {
	name   string
	weight int
	req    func(s Stack, n int64) (*http.Request, error)
}

func get(path string, token func(Stack) string) func(Stack, int64) (*http.Request, error) {
	return func(s Stack, _ int64) (*http.Request, error) {
		r, err := http.NewRequest(http.MethodGet, s.GatewayURL+path, nil)
		if err == nil {
			r.Header.Set("Authorization", "Bearer "+token(s))
		}
		return r, err
	}
}

func post(path string, body func(n int64) string) func(Stack, int64) (*http.Request, error) {
	return func(s Stack, n int64) (*http.Request, error) {
		r, err := http.NewRequest(http.MethodPost, s.GatewayURL+path, strings.NewReader(body(n)))
		if err == nil {
			r.Header.Set("Authorization", "Bearer "+s.UserToken)
		}
		return r, err
	}
}

func user(s Stack) string  { return s.UserToken }
func admin(s Stack) string { return s.AdminToken }

// ops is the mix: mostly reads, as a dashboard-heavy SaaS sees, with every
// write path the seed has.
func ops() []op {
	return []op{
		{"GET /api/tenant/info", 10, get("/api/tenant/info", user)},
		{"GET /api/tenant/test-access", 3, get("/api/tenant/test-access?target_tenant_id=globex", user)},
		{"GET /api/finops/summary", 6, get("/api/finops/summary?days=7", user)},
		{"GET /api/finops/tenants", 2, get("/api/finops/tenants?days=7", admin)},
		{"GET /api/audit/chain", 3, get("/api/audit/chain?limit=20", user)},
		{"POST /api/audit/entries", 4, post("/api/audit/entries", func(n int64) string {
			return fmt.Sprintf(`{"entries":[{"event_type":"load.test","user":"u%d","action":"read","resource":"r","severity":"low"}]}`, n)
		})},
		{"POST /api/queue/enqueue", 6, post("/api/queue/enqueue", func(n int64) string {
			return fmt.Sprintf(`{"type":"report_gen","idempotency_key":"load-%d-%d"}`, os.Getpid(), n)
		})},
		{"GET /api/queue/status", 6, get("/api/queue/status", user)},
		{"POST /api/growth/referral/create", 3, post("/api/growth/referral/create", func(n int64) string {
			return fmt.Sprintf(`{"referrer_id":"load-%d","campaign":"load"}`, n%500)
		})},
		{"GET /api/growth/referrals", 6, get("/api/growth/referrals?days=7", user)},
		{"GET /api/growth/payouts/export", 1, get("/api/growth/payouts/export?days=7", user)},
		{"POST /api/finops/stripe/webhook", 2, func(s Stack, n int64) (*http.Request, error) {
			now := time.Now()
			body := fmt.Sprintf(`{"id":"evt_load_%d_%d","object":"event","type":"charge.succeeded","created":%d,`+
				`"data":{"object":{"id":"ch_load_%d_%d","object":"charge","amount":100,"amount_refunded":0,"currency":"usd",`+
				`"customer":"cus_load","created":%d,"metadata":{"tenant_id":"acme"}}}}`, os.Getpid(), n, now.Unix(), os.Getpid(), n, now.Unix())
			r, err := http.NewRequest(http.MethodPost, s.GatewayURL+"/api/finops/stripe/webhook", bytes.NewBufferString(body))
			if err == nil {
				r.Header.Set("Stripe-Signature", hmacsig.Sign([]byte(s.StripeSecret), now, []byte(body)))
			}
			return r, err
		}},
	}
}

// PathStats are one path's figures.
type PathStats struct {
	Path     string
	Requests int
	Errors   int
	P50, P99 time.Duration
	// FirstError describes the first failure, for the report.
	FirstError string
}

// Report is a run's outcome.
type Report struct {
	Elapsed time.Duration
	Paths   []PathStats
}

// Requests is the total number of requests.
func (r Report) Requests() (n, errors int) {
	for _, p := range r.Paths {
		n += p.Requests
		errors += p.Errors
	}
	return n, errors
}

// String is the report as a table.
func (r Report) String() string {
	var b strings.Builder
	n, errs := r.Requests()
	fmt.Fprintf(&b, "%d requests in %v: %.0f req/s, %d errors\n", n, r.Elapsed.Round(time.Millisecond), float64(n)/r.Elapsed.Seconds(), errs)
	fmt.Fprintf(&b, "%-34s %8s %8s %9s %9s %6s\n", "path", "requests", "req/s", "p50 ms", "p99 ms", "errors")
	for _, p := range r.Paths {
		fmt.Fprintf(&b, "%-34s %8d %8.0f %9.2f %9.2f %6d\n", p.Path, p.Requests, float64(p.Requests)/r.Elapsed.Seconds(),
			ms(p.P50), ms(p.P99), p.Errors)
		if p.FirstError != "" {
			fmt.Fprintf(&b, "  first error: %s\n", p.FirstError)
		}
	}
	return b.String()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Run sends the mix from workers goroutines for duration and reports. A
// request fails when it cannot be sent or answers anything but 200.
func Run(ctx context.Context, s Stack, workers int, duration time.Duration) Report {
	mix := ops()
	var wheel []int // op indexes, each repeated by weight
	for i, o := range mix {
		for range o.weight {
			wheel = append(wheel, i)
		}
	}
	type acc struct {
		lat      loadtest.Latencies
		requests int
		errors   int
		first    string
	}
	per := make([][]acc, workers)
	var seq atomic.Int64
	ctx, cancel := context.WithTimeout(ctx, duration)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}, Timeout: 30 * time.Second}
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		per[w] = make([]acc, len(mix))
		wg.Go(func() {
			for ctx.Err() == nil {
				n := seq.Add(1)
				i := wheel[int(n)%len(wheel)]
				a := &per[w][i]
				req, err := mix[i].req(s, n)
				if err != nil {
					a.errors++
					continue
				}
				t0 := time.Now()
				res, err := client.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", res.StatusCode)
					}
				}
				a.requests++
				if err != nil {
					a.errors++
					if a.first == "" {
						a.first = err.Error()
					}
					continue
				}
				a.lat.Add(time.Since(t0))
			}
		})
	}
	wg.Wait()
	rep := Report{Elapsed: time.Since(start)}
	for i, o := range mix {
		var all loadtest.Latencies
		ps := PathStats{Path: o.name}
		for w := range workers {
			a := &per[w][i]
			all.Merge(&a.lat)
			ps.Requests += a.requests
			ps.Errors += a.errors
			if ps.FirstError == "" {
				ps.FirstError = a.first
			}
		}
		ps.P50, ps.P99 = all.Quantile(0.5), all.Quantile(0.99)
		rep.Paths = append(rep.Paths, ps)
	}
	sort.SliceStable(rep.Paths, func(a, b int) bool { return rep.Paths[a].Requests > rep.Paths[b].Requests })
	return rep
}

// RSS is the resident memory of process pid in bytes (Linux).
func RSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}
