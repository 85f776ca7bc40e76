package store_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/queue/internal/domain"
)

// Shape of BenchmarkThroughput's load.
const (
	// benchProducers enqueue concurrently, as that many API clients would.
	benchProducers = 32
	// benchWorkers lease concurrently, each running the handlers of its
	// batch side by side.
	benchWorkers = 4
)

// BenchmarkThroughput is the store's job throughput, enqueue → lease →
// complete with a no-op handler, in two timed phases: benchProducers
// goroutines enqueue b.N jobs (one Enqueue call each, as EnqueueJob makes),
// then benchWorkers workers lease them in batches and complete each one
// (one Complete call each, with its outbox event, as CompleteJob makes).
// Phases rather than a pipeline, so that workers take full batches instead
// of polling for a producer's latest job. One op is one job through its
// whole life; jobs/s is the figure to compare. PostgreSQL runs with the
// server's settings (durable commits unless the server says otherwise).
//
//	go test -run '^$' -bench Throughput -benchtime 20000x ./internal/store/
func BenchmarkThroughput(b *testing.B) {
	for _, backend := range storetest.Backends() {
		for _, batch := range []int{1, 10, 100} {
			b.Run(fmt.Sprintf("%s/batch=%d", backend.Name, batch), func(b *testing.B) {
				f := newFixture(b, backend)
				b.ResetTimer()
				enqueue, drain := runThroughput(b, f, batch)
				b.StopTimer()
				b.ReportMetric(float64(b.N)/(enqueue+drain).Seconds(), "jobs/s")
				b.ReportMetric(float64(b.N)/enqueue.Seconds(), "enqueued/s")
				b.ReportMetric(float64(b.N)/drain.Seconds(), "completed/s")
			})
		}
	}
}

// runThroughput returns how long each phase took.
func runThroughput(b *testing.B, f fixture, batch int) (enqueue, drain time.Duration) {
	ctx := b.Context()
	var (
		wg        sync.WaitGroup
		next      atomic.Int64
		completed atomic.Int64
		failed    atomic.Bool
	)
	total := int64(b.N)
	stop := func(err error) {
		b.Error(err)
		failed.Store(true)
	}
	start := time.Now()
	for range benchProducers {
		wg.Go(func() {
			for next.Add(1) <= total && !failed.Load() {
				if _, _, err := f.st.Enqueue(ctx, newJob("acme")); err != nil {
					stop(err)
				}
			}
		})
	}
	wg.Wait()
	enqueue = time.Since(start)
	start = time.Now()
	for w := range benchWorkers {
		wg.Go(func() {
			worker := fmt.Sprintf("w%d", w)
			for completed.Load() < total && !failed.Load() {
				leases, _, err := f.st.Claim(ctx, domain.Claim{
					TenantID: "acme", WorkerID: worker, Max: batch, LeaseFor: time.Minute, Now: time.Now().UTC(),
				})
				if err != nil {
					stop(err)
					return
				}
				if len(leases) == 0 {
					// The last jobs are leased by other workers.
					time.Sleep(time.Millisecond)
					continue
				}
				// The batch's no-op handlers run side by side, as a worker
				// with that much concurrency runs them.
				var handlers sync.WaitGroup
				for _, l := range leases {
					handlers.Go(func() {
						if _, err := f.st.Complete(ctx, ref(l), domain.Completion{Result: json.RawMessage(`{}`), Now: time.Now().UTC()}); err != nil {
							stop(err)
							return
						}
						completed.Add(1)
					})
				}
				handlers.Wait()
			}
		})
	}
	wg.Wait()
	return enqueue, time.Since(start)
}
