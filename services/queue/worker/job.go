package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
)

// Causes that stop a running job.
var (
	errJobCancelled = errors.New("job cancelled")
	errLeaseLost    = errors.New("lease lost")
)

// outcome is what a handler returned.
type outcome struct {
	res Result
	err error
}

// runJob runs one leased job to its end: the handler under heartbeats, then
// the outcome reported to the queue. jobCtx ends when the shutdown grace
// period does.
func (w *Worker) runJob(jobCtx context.Context, l *queuev1.Lease) {
	job := l.GetJob()
	id := shortID(job.GetJobId())
	log := w.log.With(zap.String("job_id", job.GetJobId()), zap.String("type", job.GetType()),
		zap.String("tenant_id", job.GetTenantId()), zap.Int64("lease_token", l.GetLeaseToken()))
	w.out.printf("  Processing job %s (%s)...\n", id, job.GetType())
	log.Debug("job started", zap.Int32("attempt", job.GetAttempts()))

	h := w.handlers[job.GetType()]
	if h == nil {
		// The lease call names only our types; guard against a queue that
		// disagrees rather than leave the job stuck until its lease expires.
		w.fail(jobCtx, l, fmt.Errorf("no handler for job type %q", job.GetType()), false)
		return
	}

	start := time.Now()
	o, cause := w.supervise(jobCtx, l, h, log)
	log.Debug("handler returned", zap.Duration("took", time.Since(start)), zap.Error(o.err), zap.NamedError("stopped_by", cause))

	switch {
	case errors.Is(cause, errJobCancelled):
		// The queue refuses an outcome for a cancelled job; nothing to report.
		w.count(func(s *Stats) { s.Abandoned++ })
		w.out.printf("    ✗ Cancelled: %s\n", id)
	case errors.Is(cause, errLeaseLost):
		// Another worker may own the job now; the queue would refuse us.
		w.count(func(s *Stats) { s.Abandoned++ })
		w.out.printf("    ✗ Lease lost: %s: %v\n", id, cause)
	case o.err == nil:
		if o.res.Usage == nil {
			o.res.Usage = &queuev1.Usage{}
		}
		if o.res.Usage.GetDurationMs() == 0 {
			o.res.Usage.DurationMs = time.Since(start).Milliseconds()
		}
		w.complete(jobCtx, l, o.res, log)
	case errors.Is(cause, errShutdown):
		w.release(jobCtx, l, errShutdown)
	default:
		w.fail(jobCtx, l, o.err, IsRetryable(o.err))
	}
}

// supervise runs h on a leased job while heartbeats keep the lease, and
// returns what h returned and why its context ended, if it did. Once the
// grace period is over (jobCtx ends) it returns errShutdown at once rather
// than wait for a handler that ignores its context: the job should go back
// to the queue now, not when its lease expires.
func (w *Worker) supervise(jobCtx context.Context, l *queuev1.Lease, h Handler, log *zap.Logger) (outcome, error) {
	runCtx, stop := context.WithCancelCause(jobCtx)
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		w.heartbeat(runCtx, stop, l, log)
	}()
	// No heartbeat may race the report of the outcome.
	defer func() {
		stop(nil)
		<-hbDone
	}()

	done := make(chan outcome, 1)
	go func() { done <- w.call(runCtx, h, l.GetJob()) }()
	select {
	case o := <-done:
		return o, context.Cause(runCtx)
	case <-jobCtx.Done():
		return outcome{err: errShutdown}, errShutdown
	}
}

// call runs h, turning a panic into a permanent failure: a job that crashes
// the handler would crash it again on every worker that takes it.
func (w *Worker) call(ctx context.Context, h Handler, job *queuev1.Job) (o outcome) {
	defer func() {
		if r := recover(); r != nil {
			w.log.Error("handler panicked", zap.String("job_id", job.GetJobId()), zap.Any("panic", r), zap.StackSkip("stack", 1))
			o = outcome{err: Permanent(fmt.Errorf("handler panicked: %v", r))}
		}
	}()
	res, err := h.Run(ctx, job)
	return outcome{res: res, err: err}
}

// heartbeat renews the lease every Lease/3 until ctx ends. It stops the job
// (through stop) when the queue says the job was cancelled or the lease is
// no longer ours, or when the lease has expired without a renewal.
func (w *Worker) heartbeat(ctx context.Context, stop context.CancelCauseFunc, l *queuev1.Lease, log *zap.Logger) {
	job := l.GetJob()
	every := w.cfg.Lease / 3
	// Judged by our own clock, which may differ from the queue's.
	expires := time.Now().Add(w.cfg.Lease)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		hctx, cancel := context.WithTimeout(ctx, min(every, rpcTimeout))
		resp, err := w.queue.Heartbeat(hctx, &queuev1.HeartbeatRequest{
			JobId:        job.GetJobId(),
			WorkerId:     w.cfg.WorkerID,
			LeaseToken:   l.GetLeaseToken(),
			LeaseSeconds: int32(w.cfg.Lease / time.Second),
			WorkerInfo:   w.info,
		})
		cancel()
		gone := leaseGone(err)
		switch {
		case ctx.Err() != nil:
			return
		case err == nil && resp.GetCancelled():
			stop(errJobCancelled)
			return
		case err == nil:
			expires = time.Now().Add(w.cfg.Lease)
		case gone != nil:
			stop(gone)
			return
		case time.Now().After(expires):
			// Unrenewed, the lease may already be another worker's.
			stop(fmt.Errorf("%w: expired at %s without a renewal: %v", errLeaseLost, expires.Format(time.RFC3339), err))
			return
		default:
			log.Warn("heartbeat failed; retrying", zap.Error(err))
		}
	}
}

// complete reports a finished job.
func (w *Worker) complete(ctx context.Context, l *queuev1.Lease, res Result, log *zap.Logger) {
	id := shortID(l.GetJob().GetJobId())
	err := retryRPC(ctx, func(ctx context.Context) error {
		_, err := w.queue.CompleteJob(ctx, &queuev1.CompleteJobRequest{
			JobId:      l.GetJob().GetJobId(),
			WorkerId:   w.cfg.WorkerID,
			LeaseToken: l.GetLeaseToken(),
			Result:     res.Output,
			Usage:      res.Usage,
		})
		return err
	})
	switch {
	case err == nil:
		w.count(func(s *Stats) { s.Completed++ })
		w.out.printf("    ✓ Completed: %s\n", id)
	case errors.Is(leaseGone(err), errJobCancelled):
		w.count(func(s *Stats) { s.Abandoned++ })
		w.out.printf("    ✗ Cancelled: %s\n", id)
	case status.Code(err) == codes.InvalidArgument:
		// The queue refuses this result (too large, malformed): running the
		// job again would produce the same, so fail it for good.
		w.fail(ctx, l, fmt.Errorf("result refused by the queue: %w", err), false)
	default:
		// Lease lost, or the queue unreachable: the job returns to the queue
		// when its lease expires and runs again.
		log.Warn("completion not accepted", zap.Error(err))
		w.count(func(s *Stats) { s.Abandoned++ })
		w.out.printf("    ✗ Failed: %s: completion not accepted: %v\n", id, err)
	}
}

// fail reports a failed attempt; the queue retries it when retryable.
func (w *Worker) fail(ctx context.Context, l *queuev1.Lease, jobErr error, retryable bool) {
	id := shortID(l.GetJob().GetJobId())
	if err := w.sendFailure(ctx, l, jobErr, retryable); err != nil {
		w.count(func(s *Stats) { s.Abandoned++ })
		w.out.printf("    ✗ Failed: %s: %v (not reported: %v)\n", id, jobErr, err)
		return
	}
	w.count(func(s *Stats) { s.Failed++ })
	w.out.printf("    ✗ Failed: %s: %v\n", id, jobErr)
}

// release hands an unfinished job back as a retryable failure, so that it can
// be leased again at once instead of when its lease expires.
func (w *Worker) release(ctx context.Context, l *queuev1.Lease, why error) {
	id := shortID(l.GetJob().GetJobId())
	if err := w.sendFailure(ctx, l, why, true); err != nil {
		w.count(func(s *Stats) { s.Abandoned++ })
		w.out.printf("    ✗ Not released: %s: %v (the job returns when its lease expires)\n", id, err)
		return
	}
	w.count(func(s *Stats) { s.Released++ })
	w.out.printf("    ↩ Released: %s: %v\n", id, why)
}

func (w *Worker) sendFailure(ctx context.Context, l *queuev1.Lease, jobErr error, retryable bool) error {
	err := retryRPC(ctx, func(ctx context.Context) error {
		_, err := w.queue.FailJob(ctx, &queuev1.FailJobRequest{
			JobId:      l.GetJob().GetJobId(),
			WorkerId:   w.cfg.WorkerID,
			LeaseToken: l.GetLeaseToken(),
			Error:      jobErr.Error(),
			Retryable:  retryable,
		})
		return err
	})
	if err != nil {
		w.log.Warn("failure not accepted", zap.String("job_id", l.GetJob().GetJobId()),
			zap.NamedError("job_error", jobErr), zap.Error(err))
	}
	return err
}

// retryRPC calls fn up to reportAttempts times while it fails in a way that
// may pass. Each try gets its own deadline; ctx only carries values, since
// reports must go out during shutdown too.
func retryRPC(ctx context.Context, fn func(context.Context) error) error {
	ctx = context.WithoutCancel(ctx)
	var err error
	for attempt := range reportAttempts {
		if attempt > 0 {
			time.Sleep(reportBackoff.Delay(attempt))
		}
		cctx, cancel := context.WithTimeout(ctx, rpcTimeout)
		err = fn(cctx)
		cancel()
		if err == nil || !transientCode(err) {
			return err
		}
	}
	return err
}

// shortID is the job id as the progress lines show it.
// shortID shows the last 8 characters of a ULID: its random part (the first
// ones are a timestamp, alike for jobs enqueued together).
func shortID(id string) string {
	if len(id) > 8 {
		return id[len(id)-8:]
	}
	return id
}
