// Command chainload measures what a page of an audit log costs as the log
// grows (issue 14): GET /api/audit/chain?limit=10&offset=<random> through
// the gateway of a fresh local stack of real binaries (auth required,
// HS256 user tokens, the gateway's rate limits off), on a log of -small
// entries (tenant chain-small) and one of -large entries (tenant
// chain-large) in the same run, and prints p50/p90/p99 of each and the
// ratio large/small against the targets (p50 ≤ 5 ms and p99 ≤ 15 ms on the
// large log, each at most 3× the small log's). It fails when a response is
// not 200 with the whole log verified valid, or when a target is missed.
//
// The logs are seeded through the audit service's gRPC AppendEntries
// directly, in calls of 1000 entries, each tenant with its own user token
// (a user appends to its own tenant's log); on PostgreSQL the audit
// database is then vacuumed and analyzed, as autovacuum would have done in
// a deployment. The first read of a log verifies all of it: it is made once
// per log over gRPC (no gateway deadline) and timed apart, before a short
// unmeasured warm-up through the gateway. The measured requests then run in
// -rounds rounds, each round the small log's share and then the large
// log's, so that a slow spell of the machine falls on both.
//
// The background scrubber would verify the whole large log while the reads
// are measured; it is disabled (-scrub-interval 0, passed as
// ECHOPILOT_AUDIT_SCRUB_INTERVAL), and the output states the scrubber
// settings the audit process really ran with (read from its environment,
// where the PostgreSQL owner URL for the vacuum comes from too) and whether
// a scrub pass finished during the measurement.
//
// Run it from the workspace root (the stack is built from there). On
// PostgreSQL the stack's databases (echopilot_load_*) stay on the server
// afterwards, as mixload's do; the 1,000,000-entry one takes some space.
//
//	go run ./e2e/cmd/chainload                                      (SQLite, 1,000 vs 1,000,000 entries)
//	ECHOPILOT_DATABASE_URL=postgres://… go run ./e2e/cmd/chainload   (PostgreSQL)
//	go run ./e2e/cmd/chainload -large 20000 -requests 400           (a quick check)
//	go run ./e2e/cmd/chainload -concurrency 8                        (8 readers at once)
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
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
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/echopilot/echopilot/e2e/internal/localstack"
	"github.com/echopilot/echopilot/e2e/internal/promscrape"
	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	"github.com/echopilot/echopilot/platform/loadtest"
	"github.com/echopilot/echopilot/platform/store"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "chainload:", err)
		os.Exit(1)
	}
}

// seedBatch is the entries of one AppendEntries call (the service's most).
const seedBatch = 1000

// tenantLog is one tenant's log under measurement.
type tenantLog struct {
	name, tenant, token string
	size                int
	took                loadtest.Latencies
}

func run() error {
	small := flag.Int("small", 1000, "entries of the small log")
	large := flag.Int("large", 1_000_000, "entries of the large log")
	requests := flag.Int("requests", 2000, "measured requests per log")
	rounds := flag.Int("rounds", 4, "rounds the requests are split into, alternating small and large log")
	conc := flag.Int("concurrency", 1, "concurrent requests (1: one after the other)")
	limit := flag.Int("limit", 10, "entries per page")
	warmup := flag.Int("warmup", 50, "unmeasured requests per log through the gateway after the first read")
	seedConc := flag.Int("seed-concurrency", 4, "concurrent AppendEntries calls while seeding")
	scrub := flag.String("scrub-interval", "0", "the audit service's ECHOPILOT_AUDIT_SCRUB_INTERVAL (0 disables the scrubber)")
	vacuum := flag.Bool("vacuum", true, "on PostgreSQL, VACUUM ANALYZE the audit database after seeding")
	maxP50 := flag.Duration("max-p50", 5*time.Millisecond, "target: largest p50 on the large log")
	maxP99 := flag.Duration("max-p99", 15*time.Millisecond, "target: largest p99 on the large log")
	maxRatio := flag.Float64("max-ratio", 3, "target: largest ratio large/small of p50 and of p99")
	flag.Parse()
	switch {
	case *small < *limit || *large < *limit:
		return fmt.Errorf("-small and -large must be at least -limit (%d)", *limit)
	case *requests < *rounds || *rounds < 1 || *conc < 1 || *seedConc < 1 || *limit < 1:
		return errors.New("want -requests >= -rounds >= 1, -concurrency, -seed-concurrency and -limit >= 1")
	}
	ctx := context.Background()

	// Latency is measured, not the limits: they are off.
	st, err := localstack.Start(ctx, slices.Concat(localstack.NoRateLimits, []string{"ECHOPILOT_AUDIT_SCRUB_INTERVAL=" + *scrub})...)
	if err != nil {
		return err
	}
	defer st.Close()
	auditProc := st.Procs["audit"]
	env, err := procEnv(auditProc.Pid())
	if err != nil {
		return err
	}
	logs := []*tenantLog{{name: "small", tenant: "chain-small", size: *small}, {name: "large", tenant: "chain-large", size: *large}}
	for _, l := range logs {
		if l.token, err = st.Token(l.tenant, "user"); err != nil {
			return err
		}
	}
	fmt.Printf("GET /api/audit/chain?limit=%d&offset=<random> through the gateway, %s, HS256 user tokens, no rate limits,\n"+
		"%d requests per log in %d rounds, concurrency %d; logs of %d and %d entries\n",
		*limit, st.Backend, *requests, *rounds, *conc, *small, *large)
	fmt.Printf("audit scrubber as the process ran: %s\n", scrubSettings(env))

	conn, err := grpc.NewClient(st.GRPCAddrs["audit"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	audit := auditv1.NewAuditServiceClient(conn)

	for _, l := range logs {
		start := time.Now()
		if err := seed(ctx, audit, l, *seedConc); err != nil {
			return fmt.Errorf("seed %s: %w", l.tenant, err)
		}
		took := time.Since(start)
		fmt.Printf("seeded %-5s log (%s): %d entries in %v (%.0f entries/s)\n", l.name, l.tenant, l.size,
			took.Round(time.Millisecond), float64(l.size)/took.Seconds())
	}
	if st.Backend == "PostgreSQL" && *vacuum {
		start := time.Now()
		if err := vacuumAnalyze(ctx, env["ECHOPILOT_MIGRATE_DATABASE_URL"]); err != nil {
			return err
		}
		fmt.Printf("VACUUM ANALYZE of the audit database: %v\n", time.Since(start).Round(time.Millisecond))
	}

	// The first read of each log verifies all of it; it is not what is
	// measured, and may take longer than the gateway's call deadline.
	for _, l := range logs {
		start := time.Now()
		rctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+l.token), 30*time.Minute)
		res, err := audit.GetChain(rctx, &auditv1.GetChainRequest{Limit: 1})
		cancel()
		if v := res.GetVerification(); err == nil && (!v.GetValid() || v.GetEntries() != uint64(l.size) || res.GetTotal() != uint64(l.size)) {
			err = fmt.Errorf("verification %v, total %d; want valid, %d entries", v, res.GetTotal(), l.size)
		}
		if err != nil {
			return fmt.Errorf("first read of the %s log: %w", l.name, err)
		}
		fmt.Printf("first read of the %-5s log (gRPC, verifies the whole log, mode %s): %v\n", l.name,
			res.GetVerification().GetMode(), time.Since(start).Round(time.Millisecond))
	}

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *conc}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 14))
	var mu sync.Mutex // guards rnd
	offset := func(l *tenantLog) int {
		mu.Lock()
		defer mu.Unlock()
		return rnd.IntN(l.size - *limit + 1)
	}
	for _, l := range logs {
		var discard loadtest.Latencies
		if err := measure(ctx, client, st.GatewayURL, l, *limit, *warmup, *conc, offset, &discard); err != nil {
			return fmt.Errorf("warm-up of the %s log: %w", l.name, err)
		}
	}

	scrubbedBefore := scrubbedAt(st.MetricsAddrs["audit"])
	start := time.Now()
	for r := range *rounds {
		n := *requests / *rounds
		if r < *requests%*rounds {
			n++
		}
		for _, l := range logs {
			if err := measure(ctx, client, st.GatewayURL, l, *limit, n, *conc, offset, &l.took); err != nil {
				return fmt.Errorf("%s log: %w", l.name, err)
			}
		}
	}
	elapsed := time.Since(start)
	scrubbedAfter := scrubbedAt(st.MetricsAddrs["audit"])

	fmt.Printf("\n%d requests in %v, every one 200 with the whole log verified valid\n", 2**requests, elapsed.Round(time.Millisecond))
	fmt.Printf("%-6s %9s %8s %8s %8s %8s %8s\n", "log", "entries", "requests", "p50 ms", "p90 ms", "p99 ms", "max ms")
	for _, l := range logs {
		fmt.Printf("%-6s %9d %8d %8.2f %8.2f %8.2f %8.2f\n", l.name, l.size, l.took.Len(),
			ms(l.took.Quantile(0.5)), ms(l.took.Quantile(0.9)), ms(l.took.Quantile(0.99)), ms(l.took.Quantile(1)))
	}
	s, g := &logs[0].took, &logs[1].took
	ratio := func(q float64) float64 { return float64(g.Quantile(q)) / float64(s.Quantile(q)) }
	fmt.Printf("ratio large/small: p50 ×%.2f, p90 ×%.2f, p99 ×%.2f\n", ratio(0.5), ratio(0.9), ratio(0.99))
	fmt.Printf("scrub passes finished during the measurement: %s\n", scrubChange(scrubbedBefore, scrubbedAfter))

	var missed []string
	check := func(ok bool, format string, args ...any) {
		what := fmt.Sprintf(format, args...)
		verdict := "met"
		if !ok {
			verdict, missed = "MISSED", append(missed, what)
		}
		fmt.Printf("  %-44s %s\n", what, verdict)
	}
	fmt.Println("targets:")
	check(g.Quantile(0.5) <= *maxP50, "large log p50 %.2f ms ≤ %.2f ms", ms(g.Quantile(0.5)), ms(*maxP50))
	check(g.Quantile(0.99) <= *maxP99, "large log p99 %.2f ms ≤ %.2f ms", ms(g.Quantile(0.99)), ms(*maxP99))
	check(ratio(0.5) <= *maxRatio, "p50 large/small ×%.2f ≤ ×%.1f", ratio(0.5), *maxRatio)
	check(ratio(0.99) <= *maxRatio, "p99 large/small ×%.2f ≤ ×%.1f", ratio(0.99), *maxRatio)
	if len(missed) > 0 {
		return fmt.Errorf("targets missed: %s", strings.Join(missed, "; "))
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// seedDetails is the details object of every seeded entry.
var seedDetails = func() *structpb.Struct {
	s, err := structpb.NewStruct(map[string]any{
		"ip": "127.0.0.1", "user_agent": "Mozilla/5.0 (X11; Linux x86_64)", "fields": []any{"title", "body"}, "request_id": "req-7f3a9c",
	})
	if err != nil {
		panic(err)
	}
	return s
}()

var severities = [...]auditv1.Severity{auditv1.Severity_SEVERITY_LOW, auditv1.Severity_SEVERITY_MEDIUM, auditv1.Severity_SEVERITY_HIGH, auditv1.Severity_SEVERITY_CRITICAL}

// seed appends l.size entries to l's log in calls of seedBatch from
// workers goroutines, as l's tenant.
func seed(ctx context.Context, audit auditv1.AuditServiceClient, l *tenantLog, workers int) error {
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+l.token)
	var next atomic.Int64 // first entry of the next call
	return parallel(workers, func(_ int, stopped func() bool) error {
		for {
			first := int(next.Add(seedBatch)) - seedBatch
			if first >= l.size || stopped() {
				return nil
			}
			req := &auditv1.AppendEntriesRequest{Entries: make([]*auditv1.NewEntry, min(seedBatch, l.size-first))}
			for j := range req.Entries {
				n := first + j
				req.Entries[j] = &auditv1.NewEntry{EventType: "document.update", User: fmt.Sprintf("user%d@acme.test", n%1000),
					Action: "update", Resource: fmt.Sprintf("documents/%d", n), Details: seedDetails, Severity: severities[n%4]}
			}
			cctx, cancel := context.WithTimeout(ctx, time.Minute)
			res, err := audit.AppendEntries(cctx, req)
			cancel()
			if err == nil && len(res.GetEntries()) != len(req.Entries) {
				err = fmt.Errorf("appended %d of %d entries", len(res.GetEntries()), len(req.Entries))
			}
			if err != nil {
				return err
			}
		}
	})
}

// parallel runs fn(i, stopped) for i in 0..n-1 on goroutines of their own
// and returns the first error; once one has failed, stopped reports true,
// for the others to return early.
func parallel(n int, fn func(i int, stopped func() bool) error) error {
	var wg sync.WaitGroup
	var once sync.Once
	var failed atomic.Bool
	var first error
	for i := range n {
		wg.Go(func() {
			if err := fn(i, failed.Load); err != nil {
				once.Do(func() { first = err })
				failed.Store(true)
			}
		})
	}
	wg.Wait()
	return first
}

// vacuumAnalyze runs VACUUM ANALYZE on the database of ownerURL.
func vacuumAnalyze(ctx context.Context, ownerURL string) error {
	if ownerURL == "" {
		return errors.New("vacuum: the audit process has no ECHOPILOT_MIGRATE_DATABASE_URL")
	}
	db, err := store.Open(ctx, ownerURL)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "VACUUM ANALYZE"); err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	return nil
}

// chainPage is what the checks read of a GET /api/audit/chain answer.
type chainPage struct {
	Total        json.Number       `json:"total"`
	Entries      []json.RawMessage `json:"entries"`
	Verification struct {
		Valid   bool        `json:"valid"`
		Entries json.Number `json:"entries"`
		Reason  string      `json:"reason"`
	} `json:"verification"`
}

// measure sends n GET /api/audit/chain requests for l's log, at random
// offsets, from conc goroutines, and records their latencies into took. A
// request fails unless it answers 200 with a full page, the log's total
// and the whole log verified valid.
func measure(ctx context.Context, client *http.Client, gateway string, l *tenantLog, limit, n, conc int,
	offset func(*tenantLog) int, took *loadtest.Latencies) error {
	var next atomic.Int64
	per := make([]loadtest.Latencies, conc)
	err := parallel(conc, func(w int, stopped func() bool) error {
		for next.Add(1) <= int64(n) && !stopped() {
			off := offset(l)
			url := fmt.Sprintf("%s/api/audit/chain?limit=%d&offset=%d", gateway, limit, off)
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", "Bearer "+l.token)
			start := time.Now()
			res, err := client.Do(req)
			if err != nil {
				return err
			}
			body, err := io.ReadAll(res.Body)
			res.Body.Close()
			d := time.Since(start)
			if err != nil {
				return err
			}
			if res.StatusCode != http.StatusOK {
				return fmt.Errorf("offset %d: status %d: %s", off, res.StatusCode, body)
			}
			var p chainPage
			if err := json.Unmarshal(body, &p); err != nil {
				return fmt.Errorf("offset %d: %w", off, err)
			}
			size := strconv.Itoa(l.size)
			if !p.Verification.Valid || p.Verification.Entries.String() != size || p.Total.String() != size || len(p.Entries) != limit {
				return fmt.Errorf("offset %d: verification valid=%v entries=%s (%s), total %s, %d entries; want valid, %s, %s, %d",
					off, p.Verification.Valid, p.Verification.Entries, p.Verification.Reason, p.Total, len(p.Entries), size, size, limit)
			}
			per[w].Add(d)
		}
		return nil
	})
	for w := range per {
		took.Merge(&per[w])
	}
	return err
}

// procEnv is the environment process pid runs with (Linux), the last
// value of each variable.
func procEnv(pid int) (map[string]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return nil, fmt.Errorf("environment of the audit process: %w", err)
	}
	env := map[string]string{}
	for kv := range strings.SplitSeq(string(b), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env, nil
}

// scrubSettings describes the scrubber settings in env (a variable not set
// is the service's default).
func scrubSettings(env map[string]string) string {
	var parts []string
	for _, v := range []struct{ name, dflt string }{
		{"ECHOPILOT_AUDIT_SCRUB_INTERVAL", "1h"},
		{"ECHOPILOT_AUDIT_SCRUB_CPU_SHARE", "0.25"},
		{"ECHOPILOT_AUDIT_SCRUB_CHUNK", "16384"},
	} {
		val, ok := env[v.name]
		switch {
		case !ok:
			val = "unset (default " + v.dflt + ")"
		case v.name == "ECHOPILOT_AUDIT_SCRUB_INTERVAL":
			if d, err := time.ParseDuration(val); val == "0" || (err == nil && d == 0) {
				val += " (scrubber disabled)"
			}
		}
		parts = append(parts, v.name+"="+val)
	}
	return strings.Join(parts, ", ")
}

// scrubbedAt is the audit service's
// echopilot_audit_scrub_last_success_timestamp_seconds, or "" when it
// cannot be read.
func scrubbedAt(metricsAddr string) string {
	fams, err := promscrape.Get(context.Background(), "http://"+metricsAddr+"/metrics")
	if err != nil {
		return ""
	}
	v, ok := fams.Sum("echopilot_audit_scrub_last_success_timestamp_seconds", nil)
	if !ok {
		return ""
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

func scrubChange(before, after string) string {
	switch {
	case before == "" || after == "":
		return "unknown (echopilot_audit_scrub_last_success_timestamp_seconds not readable)"
	case before == after:
		return fmt.Sprintf("none (echopilot_audit_scrub_last_success_timestamp_seconds stayed %s)", before)
	default:
		return fmt.Sprintf("at least one (echopilot_audit_scrub_last_success_timestamp_seconds %s → %s): the figures include scrubbing", before, after)
	}
}
