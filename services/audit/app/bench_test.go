package app_test

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/protobuf/types/known/structpb"

	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	"github.com/echopilot/echopilot/platform/loadtest"
	"github.com/echopilot/echopilot/platform/service"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/audit/app"
	"github.com/echopilot/echopilot/services/audit/internal/domain"
	"github.com/echopilot/echopilot/services/audit/internal/ledger"
	"github.com/echopilot/echopilot/services/audit/internal/store"
)

// Shapes of the benchmarks, as the issue sets them.
const (
	// benchClients is how many producers append at once.
	benchClients = 8
	// contendedClients is how many producers of BenchmarkAppendContended
	// append to one tenant at once.
	contendedClients = 16
	// largeLog is the size of BenchmarkLargeLog's log, appended in calls of
	// largeLogBatch entries by largeLogClients producers.
	largeLog        = 1_000_000
	largeLogBatch   = 1000
	largeLogClients = 4
	// proofsPerOp is how many inclusion proofs one op of
	// BenchmarkLargeLog/…/inclusion asks for, one after the other.
	proofsPerOp = 200
)

// benchDetails is the details object of every benchmark entry: shared, as
// marshaling a message concurrently only reads it.
var benchDetails = func() *structpb.Struct {
	s, err := structpb.NewStruct(map[string]any{
		"ip": "127.0.0.1", "user_agent": "Mozilla/5.0 (X11; Linux x86_64)", "fields": []any{"title", "body"}, "request_id": "req-7f3a9c",
	})
	if err != nil {
		panic(err)
	}
	return s
}()

var benchSeverities = [...]auditv1.Severity{auditv1.Severity_SEVERITY_LOW, auditv1.Severity_SEVERITY_MEDIUM, auditv1.Severity_SEVERITY_HIGH, auditv1.Severity_SEVERITY_CRITICAL}

// benchEntry is the n-th event of a producer for tenant.
func benchEntry(tenant string, n int64) *auditv1.NewEntry {
	return &auditv1.NewEntry{
		TenantId: tenant, EventType: "document.update", User: fmt.Sprintf("user%d@acme.test", n%1000), Action: "update",
		Resource: fmt.Sprintf("documents/%d", n), Details: benchDetails, Severity: benchSeverities[n%4],
	}
}

func benchTenant(i int) string { return fmt.Sprintf("t%04d", i) }

// startBench runs the audit service on a fresh database of backend, served
// on loopback TCP with auth required; it returns a client and, on
// PostgreSQL, the owner URL of the database (for VACUUM).
func startBench(b *testing.B, backend string) (auditv1.AuditServiceClient, string) {
	b.Helper()
	opt := servicetest.Options{AuthMode: "required", Quiet: true, TCP: true,
		Args: []string{"--signing-key-file=" + filepath.Join(b.TempDir(), "signing.key")}}
	if backend == "postgres" {
		opt.MigrateURL, opt.DatabaseURL = storetest.Postgres(b)
	} else {
		opt.DatabaseURL = "sqlite://" + filepath.Join(b.TempDir(), "audit.db")
	}
	return auditv1.NewAuditServiceClient(servicetest.Start(b, app.Spec(), opt)), opt.MigrateURL
}

// BenchmarkAppend is durable appends through AppendEntries over gRPC
// (loopback TCP, the full interceptor chain, an HS256 service token), from
// benchClients concurrent producers, on a fresh database per run. One op is
// one AppendEntries call of batch entries; reported: entries/s (the
// throughput of all producers together) and the p50/p99 latency of a call.
//
// With tenants=1000 each entry belongs to a tenant drawn at random, and a
// call carries whatever tenants its entries have (a producer batching the
// events of many tenants): a batch of 100 touches about 95 tenants, each
// appended as its own batch with its own signed checkpoint in the call's
// one transaction.
//
//	go test -run '^$' -bench 'Append/.*/.*/batch=100$' -benchtime 300x ./services/audit/app/
//	go test -run '^$' -bench 'Append/.*/.*/batch=1$' -benchtime 3000x ./services/audit/app/
func BenchmarkAppend(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			for _, tenants := range []int{1, 1000} {
				b.Run(fmt.Sprintf("tenants=%d", tenants), func(b *testing.B) {
					for _, batch := range []int{1, 100} {
						b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
							benchAppend(b, backend, benchClients, tenants, batch)
						})
					}
				})
			}
		})
	}
}

// BenchmarkAppendContended is BenchmarkAppend with contendedClients
// producers of single-entry calls, all to one tenant: the calls that
// group commit shares transactions, head updates and checkpoint
// signatures between.
//
//	go test -run '^$' -bench AppendContended -benchtime 5000x ./services/audit/app/
func BenchmarkAppendContended(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			benchAppend(b, backend, contendedClients, 1, 1)
		})
	}
}

func benchAppend(b *testing.B, backend string, clients, tenants, batch int) {
	c, _ := startBench(b, backend)
	svc := servicetest.AsService(b, "tenancy", "")
	names := make([]string, tenants)
	for i := range names {
		names[i] = benchTenant(i)
	}
	counts := make([]atomic.Int64, tenants) // entries appended per tenant
	took := make([]loadtest.Latencies, clients)
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var failed error
	b.ResetTimer()
	for g := range clients {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(g), 42))
			for i := next.Add(1) - 1; i < int64(b.N); i = next.Add(1) - 1 {
				req := &auditv1.AppendEntriesRequest{Entries: make([]*auditv1.NewEntry, batch)}
				to := make([]int, batch)
				for j := range req.Entries {
					to[j] = rnd.IntN(tenants)
					req.Entries[j] = benchEntry(names[to[j]], i*int64(batch)+int64(j))
				}
				start := time.Now()
				res, err := c.AppendEntries(svc, req)
				took[g].Add(time.Since(start))
				if err == nil && len(res.GetEntries()) != batch {
					err = fmt.Errorf("appended %d of %d entries", len(res.GetEntries()), batch)
				}
				if err != nil {
					once.Do(func() { failed = err })
					return
				}
				for _, t := range to {
					counts[t].Add(1)
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if failed != nil {
		b.Fatal(failed)
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "entries/s")
	var all loadtest.Latencies
	for g := range took {
		all.Merge(&took[g])
	}
	all.Report(b, 0.5, 0.99)
	checkAppended(b, c, names, counts, b.N*batch)
}

// checkAppended proves every entry is in its tenant's log: each tenant's
// signed tree size is what was appended to it, they add up to want, and
// the busiest log verifies.
func checkAppended(b *testing.B, c auditv1.AuditServiceClient, names []string, counts []atomic.Int64, want int) {
	b.Helper()
	total, busiest := int64(0), 0
	for i, name := range names {
		n := counts[i].Load()
		total += n
		if n > counts[busiest].Load() {
			busiest = i
		}
		if n == 0 {
			continue
		}
		cp, err := c.GetCheckpoint(as(b, name, "user"), &auditv1.GetCheckpointRequest{})
		if err != nil || cp.GetTreeSize() != uint64(n) {
			b.Fatalf("%s: checkpoint %v, %v; want tree size %d", name, cp, err, n)
		}
	}
	if total != int64(want) {
		b.Fatalf("appended %d entries, want %d", total, want)
	}
	res, err := c.GetChain(as(b, names[busiest], "user"), &auditv1.GetChainRequest{Limit: 1})
	if v := res.GetVerification(); err != nil || !v.GetValid() || v.GetEntries() != uint64(counts[busiest].Load()) {
		b.Fatalf("%s: chain %v, %v", names[busiest], v, err)
	}
}

// BenchmarkLargeLog seeds one tenant's log with largeLog entries through
// AppendEntries (calls of largeLogBatch, as a service; not timed, and
// VACUUM ANALYZE on PostgreSQL afterwards as autovacuum would), then
// measures over gRPC on loopback TCP, with (-v shows the seeding time;
// seeding takes about 30 s on SQLite and 4 to 5 minutes on PostgreSQL on 2
// cores)
//
//	go test -v -run '^$' -bench LargeLog -benchtime 3x -timeout 40m ./services/audit/app/
//
// verify: GetChain with limit 1. The first read of the log (timed once,
// before the loop) verifies all of it: every hash and link, the Merkle root
// at each of the 1,000 signed checkpoints; reported: s/full-verify. Later
// reads verify only what was appended since (nothing here) and the page
// against the signed tree; reported: s/verify, per read.
//
// inclusion: GetInclusionProof of random entries, proofsPerOp per op, one
// at a time, each proof checked against the signed checkpoint with
// golang.org/x/mod/sumdb/tlog; reported: p50/p99 latency of a proof.
func BenchmarkLargeLog(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			c, ownerURL := startBench(b, backend)
			start := time.Now()
			seedLargeLog(b, c, "big")
			seeded := time.Since(start)
			if backend == "postgres" {
				storetest.VacuumAnalyze(b, ownerURL)
			}
			b.Logf("seeded %d entries in %v (%.0f entries/s), vacuumed in %v", largeLog, seeded.Round(time.Second),
				largeLog/seeded.Seconds(), (time.Since(start) - seeded).Round(time.Second))
			big := as(b, "big", "user")
			cp, err := c.GetCheckpoint(big, &auditv1.GetCheckpointRequest{})
			if err != nil || cp.GetTreeSize() != largeLog {
				b.Fatalf("checkpoint %v, %v", cp, err)
			}
			root, err := decodeHash(cp.GetRootHash())
			if err != nil {
				b.Fatal(err)
			}

			read := func() {
				res, err := c.GetChain(big, &auditv1.GetChainRequest{Limit: 1})
				if v := res.GetVerification(); err != nil || !v.GetValid() || v.GetEntries() != largeLog ||
					res.GetTotal() != largeLog || len(res.GetEntries()) != 1 {
					b.Fatalf("chain: %v, %v", v, err)
				}
			}
			start = time.Now()
			read()
			full := time.Since(start)
			b.Run("verify", func(b *testing.B) {
				for b.Loop() {
					read()
				}
				b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/verify")
				b.ReportMetric(full.Seconds(), "s/full-verify")
			})

			b.Run("inclusion", func(b *testing.B) {
				rnd := rand.New(rand.NewPCG(7, 7))
				// Steady state: every pooled connection has prepared the
				// statement, and the seeding's garbage is collected.
				for range proofsPerOp {
					if _, err := c.GetInclusionProof(big, &auditv1.GetInclusionProofRequest{Seq: 1 + rnd.Uint64N(largeLog)}); err != nil {
						b.Fatal(err)
					}
				}
				runtime.GC()
				var took loadtest.Latencies
				for b.Loop() {
					for range proofsPerOp {
						seq := 1 + rnd.Uint64N(largeLog)
						start := time.Now()
						p, err := c.GetInclusionProof(big, &auditv1.GetInclusionProofRequest{Seq: seq})
						took.Add(time.Since(start))
						if err == nil {
							err = checkInclusion(p, seq, root)
						}
						if err != nil {
							b.Fatalf("inclusion of %d: %v", seq, err)
						}
					}
				}
				took.Report(b, 0.5, 0.99)
			})
		})
	}
}

// seedLargeLog appends largeLog entries to tenant.
func seedLargeLog(b *testing.B, c auditv1.AuditServiceClient, tenant string) {
	b.Helper()
	seedLog(b, c, tenant, largeLog)
}

// checkInclusion checks p proves entry seq in the signed tree of largeLog
// entries whose root is root.
func checkInclusion(p *auditv1.GetInclusionProofResponse, seq uint64, root tlog.Hash) error {
	if p.GetTreeSize() != largeLog || p.GetLeafIndex() != seq-1 {
		return fmt.Errorf("proof for leaf %d of %d", p.GetLeafIndex(), p.GetTreeSize())
	}
	leaf, err := decodeHash(p.GetLeaf())
	if err != nil {
		return err
	}
	proof := make(tlog.RecordProof, len(p.GetHashes()))
	for i, h := range p.GetHashes() {
		if proof[i], err = decodeHash(h); err != nil {
			return err
		}
	}
	return tlog.CheckRecord(proof, largeLog, root, int64(seq-1), leaf)
}

func decodeHash(h string) (tlog.Hash, error) {
	raw, err := hex.DecodeString(h)
	if err != nil || len(raw) != tlog.HashSize {
		return tlog.Hash{}, fmt.Errorf("hash %q", h)
	}
	return tlog.Hash(raw), nil
}

// BenchmarkScrub's log size, CPU share and chunk: -scrub-entries,
// -scrub-cpu-share and -scrub-chunk after the package (go test …
// ./services/audit/app/ -scrub-entries 50000).
var (
	scrubEntries = flag.Int("scrub-entries", largeLog, "BenchmarkScrub: entries of the scrubbed log")
	scrubShare   = flag.Float64("scrub-cpu-share", 0.25, "BenchmarkScrub: the limited pass's CPU share (the service's default --scrub-cpu-share)")
	scrubChunk   = flag.Uint64("scrub-chunk", domain.DefaultScrubChunk, "BenchmarkScrub: entries verified per snapshot (the service's default --scrub-chunk)")
)

// BenchmarkScrub is the background scrubber's pass over one tenant's log
// of -scrub-entries entries (1,000,000 by default; seeded as
// BenchmarkLargeLog seeds, not timed; VACUUM ANALYZE on PostgreSQL), in
// the scrubber's chunks of -scrub-chunk entries (domain.DefaultScrubChunk,
// the service's default): one op is one pass, which must find the log
// valid.
//
// A pass is domain.Service.ScrubTenant, what the service's scrubber
// (app.go: --scrub-interval, Service.Scrub) runs for each tenant; with one
// tenant Scrub adds no wait of its own. It runs on a domain.Service of the
// benchmark's, over the running service's database pool and signing key,
// while the service's own scrubber is off (--scrub-interval=0): the
// pass's start and end are exact, and nothing else of the service runs in
// between (the service idles; its outbox relay polls now and then). The
// first pass (timed once, before the sub-benchmarks; s/cold-pass) also
// verifies the signature of each of the log's checkpoints; later passes
// find them in the domain.Service's cache of verified notes, as a
// long-running scrubber does.
//
// share=1: the pass unthrottled; reported: s/pass (wall time), cpu-s/pass
// (user+system CPU time of the whole test process, getrusage RUSAGE_SELF:
// the in-process service, and on SQLite the database too; on PostgreSQL
// the server's own CPU is not in it) and cpu-share (cpu-s/pass over
// s/pass, in cores). share=<-scrub-cpu-share>: the same with the
// scrubber's CPU share as configured; cpu-share is the share it kept to
// (the target is the configured share of one core).
//
//	go test -v -run '^$' -bench Scrub -benchtime 3x -timeout 60m ./services/audit/app/
//	go test -v -run '^$' -bench Scrub -benchtime 3x ./services/audit/app/ -scrub-entries 50000
func BenchmarkScrub(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			n := *scrubEntries
			svc, c, ownerURL := startScrubService(b, backend)
			start := time.Now()
			seedLog(b, c, "big", n)
			seeded := time.Since(start)
			if backend == "postgres" {
				storetest.VacuumAnalyze(b, ownerURL)
			}
			b.Logf("seeded %d entries in %v (%.0f entries/s), vacuumed in %v", n, seeded.Round(time.Second),
				float64(n)/seeded.Seconds(), (time.Since(start) - seeded).Round(time.Second))
			pass := func(b *testing.B, share float64) (wall, cpu time.Duration) {
				cpu0, start := cpuTime(b), time.Now()
				v, err := svc.ScrubTenant(b.Context(), "big", domain.ScrubConfig{CPUShare: share, Chunk: *scrubChunk})
				wall, cpu = time.Since(start), cpuTime(b)-cpu0
				if err != nil || !v.Valid || v.Entries != uint64(n) {
					b.Fatalf("scrub: %+v, %v", v, err)
				}
				return wall, cpu
			}
			runtime.GC()
			cold, coldCPU := pass(b, 1)
			b.Logf("first pass (verifies every checkpoint's signature): %v, %v CPU", cold.Round(time.Millisecond), coldCPU.Round(time.Millisecond))
			for _, share := range []float64{1, *scrubShare} {
				b.Run(fmt.Sprintf("share=%g", share), func(b *testing.B) {
					runtime.GC()
					var wall, cpu time.Duration
					for b.Loop() {
						w, c := pass(b, share)
						wall, cpu = wall+w, cpu+c
					}
					b.ReportMetric(wall.Seconds()/float64(b.N), "s/pass")
					b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/pass")
					b.ReportMetric(cpu.Seconds()/wall.Seconds(), "cpu-share")
					if share == 1 {
						b.ReportMetric(cold.Seconds(), "s/cold-pass")
					}
				})
			}
		})
	}
}

// startScrubService is startBench with the service's scrubber off and a
// signing key of the caller's: it returns, beside a client and the owner
// URL, a domain.Service over the running service's database pool that
// verifies with the same key.
func startScrubService(b testing.TB, backend string) (*domain.Service, auditv1.AuditServiceClient, string) {
	b.Helper()
	skey, vkey, err := ledger.NewKey("echopilot-audit")
	if err != nil {
		b.Fatal(err)
	}
	keyFile := filepath.Join(b.TempDir(), "signing.key")
	if err := os.WriteFile(keyFile, []byte(skey+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		b.Fatal(err)
	}
	opt := servicetest.Options{AuthMode: "required", Quiet: true, TCP: true,
		Args: []string{"--signing-key-file=" + keyFile, "--scrub-interval=0"}}
	if backend == "postgres" {
		opt.MigrateURL, opt.DatabaseURL = storetest.Postgres(b)
	} else {
		opt.DatabaseURL = "sqlite://" + filepath.Join(b.TempDir(), "audit.db")
	}
	spec := app.Spec()
	setup, dbs := spec.Setup, make(chan *pstore.DB, 1)
	spec.Setup = func(ctx context.Context, rt *service.Runtime) error {
		dbs <- rt.DB
		return setup(ctx, rt)
	}
	c := auditv1.NewAuditServiceClient(servicetest.Start(b, spec, opt))
	svc, err := domain.NewService(store.New(<-dbs), domain.Config{Signer: signer, VerifierKey: vkey})
	if err != nil {
		b.Fatal(err)
	}
	if opt.MigrateURL == "" {
		return svc, c, opt.DatabaseURL // SQLite: one file, one owner
	}
	return svc, c, opt.MigrateURL
}

// seedLog appends n entries to tenant, in calls of largeLogBatch from
// largeLogClients producers, as a service.
func seedLog(b *testing.B, c auditv1.AuditServiceClient, tenant string, n int) {
	b.Helper()
	svc := servicetest.AsService(b, "tenancy", "")
	loadtest.Parallel(b, largeLogClients, (n+largeLogBatch-1)/largeLogBatch, func(i int) error {
		req := &auditv1.AppendEntriesRequest{Entries: make([]*auditv1.NewEntry, min(largeLogBatch, n-i*largeLogBatch))}
		for j := range req.Entries {
			req.Entries[j] = benchEntry(tenant, int64(i*largeLogBatch+j))
		}
		res, err := c.AppendEntries(svc, req)
		if err == nil && len(res.GetEntries()) != len(req.Entries) {
			err = fmt.Errorf("appended %d of %d entries", len(res.GetEntries()), len(req.Entries))
		}
		return err
	})
}

// cpuTime is the user and system CPU time the process has used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
