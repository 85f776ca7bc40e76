package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	"github.com/echopilot/echopilot/services/queue/internal/domain"
)

// The seed's gate: enqueue 2 jobs → a worker with --max-jobs 2 processes both
// → the status shows 2 completed, 0 queued; the output is the seed's.
func testWorkerProcessesJobs(t *testing.T, q queuev1.QueueServiceClient) {
	ai := httptest.NewServer(&openAIServer{t: t, key: "k", model: "tiny"})
	defer ai.Close()
	first := enqueue(t, q, "ai_task", map[string]any{"prompt": "one"})
	second := enqueue(t, q, "ai_task", map[string]any{"prompt": "two"})
	if st := queueStatus(t, q); st.GetQueued() != 2 {
		t.Fatalf("queued = %d before the worker, want 2", st.GetQueued())
	}

	var out bytes.Buffer
	w := newWorker(t, q, map[string]Handler{
		"ai_task": NewAITask(AIConfig{BaseURL: ai.URL + "/v1", Model: "tiny", APIKey: "k"}),
	}, Config{MaxJobs: 2, Wait: time.Second, Out: &out, Log: zaptest.NewLogger(t)})
	stats := runWorker(t, w)

	want := fmt.Sprintf(`Starting edge worker: test_worker
  Processing job %[1]s (ai_task)...
    ✓ Completed: %[1]s
  Processing job %[2]s (ai_task)...
    ✓ Completed: %[2]s
Worker stopped. Processed 2 jobs.
`, shortID(first), shortID(second))
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
	}
	if stats != (Stats{Completed: 2}) {
		t.Errorf("stats = %+v", stats)
	}
	st := queueStatus(t, q)
	if st.GetCompleted() != 2 || st.GetQueued() != 0 || st.GetProcessing() != 0 || st.GetByType()["ai_task"] != 2 {
		t.Errorf("status after = %v, want 2 completed, 0 queued", st)
	}
	job := getJob(t, q, first)
	if ans := job.GetResult().GetFields()["answer"].GetStringValue(); ans != "echo: one" {
		t.Errorf("result answer = %q", ans)
	}
	if u := job.GetUsage(); u.GetModel() != "tiny-2024-01-01" || u.GetInputTokens() != 10 || u.GetOutputTokens() != 7 {
		t.Errorf("stored usage = %v", u)
	}
}

// gate holds handlers until n run at once, and records the most seen.
type gate struct {
	n       int
	mu      sync.Mutex
	running int
	most    int
	full    chan struct{}
	once    sync.Once
	during  func() // runs once, while n handlers are running
}

func newGate(n int, during func()) *gate {
	return &gate{n: n, full: make(chan struct{}), during: during}
}

func (g *gate) Run(ctx context.Context, job *queuev1.Job) (Result, error) {
	g.mu.Lock()
	g.running++
	g.most = max(g.most, g.running)
	if g.running == g.n {
		g.once.Do(func() {
			g.during()
			close(g.full)
		})
	}
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.running--
		g.mu.Unlock()
	}()
	select {
	case <-g.full:
		return Result{}, nil
	case <-time.After(10 * time.Second):
		return Result{}, errors.New("never saw enough jobs running at once")
	}
}

// Concurrency N runs N jobs in parallel, and never leases more than it has
// free slots, even with a larger batch.
func testWorkerConcurrency(t *testing.T, q queuev1.QueueServiceClient) {
	for i := range 5 {
		enqueue(t, q, "slow", map[string]any{"i": i})
	}
	var processingWhileFull int64 = -1
	g := newGate(2, func() {
		// Not queueStatus: t.Fatal may not run on a handler's goroutine.
		if st, err := q.GetQueueStatus(context.Background(), &queuev1.GetQueueStatusRequest{}); err == nil {
			processingWhileFull = st.GetProcessing()
		}
	})
	w := newWorker(t, q, map[string]Handler{"slow": g}, Config{Concurrency: 2, Batch: 10, MaxJobs: 5, Wait: time.Second})
	stats := runWorker(t, w)

	if stats.Completed != 5 {
		t.Errorf("stats = %+v, want 5 completed", stats)
	}
	if g.most != 2 {
		t.Errorf("at most %d jobs ran at once, want 2", g.most)
	}
	if processingWhileFull != 2 {
		t.Errorf("the queue had %d jobs processing while 2 ran, want 2 (no leases beyond free slots)", processingWhileFull)
	}
}

// A job still running when the grace period ends is stopped and handed back
// at once: another worker leases it long before its lease would expire.
func testWorkerShutdownReleasesJob(t *testing.T, q queuev1.QueueServiceClient) {
	id := enqueue(t, q, "stuck", nil)
	started := make(chan struct{})
	ignoresContext := HandlerFunc(func(ctx context.Context, job *queuev1.Job) (Result, error) {
		close(started)
		time.Sleep(time.Hour) // a handler that ignores ctx must not hold up shutdown
		return Result{}, nil
	})
	var out bytes.Buffer
	w := newWorker(t, q, map[string]Handler{"stuck": ignoresContext}, Config{
		Lease: time.Minute, Wait: time.Second, ShutdownGrace: 100 * time.Millisecond, Out: &out,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Stats, 1)
	go func() {
		stats, err := w.Run(ctx)
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		done <- stats
	}()
	<-started
	cancel() // SIGTERM
	var stats Stats
	select {
	case stats = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("worker did not stop within 10s of a 100ms grace period")
	}
	if stats != (Stats{Released: 1}) {
		t.Errorf("stats = %+v, want 1 released", stats)
	}
	if !strings.Contains(out.String(), "↩ Released: "+shortID(id)+": worker shutting down") {
		t.Errorf("output does not show the release:\n%s", out.String())
	}
	if j := getJob(t, q, id); j.GetStatus() != queuev1.JobStatus_JOB_STATUS_FAILED || j.GetLastError() != "worker shutting down" {
		t.Errorf("job after release: status %q, last error %q", j.GetStatus(), j.GetLastError())
	}

	// The lease was for a minute; the job is back after its retry backoff
	// (50ms in these tests).
	resp, err := q.LeaseJobs(context.Background(), &queuev1.LeaseJobsRequest{
		WorkerId: "second", Types: []string{"stuck"}, WaitMs: 10_000,
	})
	if err != nil || len(resp.GetLeases()) != 1 || resp.GetLeases()[0].GetJob().GetJobId() != id {
		t.Fatalf("second worker leased %v, %v; want the released job", resp.GetLeases(), err)
	}
}

// A job that finishes within the grace period completes normally.
func testWorkerShutdownLetsJobFinish(t *testing.T, q queuev1.QueueServiceClient) {
	id := enqueue(t, q, "short", nil)
	started, finish := make(chan struct{}), make(chan struct{})
	h := HandlerFunc(func(ctx context.Context, job *queuev1.Job) (Result, error) {
		close(started)
		select {
		case <-finish:
			return Result{}, nil
		case <-ctx.Done():
			return Result{}, context.Cause(ctx)
		}
	})
	w := newWorker(t, q, map[string]Handler{"short": h}, Config{Wait: time.Second, ShutdownGrace: 20 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Stats, 1)
	go func() {
		stats, _ := w.Run(ctx)
		done <- stats
	}()
	<-started
	cancel()
	time.Sleep(50 * time.Millisecond) // the worker is draining now
	close(finish)
	if stats := <-done; stats != (Stats{Completed: 1}) {
		t.Errorf("stats = %+v, want 1 completed", stats)
	}
	if j := getJob(t, q, id); j.GetStatus() != queuev1.JobStatus_JOB_STATUS_COMPLETED {
		t.Errorf("job status %q, want completed", j.GetStatus())
	}
}

// A job cancelled while it runs: the heartbeat learns it, the handler's
// context ends, and the worker does not complete the job.
func testWorkerStopsCancelledJob(t *testing.T, q queuev1.QueueServiceClient) {
	id := enqueue(t, q, "long", nil)
	started := make(chan struct{})
	var sawCause atomic.Value
	h := HandlerFunc(func(ctx context.Context, job *queuev1.Job) (Result, error) {
		close(started)
		select {
		case <-ctx.Done():
			sawCause.Store(context.Cause(ctx))
			// Claim success: the worker must still not complete the job.
			return Result{}, nil
		case <-time.After(20 * time.Second):
			return Result{}, errors.New("handler was never stopped")
		}
	})
	var out bytes.Buffer
	w := newWorker(t, q, map[string]Handler{"long": h}, Config{MaxJobs: 1, Lease: 3 * time.Second, Wait: time.Second, Out: &out})
	done := make(chan Stats, 1)
	go func() {
		stats, err := w.Run(context.Background())
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		done <- stats
	}()
	<-started
	if _, err := q.CancelJob(context.Background(), &queuev1.CancelJobRequest{JobId: id}); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	stats := <-done
	if stats != (Stats{Abandoned: 1}) {
		t.Errorf("stats = %+v, want 1 abandoned", stats)
	}
	if c, _ := sawCause.Load().(error); !errors.Is(c, errJobCancelled) {
		t.Errorf("handler context ended with %v, want %v", c, errJobCancelled)
	}
	if !strings.Contains(out.String(), "✗ Cancelled: "+shortID(id)) {
		t.Errorf("output:\n%s", out.String())
	}
	if st := queueStatus(t, q); st.GetCancelled() != 1 || st.GetCompleted() != 0 {
		t.Errorf("status = %v, want 1 cancelled, 0 completed", st)
	}
}

// Heartbeats keep a job that runs longer than its lease.
func testWorkerHeartbeatsKeepLongJob(t *testing.T, q queuev1.QueueServiceClient) {
	id := enqueue(t, q, "long", nil)
	h := HandlerFunc(func(ctx context.Context, job *queuev1.Job) (Result, error) {
		select {
		case <-time.After(2500 * time.Millisecond): // 2.5 leases
			return Result{}, nil
		case <-ctx.Done():
			return Result{}, context.Cause(ctx)
		}
	})
	w := newWorker(t, q, map[string]Handler{"long": h}, Config{MaxJobs: 1, Lease: time.Second, Wait: time.Second})
	if stats := runWorker(t, w); stats != (Stats{Completed: 1}) {
		t.Errorf("stats = %+v, want 1 completed", stats)
	}
	if j := getJob(t, q, id); j.GetStatus() != queuev1.JobStatus_JOB_STATUS_COMPLETED || j.GetAttempts() != 1 {
		t.Errorf("job status %q after %d attempts, want completed after 1", j.GetStatus(), j.GetAttempts())
	}
}

// dropHeartbeats is a queue client whose heartbeats never arrive.
type dropHeartbeats struct {
	queuev1.QueueServiceClient
}

func (dropHeartbeats) Heartbeat(context.Context, *queuev1.HeartbeatRequest, ...grpc.CallOption) (*queuev1.HeartbeatResponse, error) {
	return nil, status.Error(codes.Unavailable, "network down")
}

// A worker that cannot renew its lease stops the job once the lease has
// run out, since another worker may have it by then; the job is redelivered.
func testWorkerStopsJobWhenLeaseRunsOut(t *testing.T, q queuev1.QueueServiceClient) {
	id := enqueue(t, q, "long", nil)
	var sawCause atomic.Value
	h := HandlerFunc(func(ctx context.Context, job *queuev1.Job) (Result, error) {
		select {
		case <-ctx.Done():
			sawCause.Store(context.Cause(ctx))
			return Result{}, ctx.Err()
		case <-time.After(20 * time.Second):
			return Result{}, errors.New("handler was never stopped")
		}
	})
	var out bytes.Buffer
	w := newWorker(t, dropHeartbeats{q}, map[string]Handler{"long": h}, Config{MaxJobs: 1, Lease: time.Second, Wait: time.Second, Out: &out})
	if stats := runWorker(t, w); stats != (Stats{Abandoned: 1}) {
		t.Errorf("stats = %+v, want 1 abandoned", stats)
	}
	if c, _ := sawCause.Load().(error); !errors.Is(c, errLeaseLost) {
		t.Errorf("handler context ended with %v, want %v", c, errLeaseLost)
	}
	if !strings.Contains(out.String(), "✗ Lease lost: "+shortID(id)) {
		t.Errorf("output:\n%s", out.String())
	}
	resp, err := q.LeaseJobs(context.Background(), &queuev1.LeaseJobsRequest{WorkerId: "second", Types: []string{"long"}, WaitMs: 5000})
	if err != nil || len(resp.GetLeases()) != 1 || resp.GetLeases()[0].GetJob().GetAttempts() != 2 {
		t.Fatalf("redelivery: %v, %v; want the job on its second attempt", resp.GetLeases(), err)
	}
}

// renameType is a queue client that hands out jobs under another type, as a
// queue ignoring the worker's types would.
type renameType struct {
	queuev1.QueueServiceClient
	to string
}

func (r renameType) LeaseJobs(ctx context.Context, in *queuev1.LeaseJobsRequest, opts ...grpc.CallOption) (*queuev1.LeaseJobsResponse, error) {
	resp, err := r.QueueServiceClient.LeaseJobs(ctx, in, opts...)
	for _, l := range resp.GetLeases() {
		l.Job.Type = r.to
	}
	return resp, err
}

// greedyLease is a queue client that asks for one job more than the worker
// did, as a queue ignoring max_jobs would hand out.
type greedyLease struct {
	queuev1.QueueServiceClient
}

func (g greedyLease) LeaseJobs(ctx context.Context, in *queuev1.LeaseJobsRequest, opts ...grpc.CallOption) (*queuev1.LeaseJobsResponse, error) {
	in.MaxJobs++
	return g.QueueServiceClient.LeaseJobs(ctx, in, opts...)
}

// Leases beyond what the worker asked for are handed back, not run beyond
// the concurrency limit nor left to expire.
func testWorkerReleasesSurplus(t *testing.T, q queuev1.QueueServiceClient) {
	enqueue(t, q, "quick", nil)
	enqueue(t, q, "quick", nil)
	var out bytes.Buffer
	w := newWorker(t, greedyLease{q}, map[string]Handler{
		"quick": HandlerFunc(func(context.Context, *queuev1.Job) (Result, error) { return Result{}, nil }),
	}, Config{MaxJobs: 2, Wait: 5 * time.Second, Out: &out})
	if stats := runWorker(t, w); stats != (Stats{Completed: 2, Released: 1}) {
		t.Errorf("stats = %+v, want 2 completed, 1 released\n%s", stats, out.String())
	}
	if st := queueStatus(t, q); st.GetCompleted() != 2 {
		t.Errorf("status = %v, want 2 completed", st)
	}
}

// Failures reach the queue with the right retry decision and are printed.
func testWorkerReportsFailures(t *testing.T, q queuev1.QueueServiceClient) {
	permanent := enqueue(t, q, "permanent", nil)
	flaky := enqueue(t, q, "flaky", nil)
	panics := enqueue(t, q, "panics", nil)
	var out bytes.Buffer
	w := newWorker(t, q, map[string]Handler{
		"permanent": HandlerFunc(func(context.Context, *queuev1.Job) (Result, error) {
			return Result{}, Permanent(errors.New("bad payload"))
		}),
		"flaky": HandlerFunc(func(context.Context, *queuev1.Job) (Result, error) {
			return Result{}, errors.New("upstream timeout")
		}),
		"panics": HandlerFunc(func(context.Context, *queuev1.Job) (Result, error) { panic("boom") }),
	}, Config{MaxJobs: 3, Wait: time.Second, Out: &out})
	if stats := runWorker(t, w); stats != (Stats{Failed: 3}) {
		t.Errorf("stats = %+v, want 3 failed", stats)
	}
	for id, want := range map[string]struct {
		status    queuev1.JobStatus
		lastError string
	}{
		permanent: {queuev1.JobStatus_JOB_STATUS_DEAD, "bad payload"},
		flaky:     {queuev1.JobStatus_JOB_STATUS_FAILED, "upstream timeout"},
		panics:    {queuev1.JobStatus_JOB_STATUS_DEAD, "handler panicked: boom"},
	} {
		if j := getJob(t, q, id); j.GetStatus() != want.status || j.GetLastError() != want.lastError {
			t.Errorf("job %s: %q %q, want %q %q", id, j.GetStatus(), j.GetLastError(), want.status, want.lastError)
		}
		if line := "    ✗ Failed: " + shortID(id) + ": " + want.lastError + "\n"; !strings.Contains(out.String(), line) {
			t.Errorf("output lacks %q:\n%s", line, out.String())
		}
	}
}

// A result the queue refuses (too large) fails the job for good: running it
// again would produce the same.
func testWorkerFailsRefusedResult(t *testing.T, q queuev1.QueueServiceClient) {
	id := enqueue(t, q, "huge", nil)
	w := newWorker(t, q, map[string]Handler{
		"huge": HandlerFunc(func(context.Context, *queuev1.Job) (Result, error) {
			out, err := structpb.NewStruct(map[string]any{"blob": strings.Repeat("x", 300<<10)})
			return Result{Output: out}, err
		}),
	}, Config{MaxJobs: 1, Wait: time.Second})
	if stats := runWorker(t, w); stats != (Stats{Failed: 1}) {
		t.Errorf("stats = %+v, want 1 failed", stats)
	}
	if j := getJob(t, q, id); j.GetStatus() != queuev1.JobStatus_JOB_STATUS_DEAD || !strings.Contains(j.GetLastError(), "result refused by the queue") {
		t.Errorf("job: %q %q, want dead with the refusal", j.GetStatus(), j.GetLastError())
	}
}

// A job of a type without a handler fails for good rather than waiting for
// its lease to expire, again and again.
func testWorkerFailsUnknownType(t *testing.T, q queuev1.QueueServiceClient) {
	id := enqueue(t, q, "known", nil)
	w := newWorker(t, renameType{q, "mystery"}, map[string]Handler{
		"known": HandlerFunc(func(context.Context, *queuev1.Job) (Result, error) { return Result{}, nil }),
	}, Config{MaxJobs: 1, Wait: time.Second})
	if stats := runWorker(t, w); stats != (Stats{Failed: 1}) {
		t.Errorf("stats = %+v, want 1 failed", stats)
	}
	if j := getJob(t, q, id); j.GetStatus() != queuev1.JobStatus_JOB_STATUS_DEAD || !strings.Contains(j.GetLastError(), `no handler for job type "mystery"`) {
		t.Errorf("job: %q %q, want dead for want of a handler", j.GetStatus(), j.GetLastError())
	}
}

// The worker's reason constants match the queue's.
func TestReasonsMatchQueue(t *testing.T) {
	t.Parallel()
	for got, want := range map[string]string{
		reasonLeaseLost:    domain.ReasonLeaseLost,
		reasonJobCancelled: domain.ReasonJobCancelled,
		reasonJobFinished:  domain.ReasonJobFinished,
		reasonJobNotFound:  domain.ReasonJobNotFound,
	} {
		if got != want {
			t.Errorf("reason %q, queue says %q", got, want)
		}
	}
	if err := leaseGone(status.Error(codes.Unavailable, "down")); err != nil {
		t.Errorf("leaseGone(Unavailable) = %v, want nil", err)
	}
}

// The worker's reading of the queue's refusals matches what the real queue
// answers.
func testLeaseGone(t *testing.T, q queuev1.QueueServiceClient) {
	ctx := context.Background()
	enqueue(t, q, "t", nil)
	resp, err := q.LeaseJobs(ctx, &queuev1.LeaseJobsRequest{WorkerId: "w", Types: []string{"t"}})
	if err != nil || len(resp.GetLeases()) != 1 {
		t.Fatalf("lease: %v %v", resp, err)
	}
	l := resp.GetLeases()[0]
	_, err = q.Heartbeat(ctx, &queuev1.HeartbeatRequest{JobId: l.GetJob().GetJobId(), WorkerId: "w", LeaseToken: l.GetLeaseToken() + 1})
	if !errors.Is(leaseGone(err), errLeaseLost) {
		t.Errorf("stale token: leaseGone(%v) = %v, want lease lost", err, leaseGone(err))
	}
	if _, err := q.CancelJob(ctx, &queuev1.CancelJobRequest{JobId: l.GetJob().GetJobId()}); err != nil {
		t.Fatal(err)
	}
	_, err = q.CompleteJob(ctx, &queuev1.CompleteJobRequest{JobId: l.GetJob().GetJobId(), WorkerId: "w", LeaseToken: l.GetLeaseToken()})
	if !errors.Is(leaseGone(err), errJobCancelled) {
		t.Errorf("cancelled job: leaseGone(%v) = %v, want cancelled", err, leaseGone(err))
	}
}

func TestNewChecksConfig(t *testing.T) {
	t.Parallel()
	h := map[string]Handler{"a": HandlerFunc(func(context.Context, *queuev1.Job) (Result, error) { return Result{}, nil })}
	for name, cfg := range map[string]Config{
		"no worker id":     {},
		"unknown type":     {WorkerID: "w", Types: []string{"b"}},
		"short lease":      {WorkerID: "w", Lease: 500 * time.Millisecond},
		"huge batch":       {WorkerID: "w", Batch: 101},
		"long wait":        {WorkerID: "w", Wait: time.Minute},
		"negative jobs":    {WorkerID: "w", MaxJobs: -1},
		"huge concurrency": {WorkerID: "w", Concurrency: 10001},
	} {
		if _, err := New(nil, h, cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
	if _, err := New(nil, nil, Config{WorkerID: "w"}); err == nil {
		t.Error("New accepted no handlers")
	}
}
