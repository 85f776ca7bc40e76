package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/queue/app"
)

// BenchmarkQueueWork measures our remote-worker path: n jobs are enqueued,
// then W workers lease batches of B over gRPC (loopback TCP, full
// interceptor chain, HS256 worker token), run a no-op handler and report
// each batch with one CompleteJobs call. Jobs are enqueued either one
// EnqueueJob RPC per job from 16 concurrent producers (enqueue=1) or with
// EnqueueJobs of 500 from 4 producers (enqueue=500), the remote
// counterpart of River's InsertMany. A worker reports its batch with one
// CompleteJobs call and then leases again (report=apart), or reports it
// within its next LeaseJobs call (report=lease): one call and one
// transaction per batch. Reported per round: enqueue-jobs/s,
// jobs/s of the working phase (until the n-th completion is acknowledged)
// and e2e-jobs/s, n over enqueue plus working time. W×B is the jobs in
// flight: 1×100, 4×100 and 10×100 match BenchmarkRiverWork's MaxWorkers 100
// and 1,000 and run its 20,000 jobs; the batch 1 and 10 cases run 5,000, as
// a remote worker making two RPCs per job would take a minute over 20,000.
//
//	go test -run '^$' -bench QueueWork -benchtime 1x ./bench/
func BenchmarkQueueWork(b *testing.B) {
	cases := []struct {
		workers, batch, jobs, enqueue int
		report                        string
	}{
		{1, 1, 5_000, 1, reportApart}, {1, 10, 5_000, 1, reportApart},
		{1, 100, 20_000, 1, reportApart}, {1, 100, 20_000, 500, reportApart}, {1, 100, 20_000, 500, reportWithLease},
		{4, 1, 5_000, 1, reportApart}, {4, 10, 5_000, 1, reportApart},
		{4, 100, 20_000, 1, reportApart}, {4, 100, 20_000, 500, reportApart}, {4, 100, 20_000, 500, reportWithLease},
		{10, 100, 20_000, 500, reportApart}, {10, 100, 20_000, 500, reportWithLease},
	}
	for _, backend := range []string{"sqlite", "postgres"} {
		for _, tc := range cases {
			name := fmt.Sprintf("%s/workers=%d/batch=%d/enqueue=%d/report=%s", backend, tc.workers, tc.batch, tc.enqueue, tc.report)
			b.Run(name, func(b *testing.B) {
				c := startQueue(b, backend)
				for i := 0; i < b.N; i++ {
					enq := enqueue(b, c, tc.jobs, tc.enqueue)
					w := work(b, c, tc.workers, tc.batch, tc.jobs, tc.report)
					n := float64(tc.jobs)
					b.ReportMetric(n/enq.Seconds(), "enqueue-jobs/s")
					b.ReportMetric(n/w.Seconds(), "jobs/s")
					b.ReportMetric(n/(enq+w).Seconds(), "e2e-jobs/s")
				}
			})
		}
	}
}

// riverJobs is how many jobs each BenchmarkRiverWork round works.
const riverJobs = 20_000

// BenchmarkRiverWork is the anchor: River v0.51.2 in-process on the same
// PostgreSQL server, at the configuration River's authors benchmark it with.
// Jobs are inserted with one InsertManyFast (COPY), then a River client
// works them; the working phase runs from Start until the n-th
// EventKindJobCompleted, which River sends after its completer has
// committed. Reported: insert-jobs/s, jobs/s of the working phase, e2e-jobs/s
// (n over insert plus working time) and start-ms (Start's own share of the
// working phase).
//
// Configuration, from River's own benchmark, "river bench"
// (cmd/river/riverbench/river_bench.go, set in March 2024 and unchanged
// since; https://riverqueue.com/docs/benchmarks: "with 2,000 worker
// goroutines, River works about 46k jobs/sec"): FetchCooldown 2 ms and
// FetchPollInterval 20 ms instead of the defaults 100 ms and 1 s (River's
// doc on FetchCooldown: "Throughput is limited by this value"). MaxWorkers
// 100 and 1,000 match our 1×100 and 10×100 jobs in flight; 2,000 is
// riverbench's setting. A River producer fetches up to MaxWorkers minus its
// running jobs in one query and, after a full fetch, fetches again as soon
// as a slot frees (at most every FetchCooldown), so its fetch batch grows
// with MaxWorkers as our lease batch does. SubscribeConfig's ChanSize is the
// round's job count (riverbench uses 75,000): the default channel (1,000)
// drops events it cannot buffer, which would leave the round waiting. Default
// pgxpool (as the river CLI) and River's default batch completer.
//
//	go test -run '^$' -bench RiverWork -benchtime 1x ./bench/
func BenchmarkRiverWork(b *testing.B) {
	for _, workers := range []int{100, 1_000, 2_000} {
		b.Run(fmt.Sprintf("postgres/workers=%d", workers), func(b *testing.B) {
			ownerURL, _ := storetest.Postgres(b)
			ctx := context.Background()
			pool, err := pgxpool.New(ctx, ownerURL)
			if err != nil {
				b.Fatal(err)
			}
			defer pool.Close()
			migrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
				b.Fatal(err)
			}
			ws := river.NewWorkers()
			river.AddWorker(ws, &noopWorker{})
			client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
				FetchCooldown:     2 * time.Millisecond,
				FetchPollInterval: 20 * time.Millisecond,
				Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: workers}},
				Workers:           ws,
			})
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; i < b.N; i++ {
				params := make([]river.InsertManyParams, riverJobs)
				for j := range params {
					params[j] = river.InsertManyParams{Args: noopArgs{}}
				}
				insertStart := time.Now()
				if _, err := client.InsertManyFast(ctx, params); err != nil {
					b.Fatal(err)
				}
				insert := time.Since(insertStart)
				events, cancel := client.SubscribeConfig(&river.SubscribeConfig{
					ChanSize: riverJobs,
					Kinds:    []river.EventKind{river.EventKindJobCompleted, river.EventKindJobFailed},
				})
				start := time.Now()
				if err := client.Start(ctx); err != nil {
					b.Fatal(err)
				}
				started := time.Since(start)
				timeout := time.After(2 * time.Minute)
				for n := 0; n < riverJobs; n++ {
					select {
					case e := <-events:
						if e.Kind != river.EventKindJobCompleted {
							b.Fatalf("job %d: %s", e.Job.ID, e.Kind)
						}
					case <-timeout:
						b.Fatalf("%d of %d jobs completed in 2 minutes", n, riverJobs)
					}
				}
				w := time.Since(start)
				cancel()
				if err := client.Stop(ctx); err != nil {
					b.Fatal(err)
				}
				n := float64(riverJobs)
				b.ReportMetric(n/insert.Seconds(), "insert-jobs/s")
				b.ReportMetric(n/w.Seconds(), "jobs/s")
				b.ReportMetric(n/(insert+w).Seconds(), "e2e-jobs/s")
				b.ReportMetric(float64(started.Microseconds())/1000, "start-ms")
			}
		})
	}
}

// BenchmarkPickupLatency measures how long an idle, long-polling worker
// takes to receive a job after its enqueue returns.
//
//	go test -run '^$' -bench PickupLatency -benchtime 1x ./bench/
func BenchmarkPickupLatency(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			c := startQueue(b, backend)
			const samples = 200
			for i := 0; i < b.N; i++ {
				lat := make([]time.Duration, 0, samples)
				for s := 0; s < samples; s++ {
					leased := make(chan time.Time, 1)
					ready := make(chan struct{})
					go func() {
						close(ready)
						resp, err := c.q.LeaseJobs(c.worker, &queuev1.LeaseJobsRequest{WorkerId: "w", MaxJobs: 1, WaitMs: 5000})
						if err != nil || len(resp.GetLeases()) != 1 {
							b.Errorf("lease: %v %v", resp, err)
							leased <- time.Time{}
							return
						}
						leased <- time.Now()
						l := resp.GetLeases()[0]
						_, _ = c.q.CompleteJob(c.worker, &queuev1.CompleteJobRequest{JobId: l.GetJob().GetJobId(), WorkerId: "w", LeaseToken: l.GetLeaseToken()})
					}()
					<-ready
					time.Sleep(20 * time.Millisecond) // let the lease call start waiting
					// Measured from the start of the enqueue call: an upper
					// bound that includes the enqueue itself.
					enqueued := time.Now()
					if _, err := c.q.EnqueueJob(c.producer, &queuev1.EnqueueJobRequest{Type: "noop"}); err != nil {
						b.Fatal(err)
					}
					at := <-leased
					if at.IsZero() {
						b.FailNow()
					}
					lat = append(lat, at.Sub(enqueued))
				}
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			}
		})
	}
}

type client struct {
	q        queuev1.QueueServiceClient
	producer context.Context
	worker   context.Context
}

func startQueue(b *testing.B, backend string) client {
	b.Helper()
	opt := servicetest.Options{AuthMode: "required", Quiet: true, TCP: true}
	if backend == "postgres" {
		opt.MigrateURL, opt.DatabaseURL = storetest.Postgres(b)
	}
	conn := servicetest.Start(b, app.Spec(), opt)
	return client{
		q:        queuev1.NewQueueServiceClient(conn),
		producer: bearer(b, "bench", "user"),
		worker:   bearer(b, "bench", "worker"),
	}
}

func bearer(b *testing.B, tenant string, roles ...string) context.Context {
	tok, err := identity.MintHS256([]byte(servicetest.Secret), identity.Claims{Subject: "bench", TenantID: tenant, Roles: roles}, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
}

// enqueue adds n no-op jobs: one EnqueueJob per job from 16 producers when
// batch is 1, else EnqueueJobs of batch jobs from 4 producers.
func enqueue(b *testing.B, c client, n, batch int) time.Duration {
	b.Helper()
	producers := 16
	if batch > 1 {
		producers = 4
	}
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				end := next.Add(int64(batch))
				size := batch - int(max(0, end-int64(n)))
				if size <= 0 {
					return
				}
				var err error
				if batch == 1 {
					_, err = c.q.EnqueueJob(c.producer, &queuev1.EnqueueJobRequest{Type: "noop"})
				} else {
					jobs := make([]*queuev1.EnqueueJobRequest, size)
					for i := range jobs {
						jobs[i] = &queuev1.EnqueueJobRequest{Type: "noop"}
					}
					_, err = c.q.EnqueueJobs(c.producer, &queuev1.EnqueueJobsRequest{Jobs: jobs})
				}
				if err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// Ways a bench worker reports a batch.
const (
	reportApart     = "apart" // CompleteJobs, then LeaseJobs
	reportWithLease = "lease" // the completions ride on the next LeaseJobs
)

// work runs W workers until n jobs are completed and returns the time until
// the n-th completion was acknowledged (not until every worker's last long
// poll, up to 100 ms later, has returned). A worker leases up to batch jobs,
// runs them (no-op) and reports the batch as report says. With completions
// to report it does not wait for jobs (WaitMs 0): the report must not wait
// on the queue; an idle worker long-polls.
func work(b *testing.B, c client, workers, batch, n int, report string) time.Duration {
	b.Helper()
	start := time.Now()
	var done atomic.Int64
	var finished atomic.Int64 // nanoseconds after start of the n-th completion
	count := func(results []*queuev1.CompleteJobResult) bool {
		for _, r := range results {
			if !r.GetCompleted() {
				b.Errorf("completion refused: %v", r)
				return false
			}
		}
		if total := done.Add(int64(len(results))); total >= int64(n) {
			finished.CompareAndSwap(0, int64(time.Since(start)))
		}
		return true
	}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("bench-%d", w)
			var pending []*queuev1.CompleteJobRequest
			for done.Load() < int64(n) || len(pending) > 0 {
				req := &queuev1.LeaseJobsRequest{WorkerId: id, MaxJobs: int32(batch), WaitMs: 100, Completions: pending}
				if len(pending) > 0 {
					req.WaitMs = 0
				}
				resp, err := c.q.LeaseJobs(c.worker, req, grpc.WaitForReady(true))
				if err != nil {
					b.Error(err)
					return
				}
				if !count(resp.GetCompletionResults()) {
					return
				}
				pending = nil
				for _, l := range resp.GetLeases() {
					pending = append(pending, &queuev1.CompleteJobRequest{JobId: l.GetJob().GetJobId(), WorkerId: id, LeaseToken: l.GetLeaseToken()})
				}
				if report == reportWithLease || len(pending) == 0 {
					continue
				}
				res, err := c.q.CompleteJobs(c.worker, &queuev1.CompleteJobsRequest{Completions: pending})
				if err != nil {
					b.Error(err)
					return
				}
				pending = nil
				if !count(res.GetResults()) {
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Duration(finished.Load())
}

type noopArgs struct{}

func (noopArgs) Kind() string { return "noop" }

type noopWorker struct {
	river.WorkerDefaults[noopArgs]
}

func (*noopWorker) Work(context.Context, *river.Job[noopArgs]) error { return nil }
