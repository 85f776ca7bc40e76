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

// jobsPerRound is how many no-op jobs each measured round works.
const jobsPerRound = 5000

// BenchmarkQueueWork measures our remote-worker path: jobs are enqueued
// first (not timed), then W workers lease batches of B over gRPC (loopback
// TCP, full interceptor chain, HS256 worker token), run a no-op handler and
// report each batch with one CompleteJobs call. Reported: jobs/s of the working phase and, separately,
// of enqueue (one RPC per job, 16 concurrent producers).
//
//	go test -run '^$' -bench QueueWork -benchtime 1x ./bench/
func BenchmarkQueueWork(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		for _, workers := range []int{1, 4} {
			for _, batch := range []int{1, 10, 100} {
				b.Run(fmt.Sprintf("%s/workers=%d/batch=%d", backend, workers, batch), func(b *testing.B) {
					c := startQueue(b, backend)
					for i := 0; i < b.N; i++ {
						enq := enqueue(b, c, jobsPerRound)
						b.ReportMetric(float64(jobsPerRound)/enq.Seconds(), "enqueue-jobs/s")
						start := time.Now()
						work(b, c, workers, batch, jobsPerRound)
						b.ReportMetric(float64(jobsPerRound)/time.Since(start).Seconds(), "jobs/s")
					}
				})
			}
		}
	}
}

// BenchmarkRiverWork is the same round with River on the same PostgreSQL:
// jobs inserted first with InsertMany (not timed), then a River client with
// W workers works them in-process.
//
//	go test -run '^$' -bench RiverWork -benchtime 1x ./bench/
func BenchmarkRiverWork(b *testing.B) {
	for _, workers := range []int{1, 4} {
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
				Queues:        map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: workers}},
				Workers:       ws,
				FetchCooldown: time.Millisecond,
			})
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; i < b.N; i++ {
				params := make([]river.InsertManyParams, jobsPerRound)
				for j := range params {
					params[j] = river.InsertManyParams{Args: noopArgs{}}
				}
				if _, err := client.InsertManyFast(ctx, params); err != nil {
					b.Fatal(err)
				}
				events, cancel := client.Subscribe(river.EventKindJobCompleted)
				start := time.Now()
				if err := client.Start(ctx); err != nil {
					b.Fatal(err)
				}
				for n := 0; n < jobsPerRound; n++ {
					<-events
				}
				elapsed := time.Since(start)
				cancel()
				if err := client.Stop(ctx); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(jobsPerRound)/elapsed.Seconds(), "jobs/s")
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

func enqueue(b *testing.B, c client, n int) time.Duration {
	b.Helper()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for p := 0; p < 16; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if _, err := c.q.EnqueueJob(c.producer, &queuev1.EnqueueJobRequest{Type: "noop"}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// work runs W workers until n jobs are completed. A worker leases up to
// batch jobs, runs them (no-op) and reports the batch with one CompleteJobs
// call, as a worker finishing a batch together does.
func work(b *testing.B, c client, workers, batch, n int) {
	b.Helper()
	var done atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("bench-%d", w)
			for done.Load() < int64(n) {
				resp, err := c.q.LeaseJobs(c.worker, &queuev1.LeaseJobsRequest{WorkerId: id, MaxJobs: int32(batch), WaitMs: 100}, grpc.WaitForReady(true))
				if err != nil {
					b.Error(err)
					return
				}
				if len(resp.GetLeases()) == 0 {
					continue
				}
				req := &queuev1.CompleteJobsRequest{}
				for _, l := range resp.GetLeases() {
					req.Completions = append(req.Completions, &queuev1.CompleteJobRequest{
						JobId: l.GetJob().GetJobId(), WorkerId: id, LeaseToken: l.GetLeaseToken(),
					})
				}
				res, err := c.q.CompleteJobs(c.worker, req)
				if err != nil {
					b.Error(err)
					return
				}
				for _, r := range res.GetResults() {
					if !r.GetCompleted() {
						b.Errorf("completion refused: %v", r)
						return
					}
				}
				done.Add(int64(len(res.GetResults())))
			}
		}()
	}
	wg.Wait()
}

type noopArgs struct{}

func (noopArgs) Kind() string { return "noop" }

type noopWorker struct {
	river.WorkerDefaults[noopArgs]
}

func (*noopWorker) Work(context.Context, *river.Job[noopArgs]) error { return nil }
