// Package worker runs queue jobs on an edge machine: it leases jobs of the
// types it has handlers for from echopilot.queue.v1, runs them in parallel
// up to a limit, keeps their leases alive with heartbeats and reports each
// outcome. Delivery is at least once: a job whose outcome never reaches the
// queue returns to it when its lease expires, so handlers must tolerate
// running a job twice.
package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/backoff"
)

// Queue limits from the echopilot.queue.v1 contract.
const (
	maxLeaseBatch  = 100
	maxWait        = 30 * time.Second
	maxConcurrency = 10000 // WorkerInfo.concurrency
)

const (
	// rpcTimeout bounds a heartbeat, completion or failure report.
	rpcTimeout = 10 * time.Second
	// idlePause spaces lease calls that do not long-poll and find nothing.
	idlePause = 500 * time.Millisecond
	// reportAttempts is how often a completion or failure is sent when the
	// queue is briefly unreachable.
	reportAttempts = 3
)

// Retry schedules, without jitter as they always were.
var (
	// leaseBackoff spaces lease calls while the queue is unreachable:
	// 100ms, doubling up to 10s.
	leaseBackoff = backoff.Policy{Base: 100 * time.Millisecond, Cap: 10 * time.Second, Jitter: backoff.None}
	// reportBackoff spaces the tries of a completion or failure report:
	// 200ms, then 400ms.
	reportBackoff = backoff.Policy{Base: 200 * time.Millisecond, Jitter: backoff.None}
)

// Config tunes a Worker.
type Config struct {
	// WorkerID names the worker as the owner of its leases. Required.
	WorkerID string
	// Types are the job types to lease; empty means every type in handlers.
	Types []string
	// Concurrency is how many jobs run at once; 0 means 1.
	Concurrency int
	// Lease is the lease length asked for, in whole seconds; 0 means 30s.
	// Heartbeats renew it every Lease/3.
	Lease time.Duration
	// Batch is the most jobs one lease call takes; 0 means Concurrency. The
	// worker never leases more jobs than it has free slots.
	Batch int
	// Wait is how long a lease call waits for a job when none is ready
	// (long poll, at most 30s); 0 answers at once.
	Wait time.Duration
	// MaxJobs stops the worker after it has taken that many jobs and they
	// have finished; 0 runs until the context ends.
	MaxJobs int
	// ShutdownGrace is how long running jobs may go on once the context
	// ends. Jobs still running then are stopped and handed back to the queue.
	ShutdownGrace time.Duration
	// Out receives the progress lines; nil discards them.
	Out io.Writer
	// Log receives diagnostics; nil discards them.
	Log *zap.Logger
	// Version is the build the worker reports to the queue's worker
	// registry; "" means the binary's module version or VCS revision.
	Version string
	// Host is the host it reports; "" means os.Hostname.
	Host string
}

// Stats counts what happened to the jobs a worker took.
type Stats struct {
	// Completed jobs, acknowledged by the queue.
	Completed int
	// Failed jobs, reported to the queue (which may retry them).
	Failed int
	// Released jobs, handed back unfinished at shutdown.
	Released int
	// Abandoned jobs: cancelled, lease lost, or the outcome could not be
	// reported. The queue decides what happens to them.
	Abandoned int
}

// Processed is the number of jobs whose outcome the queue received.
func (s Stats) Processed() int { return s.Completed + s.Failed }

// Worker leases and runs jobs. Use New; run it once.
type Worker struct {
	queue    queuev1.QueueServiceClient
	handlers map[string]Handler
	cfg      Config
	log      *zap.Logger
	out      *printer
	// info describes the worker in every lease and heartbeat call.
	info *queuev1.WorkerInfo

	mu    sync.Mutex
	stats Stats
}

// errShutdown is the cause given to jobs stopped when the grace period ends.
var errShutdown = errors.New("worker shutting down")

// New checks cfg and returns a Worker that leases from queue and runs jobs
// with handlers, keyed by job type.
func New(queue queuev1.QueueServiceClient, handlers map[string]Handler, cfg Config) (*Worker, error) {
	if cfg.WorkerID == "" {
		return nil, errors.New("new worker: no worker id")
	}
	if len(cfg.Types) == 0 {
		cfg.Types = slices.Sorted(maps.Keys(handlers))
	}
	if len(cfg.Types) == 0 {
		return nil, errors.New("new worker: no handlers")
	}
	for _, t := range cfg.Types {
		if handlers[t] == nil {
			return nil, fmt.Errorf("new worker: no handler for job type %q", t)
		}
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 1
	}
	if cfg.Lease == 0 {
		cfg.Lease = 30 * time.Second
	}
	// The queue counts leases in seconds; heartbeats must pace the real one.
	cfg.Lease = cfg.Lease.Truncate(time.Second)
	if cfg.Batch == 0 {
		cfg.Batch = cfg.Concurrency
	}
	switch {
	case cfg.Concurrency < 0 || cfg.Concurrency > maxConcurrency:
		return nil, fmt.Errorf("new worker: concurrency %d is not between 1 and %d", cfg.Concurrency, maxConcurrency)
	case cfg.Lease < time.Second || cfg.Lease > time.Hour:
		return nil, fmt.Errorf("new worker: lease %v is not between 1s and 1h", cfg.Lease)
	case cfg.Batch < 0 || cfg.Batch > maxLeaseBatch:
		return nil, fmt.Errorf("new worker: batch %d is not between 1 and %d", cfg.Batch, maxLeaseBatch)
	case cfg.Wait < 0 || cfg.Wait > maxWait:
		return nil, fmt.Errorf("new worker: wait %v is not between 0 and %v", cfg.Wait, maxWait)
	case cfg.MaxJobs < 0:
		return nil, fmt.Errorf("new worker: max jobs %d is negative", cfg.MaxJobs)
	case cfg.ShutdownGrace < 0:
		return nil, fmt.Errorf("new worker: shutdown grace %v is negative", cfg.ShutdownGrace)
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	log := cfg.Log
	if log == nil {
		log = zap.NewNop()
	}
	return &Worker{
		queue:    queue,
		handlers: handlers,
		cfg:      cfg,
		log:      log.With(zap.String("worker_id", cfg.WorkerID)),
		out:      &printer{w: cfg.Out},
		info:     describe(cfg),
	}, nil
}

// Run leases and runs jobs until ctx ends or MaxJobs jobs have finished.
// When ctx ends it stops leasing, gives running jobs ShutdownGrace to finish,
// then stops the rest and hands them back to the queue. It returns what
// happened to the jobs, and an error only when the queue refuses the worker
// (a bad token, a missing role), which retrying cannot fix.
func (w *Worker) Run(ctx context.Context) (Stats, error) {
	w.out.printf("Starting edge worker: %s\n", w.cfg.WorkerID)
	// Jobs do not stop with ctx: they get the grace period first.
	jobCtx, stopJobs := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stopJobs(nil)

	var running sync.WaitGroup
	err := w.leaseLoop(ctx, jobCtx, &running)
	w.drain(ctx, &running, stopJobs)

	w.mu.Lock()
	stats := w.stats
	w.mu.Unlock()
	w.out.printf("Worker stopped. Processed %d jobs.\n", stats.Processed())
	return stats, err
}

// leaseLoop takes jobs while slots are free and starts each in its own
// goroutine, until ctx ends, the MaxJobs budget is taken or the queue
// refuses the worker.
func (w *Worker) leaseLoop(ctx, jobCtx context.Context, running *sync.WaitGroup) error {
	slots := make(chan struct{}, w.cfg.Concurrency)
	taken := 0
	failures := 0 // lease calls failed in a row
	for w.cfg.MaxJobs == 0 || taken < w.cfg.MaxJobs {
		want := w.cfg.Batch
		if w.cfg.MaxJobs > 0 {
			want = min(want, w.cfg.MaxJobs-taken)
		}
		n := acquire(ctx, slots, want)
		if n == 0 {
			return nil // ctx ended
		}
		leases, err := w.lease(ctx, n)
		if err != nil {
			release(slots, n)
			if ctx.Err() != nil {
				return nil
			}
			if !transientCode(err) {
				return fmt.Errorf("lease jobs: %w", err)
			}
			failures++
			pause := leaseBackoff.Delay(failures)
			w.log.Warn("lease failed; retrying", zap.Error(err), zap.Duration("backoff", pause))
			if !sleep(ctx, pause) {
				return nil
			}
			continue
		}
		failures = 0
		w.log.Debug("leased jobs", zap.Int("asked", n), zap.Int("got", len(leases)))
		if len(leases) > n {
			// The queue answered with more than asked for. Hand the surplus
			// back rather than exceed the concurrency limit.
			w.log.Error("queue returned more leases than asked for", zap.Int("asked", n), zap.Int("got", len(leases)))
			for _, l := range leases[n:] {
				w.release(ctx, l, errors.New("worker over capacity"))
			}
			leases = leases[:n]
		}
		release(slots, n-len(leases))
		for _, l := range leases {
			taken++
			running.Add(1)
			go func() {
				defer running.Done()
				defer func() { <-slots }()
				w.runJob(jobCtx, l)
			}()
		}
		if len(leases) == 0 && w.cfg.Wait == 0 && !sleep(ctx, idlePause) {
			return nil
		}
	}
	return nil
}

// lease asks the queue for up to n jobs, long-polling up to Wait.
func (w *Worker) lease(ctx context.Context, n int) ([]*queuev1.Lease, error) {
	// The deadline only guards against a connection that hangs: the queue
	// answers within Wait.
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Wait+rpcTimeout)
	defer cancel()
	resp, err := w.queue.LeaseJobs(ctx, &queuev1.LeaseJobsRequest{
		WorkerId:     w.cfg.WorkerID,
		Types:        w.cfg.Types,
		MaxJobs:      int32(n),
		LeaseSeconds: int32(w.cfg.Lease / time.Second),
		WaitMs:       int32(w.cfg.Wait / time.Millisecond),
		WorkerInfo:   w.info,
	})
	if err != nil {
		return nil, err
	}
	return resp.GetLeases(), nil
}

// drain waits for running jobs. Once ctx has ended it waits ShutdownGrace at
// most, then stops the jobs still running, which hand themselves back.
func (w *Worker) drain(ctx context.Context, running *sync.WaitGroup, stopJobs context.CancelCauseFunc) {
	done := make(chan struct{})
	go func() {
		running.Wait()
		close(done)
	}()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	grace := time.NewTimer(w.cfg.ShutdownGrace)
	defer grace.Stop()
	select {
	case <-done:
		return
	case <-grace.C:
	}
	stopJobs(errShutdown)
	<-done
}

// acquire takes one free slot, waiting for it, then up to want-1 more that
// are free now. It returns how many it took: 0 when ctx ended first.
func acquire(ctx context.Context, slots chan struct{}, want int) int {
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		return 0
	}
	n := 1
	for n < want {
		select {
		case slots <- struct{}{}:
			n++
		default:
			return n
		}
	}
	return n
}

func release(slots chan struct{}, n int) {
	for range n {
		<-slots
	}
}

// sleep waits d and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// ErrorInfo reasons of the queue's lease calls (queue.echopilot), kept in
// step with services/queue/internal/domain by a test.
const (
	reasonLeaseLost    = "LEASE_LOST"
	reasonJobCancelled = "JOB_CANCELLED"
	reasonJobFinished  = "JOB_FINISHED"
	reasonJobNotFound  = "JOB_NOT_FOUND"
)

// leaseGone says why the queue refused a lease call, when the refusal means
// the job is no longer this worker's to finish: errJobCancelled or
// errLeaseLost (expired and perhaps leased again, finished, deleted). It
// returns nil for failures that may pass.
func leaseGone(err error) error {
	if err == nil {
		return nil
	}
	switch apierr.Reason(err) {
	case reasonJobCancelled:
		return errJobCancelled
	case reasonLeaseLost, reasonJobFinished, reasonJobNotFound:
		return fmt.Errorf("%w: %v", errLeaseLost, err)
	}
	return nil
}

func (w *Worker) count(f func(*Stats)) {
	w.mu.Lock()
	f(&w.stats)
	w.mu.Unlock()
}

// printer writes whole progress lines from concurrent jobs.
type printer struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *printer) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Progress output is best effort: a closed stdout must not stop jobs.
	_, _ = fmt.Fprintf(p.w, format, args...)
}
