package store_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/echopilot/echopilot/services/queue/internal/domain"
)

// leaseSpan is one lease of a job as its worker saw it: from the claim's
// time to the completion's, or to the end of a lease it abandoned.
type leaseSpan struct {
	token      int64
	start, end time.Time
	completed  bool
}

// TestConcurrentWorkers runs 8 workers over 10,000 jobs (2,000 under the
// race detector). One lease in a hundred is abandoned, as by a worker that
// crashed: its heartbeat cuts the lease to 100 ms and it never reports
// back. Every job must be completed exactly once, and no two leases of a
// job may ever be live at the same time.
func TestConcurrentWorkers(t *testing.T) {
	jobs := 10000
	if raceEnabled {
		jobs = 2000
	}
	const (
		workers      = 8
		producers    = 16
		batch        = 25
		abandonOneIn = 100
	)
	eachBackend(t, func(t *testing.T, f fixture) {
		ctx := t.Context()
		var (
			mu         sync.Mutex
			spans      = make(map[string][]leaseSpan, jobs)
			completed  atomic.Int64
			leaseCount atomic.Int64
			wg         sync.WaitGroup
		)
		record := func(id string, s leaseSpan) {
			mu.Lock()
			spans[id] = append(spans[id], s)
			mu.Unlock()
		}
		fail := func(err error) {
			t.Error(err)
			completed.Store(int64(jobs)) // stop everyone
		}
		// Enqueued first, concurrently: the workers then take full batches.
		for p := range producers {
			wg.Go(func() {
				for i := p; i < jobs; i += producers {
					if _, _, err := f.st.Enqueue(ctx, newJob("acme", maxAttempts(100))); err != nil {
						fail(err)
						return
					}
				}
			})
		}
		wg.Wait()
		for w := range workers {
			wg.Go(func() {
				worker := fmt.Sprintf("w%d", w)
				for completed.Load() < int64(jobs) {
					leases, _, err := f.st.Claim(ctx, domain.Claim{
						TenantID: "acme", WorkerID: worker, Max: batch, LeaseFor: 30 * time.Second, Now: time.Now().UTC(),
					})
					if err != nil {
						fail(err)
						return
					}
					if len(leases) == 0 {
						time.Sleep(2 * time.Millisecond)
						continue
					}
					// The batch's handlers run side by side, as in a worker
					// with that much concurrency.
					var handlers sync.WaitGroup
					for _, l := range leases {
						start := l.Job.UpdatedAt
						if leaseCount.Add(1)%abandonOneIn == 0 {
							j, err := f.st.Heartbeat(ctx, ref(l), 100*time.Millisecond, time.Now().UTC())
							if err != nil {
								fail(err)
								return
							}
							record(l.Job.ID, leaseSpan{token: l.Token, start: start, end: j.LeaseExpiresAt})
							continue
						}
						handlers.Go(func() {
							now := time.Now().UTC()
							_, err := f.st.Complete(ctx, ref(l), domain.Completion{Result: json.RawMessage(`{}`), Now: now})
							if err != nil {
								fail(fmt.Errorf("complete %s (token %d): %w", l.Job.ID, l.Token, err))
								return
							}
							record(l.Job.ID, leaseSpan{token: l.Token, start: start, end: now, completed: true})
							completed.Add(1)
						})
					}
					handlers.Wait()
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		if len(spans) != jobs {
			t.Fatalf("%d jobs leased, want %d", len(spans), jobs)
		}
		abandoned := 0
		for id, ss := range spans {
			slices.SortFunc(ss, func(a, b leaseSpan) int { return int(a.token - b.token) })
			done := 0
			for i, s := range ss {
				if s.token != int64(i+1) {
					t.Fatalf("job %s: lease tokens %v, want 1, 2, …: a token was handed out twice or skipped", id, tokens(ss))
				}
				if s.completed {
					done++
				} else {
					abandoned++
				}
				if i > 0 && s.start.Before(ss[i-1].end) {
					t.Fatalf("job %s: lease %d started at %v, before lease %d ended at %v",
						id, s.token, s.start, ss[i-1].token, ss[i-1].end)
				}
			}
			if done != 1 || !ss[len(ss)-1].completed {
				t.Fatalf("job %s completed %d times (leases %+v), want once, by its last lease", id, done, ss)
			}
		}
		cs, err := f.st.Counts(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) != 1 || cs[0].Status != domain.StatusCompleted || cs[0].N != int64(jobs) {
			t.Errorf("counts = %+v, want %d completed", cs, jobs)
		}
		if rows := len(f.outboxRows(t)); rows != jobs {
			t.Errorf("%d outbox events, want %d", rows, jobs)
		}
		if abandoned == 0 {
			t.Error("no lease was abandoned: redelivery was not exercised")
		}
		t.Logf("%d leases, %d abandoned and redelivered", leaseCount.Load(), abandoned)
	})
}

func tokens(ss []leaseSpan) []int64 {
	out := make([]int64, len(ss))
	for i, s := range ss {
		out[i] = s.token
	}
	return out
}
