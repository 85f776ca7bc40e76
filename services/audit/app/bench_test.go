package app_test

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/protobuf/types/known/structpb"

	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	"github.com/echopilot/echopilot/platform/loadtest"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/audit/app"
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
		"ip": "10.0.0.1", "user_agent": "Mozilla/5.0 (X11; Linux x86_64)", "fields": []any{"title", "body"}, "request_id": "req-7f3a9c",
	})
	if err != nil {
		panic(err)
	}
	return s
}()

var benchSeverities = [...]string{"low", "medium", "high", "critical"}

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
			if ownerURL != "" {
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
	svc := servicetest.AsService(b, "tenancy", "")
	loadtest.Parallel(b, largeLogClients, largeLog/largeLogBatch, func(i int) error {
		req := &auditv1.AppendEntriesRequest{Entries: make([]*auditv1.NewEntry, largeLogBatch)}
		for j := range req.Entries {
			req.Entries[j] = benchEntry(tenant, int64(i*largeLogBatch+j))
		}
		res, err := c.AppendEntries(svc, req)
		if err == nil && len(res.GetEntries()) != largeLogBatch {
			err = fmt.Errorf("appended %d of %d entries", len(res.GetEntries()), largeLogBatch)
		}
		return err
	})
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
