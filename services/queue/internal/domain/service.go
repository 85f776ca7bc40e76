// Package domain is the queue service's business logic: job validation,
// priorities, leases with fencing tokens, retries and long-polling. It knows
// nothing of gRPC or SQL.
package domain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/page"
)

// Domain is the ErrorInfo domain of this service's errors.
const Domain = "queue.echopilot"

// DefaultPoll is how often a long-polling lease looks again without being
// woken: it is what picks up delayed and retried jobs as they become due.
const DefaultPoll = 200 * time.Millisecond

// Config tunes a Service. The zero value is usable.
type Config struct {
	// Backoff spaces retries (zero: DefaultBackoffBase, DefaultBackoffCap).
	Backoff Backoff
	// Poll is the long-poll re-check period (0: DefaultPoll).
	Poll time.Duration
	// WorkerStaleAfter is how long a worker may go unheard before it is
	// listed as stale (0: DefaultWorkerStaleAfter).
	WorkerStaleAfter time.Duration
	// MaxWorkers is how many workers a tenant may have registered (0:
	// DefaultMaxWorkers).
	MaxWorkers int
	// Hooks hear of what happened, for metrics and wake-ups.
	Hooks Hooks
}

// Hooks are called after the events they name have committed; nil ones are
// skipped. Every service's domain takes its metrics and wake-ups this way.
type Hooks struct {
	// Completed: a job's completion was committed (the outbox relay's Kick
	// goes here, so the usage event leaves at once).
	Completed func()
	// LeasesExpired: n leases ran out and their jobs were released.
	LeasesExpired func(n int)
	// WorkerLimitReached: a new worker was not registered because its
	// tenant has MaxWorkers registered already (its calls still work).
	WorkerLimitReached func()
	// Leased: a job was handed to a worker after waiting this long since
	// it became runnable (its run_at: a delayed or retried job waits from
	// when it came due).
	Leased func(j Job, waited time.Duration)
	// Finished: an attempt ended by its worker (completed, failed or
	// dead) after running this long since its lease.
	Finished func(j Job, ran time.Duration)
}

func (h Hooks) leased(now time.Time, ls []Lease) {
	if h.Leased == nil {
		return
	}
	for _, l := range ls {
		h.Leased(l.Job, max(0, now.Sub(l.Job.RunAt)))
	}
}

func (h Hooks) finished(now time.Time, j Job) {
	if h.Finished != nil && !j.AttemptStartedAt.IsZero() {
		h.Finished(j, max(0, now.Sub(j.AttemptStartedAt)))
	}
}

func (h Hooks) completed() {
	if h.Completed != nil {
		h.Completed()
	}
}

func (h Hooks) workerLimitReached() {
	if h.WorkerLimitReached != nil {
		h.WorkerLimitReached()
	}
}

func (h Hooks) leasesExpired(n int) {
	if h.LeasesExpired != nil && n > 0 {
		h.LeasesExpired(n)
	}
}

// Service implements the queue use cases.
type Service struct {
	store Store
	wake  *Wakeups
	cfg   Config
	now   func() time.Time
	// throttle spaces the registry's writes of each worker.
	throttle *workerThrottle
}

// NewService returns a Service on st. wake is shared with whatever else
// learns of new jobs (the PostgreSQL listener of other replicas' enqueues).
func NewService(st Store, wake *Wakeups, cfg Config) *Service {
	if cfg.Backoff == (Backoff{}) {
		cfg.Backoff = Backoff{Base: DefaultBackoffBase, Cap: DefaultBackoffCap}
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.WorkerStaleAfter <= 0 {
		cfg.WorkerStaleAfter = DefaultWorkerStaleAfter
	}
	if cfg.MaxWorkers <= 0 {
		cfg.MaxWorkers = DefaultMaxWorkers
	}
	return &Service{
		store: st, wake: wake, cfg: cfg, now: func() time.Time { return time.Now().UTC() },
		// A third of the stale threshold at most, so a worker that keeps
		// calling is never listed as stale for want of a write.
		throttle: &workerThrottle{every: min(maxAnnounceEvery, cfg.WorkerStaleAfter/3), written: map[string]throttled{}},
	}
}

// Enqueue adds a job to tenant's queue, or returns the job enqueued before
// with the same idempotency key (duplicate=true).
func (s *Service) Enqueue(ctx context.Context, tenant string, r EnqueueRequest) (Job, bool, error) {
	now := s.now()
	nj, err := r.Validate(tenant, now)
	if err != nil {
		return Job{}, false, err
	}
	nj.ID = ulid.Make().String()
	j, dup, err := s.store.Enqueue(ctx, nj)
	if err != nil {
		return Job{}, false, fmt.Errorf("enqueue: %w", err)
	}
	if !dup && !j.RunAt.After(now) {
		s.wake.Notify(tenant)
	}
	return j, dup, nil
}

// EnqueueResult is one job of an EnqueueBatch, in the request's order.
type EnqueueResult struct {
	Job       Job
	Duplicate bool
}

// EnqueueBatch adds rs as Enqueue would, in one transaction: all of them
// or none. Every job is validated before anything is written; the error
// of an invalid one names its index.
func (s *Service) EnqueueBatch(ctx context.Context, tenant string, rs []EnqueueRequest) ([]EnqueueResult, error) {
	if len(rs) == 0 || len(rs) > MaxEnqueueBatch {
		return nil, invalid(ReasonEnqueueBatchSizeInvalid, "%d jobs: want 1 to %d", len(rs), MaxEnqueueBatch)
	}
	now := s.now()
	njs := make([]NewJob, len(rs))
	for i, r := range rs {
		nj, err := r.Validate(tenant, now)
		if err != nil {
			return nil, atIndex(err, i)
		}
		nj.ID = ulid.Make().String()
		njs[i] = nj
	}
	js, dups, err := s.store.EnqueueBatch(ctx, njs)
	if err != nil {
		return nil, fmt.Errorf("enqueue batch: %w", err)
	}
	res := make([]EnqueueResult, len(js))
	runnable := false
	for i, j := range js {
		res[i] = EnqueueResult{Job: j, Duplicate: dups[i]}
		runnable = runnable || (!dups[i] && !j.RunAt.After(now))
	}
	if runnable {
		s.wake.Notify(tenant)
	}
	return res, nil
}

// atIndex says which job of a batch a validation error is about.
func atIndex(err error, i int) error {
	e, ok := apierr.As(err)
	if !ok {
		return err
	}
	c := *e
	c.Message = fmt.Sprintf("jobs[%d]: %s", i, e.Message)
	return c.With("index", strconv.Itoa(i))
}

// Get returns one job of tenant.
func (s *Service) Get(ctx context.Context, tenant, id string) (Job, error) {
	if err := checkJobID(id); err != nil {
		return Job{}, err
	}
	j, err := s.store.Get(ctx, tenant, id)
	if errors.Is(err, ErrNotFound) {
		return Job{}, errJobNotFound(id)
	}
	if err != nil {
		return Job{}, fmt.Errorf("get job: %w", err)
	}
	return j, nil
}

// ListRequest asks for a page of jobs, newest first.
type ListRequest struct {
	PageSize  int32
	PageToken string
	Status    string // "" for any
	Type      string // "" for any
	Priority  string // "" for any
}

// List pages through tenant's jobs.
func (s *Service) List(ctx context.Context, tenant string, r ListRequest) ([]Job, string, error) {
	f := ListFilter{TenantID: tenant, Type: r.Type}
	if r.Status != "" {
		st, ok := ParseStatus(r.Status)
		if !ok {
			return nil, "", invalid(ReasonStatusInvalid,
				"status %q: want queued, processing, completed, failed, dead or cancelled", apierr.Clip(r.Status))
		}
		f.Status = st
	}
	if r.Type != "" {
		if err := checkType(r.Type); err != nil {
			return nil, "", err
		}
	}
	if r.Priority != "" {
		p, ok := ParsePriority(r.Priority)
		if !ok {
			return nil, "", invalid(ReasonPriorityInvalid, "priority %q: want critical, high, normal or low", apierr.Clip(r.Priority))
		}
		f.Priority, f.HasPriority = p, true
	}
	size, err := page.Size(r.PageSize, DefaultListPageSize, MaxListPageSize)
	if err != nil {
		return nil, "", err
	}
	// The token is bound to the filter: a token of one query cannot be
	// replayed against another.
	scope := "jobs/" + string(f.Status) + "/" + f.Type + "/" + r.Priority
	if f.BeforeID, err = page.Decode(r.PageToken, scope); err != nil {
		return nil, "", err
	}
	f.Limit = size + 1
	jobs, err := s.store.List(ctx, f)
	if err != nil {
		return nil, "", fmt.Errorf("list jobs: %w", err)
	}
	jobs, next := page.Trim(jobs, size, func(j Job) string { return j.ID }, scope)
	return jobs, next, nil
}

// QueueStatus is a tenant's exact job counts.
type QueueStatus struct {
	Total      int64
	ByStatus   map[Status]int64
	ByType     map[string]int64
	ByPriority map[Priority]int64
	// PausedTypes are the tenant's paused job types, by type.
	PausedTypes []PausedType
}

// QueueStatus counts tenant's jobs. Every status and priority is present,
// with 0 when it has no jobs.
func (s *Service) QueueStatus(ctx context.Context, tenant string) (QueueStatus, error) {
	counts, err := s.store.Counts(ctx, tenant)
	if err != nil {
		return QueueStatus{}, fmt.Errorf("queue status: %w", err)
	}
	st := QueueStatus{ByStatus: map[Status]int64{}, ByType: map[string]int64{}, ByPriority: map[Priority]int64{}}
	for _, status := range Statuses() {
		st.ByStatus[status] = 0
	}
	for _, p := range Priorities() {
		st.ByPriority[p] = 0
	}
	if st.PausedTypes, err = s.store.ListPausedTypes(ctx, tenant, "", MaxPausedTypes); err != nil {
		return QueueStatus{}, fmt.Errorf("queue status: %w", err)
	}
	for _, c := range counts {
		st.Total += c.N
		st.ByStatus[c.Status] += c.N
		st.ByType[c.Type] += c.N
		st.ByPriority[c.Priority] += c.N
	}
	return st, nil
}

// Lease hands up to r.MaxJobs of tenant's runnable jobs to a worker. When
// none is ready it waits up to r.WaitMS for one: woken at once by an enqueue
// (in this process, or another replica's through the store's
// notifications), and looking again every Poll for delayed jobs coming due.
// It answers with no leases when the wait ends or the service stops.
func (s *Service) Lease(ctx context.Context, tenant string, r LeaseRequest) ([]Lease, error) {
	_, leases, err := s.LeaseAfter(ctx, tenant, r, nil)
	return leases, err
}

// LeaseAfter is Lease for a worker that first reports the jobs it has
// finished: the completions (as CompleteMany) and the first look for jobs
// share one transaction, so a worker's steady state is one call and one
// transaction per batch. The completions are refused with the call when
// the lease request is invalid.
func (s *Service) LeaseAfter(ctx context.Context, tenant string, r LeaseRequest, done []CompleteRequest) ([]Completed, []Lease, error) {
	p, err := r.validate()
	if err != nil {
		return nil, nil, err
	}
	if len(done) > MaxCompleteBatch {
		return nil, nil, errCompleteBatch(len(done))
	}
	if err := s.announce(ctx, tenant, r.WorkerID, p.info); err != nil {
		return nil, nil, err
	}
	p.claim.TenantID = tenant
	deadline := time.Now().Add(p.wait)
	var completed []Completed
	for {
		// Subscribe before looking, so an enqueue that commits after the
		// look still wakes this call.
		woken, unsubscribe := s.wake.subscribe(tenant)
		var leases []Lease
		var err error
		if completed == nil && len(done) > 0 {
			completed, leases, err = s.completeThen(ctx, tenant, done, &p.claim)
		} else {
			leases, err = s.claim(ctx, p.claim)
		}
		left := time.Until(deadline)
		if err != nil || len(leases) > 0 || left <= 0 {
			unsubscribe()
			return completed, leases, err
		}
		timer := time.NewTimer(min(left, s.cfg.Poll))
		select {
		case <-woken:
		case <-timer.C:
		case <-s.wake.Stopped():
			timer.Stop()
			unsubscribe()
			return completed, nil, nil
		case <-ctx.Done():
			timer.Stop()
			unsubscribe()
			return completed, nil, ctx.Err()
		}
		timer.Stop()
		unsubscribe()
	}
}

func (s *Service) claim(ctx context.Context, c Claim) ([]Lease, error) {
	c.Now = s.now()
	leases, expired, err := s.store.Claim(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("lease jobs: %w", err)
	}
	s.cfg.Hooks.leasesExpired(expired.Total())
	s.cfg.Hooks.leased(c.Now, leases)
	return leases, nil
}

// HeartbeatRequest extends a lease.
type HeartbeatRequest struct {
	LeaseCall
	// LeaseSeconds is the new lease length from now; 0 means the length
	// the job was leased for.
	LeaseSeconds int32
	// WorkerInfo registers the worker, as on lease calls.
	WorkerInfo WorkerInfo
}

// HeartbeatResult says how long the lease now lasts, or that the job was
// cancelled and its worker should stop.
type HeartbeatResult struct {
	ExpiresAt time.Time
	Cancelled bool
}

// Heartbeat extends a lease. The holder of a cancelled job's lease is told
// Cancelled rather than refused, so it can stop cleanly.
func (s *Service) Heartbeat(ctx context.Context, tenant string, r HeartbeatRequest) (HeartbeatResult, error) {
	ref, err := r.ref(tenant)
	if err != nil {
		return HeartbeatResult{}, err
	}
	if r.LeaseSeconds < 0 || r.LeaseSeconds > MaxLeaseSeconds {
		return HeartbeatResult{}, invalid(ReasonLeaseParamsInvalid, "lease_seconds %d: want 0 to %d", r.LeaseSeconds, MaxLeaseSeconds)
	}
	info, err := r.WorkerInfo.clean()
	if err != nil {
		return HeartbeatResult{}, err
	}
	if err := s.announce(ctx, tenant, ref.WorkerID, info); err != nil {
		return HeartbeatResult{}, err
	}
	j, err := s.store.Heartbeat(ctx, ref, time.Duration(r.LeaseSeconds)*time.Second, s.now())
	switch {
	case errors.Is(err, ErrConflict) && j.Status == StatusCancelled && j.WorkerID == ref.WorkerID && j.LeaseToken == ref.Token:
		return HeartbeatResult{Cancelled: true}, nil
	case err != nil:
		return HeartbeatResult{}, s.leaseError("heartbeat", ref, j, err)
	}
	return HeartbeatResult{ExpiresAt: j.LeaseExpiresAt}, nil
}

// CompleteRequest finishes a leased job.
type CompleteRequest struct {
	LeaseCall
	Result map[string]any // decoded JSON object; nil for none
	Usage  Usage
}

// Complete finishes a leased job and records its usage for finops, in one
// transaction with the outbox event.
func (s *Service) Complete(ctx context.Context, tenant string, r CompleteRequest) (Job, error) {
	out, _, err := s.completeThen(ctx, tenant, []CompleteRequest{r}, nil)
	if err != nil {
		return Job{}, err
	}
	return out[0].Job, out[0].Err
}

// Completed is the outcome of one completion of a batch: the job as
// stored, or the refusal Complete would have returned (an *apierr.Error).
type Completed struct {
	Job Job
	Err error
}

// CompleteMany completes rs as Complete would each, in one transaction;
// each gets its own outcome. It fails as a whole only when the store does.
func (s *Service) CompleteMany(ctx context.Context, tenant string, rs []CompleteRequest) ([]Completed, error) {
	if len(rs) > MaxCompleteBatch {
		return nil, errCompleteBatch(len(rs))
	}
	out, _, err := s.completeThen(ctx, tenant, rs, nil)
	return out, err
}

// completeThen completes rs and then, when then is set, claims in the
// same transaction.
func (s *Service) completeThen(ctx context.Context, tenant string, rs []CompleteRequest, then *Claim) ([]Completed, []Lease, error) {
	now := s.now()
	out := make([]Completed, len(rs))
	var b CompleteBatch
	var at []int // b's completions' indexes in rs
	for i, r := range rs {
		ref, err := r.ref(tenant)
		if err == nil {
			err = checkUsage(r.Usage)
		}
		var result json.RawMessage
		if err == nil {
			result, err = encodeObject(r.Result, MaxResultBytes, ReasonResultTooLarge, ReasonResultInvalid, "result")
		}
		if err != nil {
			out[i].Err = err
			continue
		}
		b.Refs = append(b.Refs, ref)
		b.Completions = append(b.Completions, Completion{Result: result, Usage: r.Usage, Now: now})
		at = append(at, i)
	}
	if then != nil {
		c := *then
		c.Now = now
		b.Then = &c
	}
	if len(b.Refs) == 0 && b.Then == nil {
		return out, nil, nil
	}
	res, err := s.store.CompleteBatch(ctx, b)
	var failed []error
	for k, i := range at {
		if cerr := res.Errs[k]; cerr != nil {
			out[i].Err = s.leaseError("complete", b.Refs[k], res.Jobs[k], cerr)
			if _, ok := apierr.As(out[i].Err); !ok {
				failed = append(failed, out[i].Err)
			}
			continue
		}
		out[i].Job = res.Jobs[k]
		s.cfg.Hooks.completed()
		s.cfg.Hooks.finished(now, res.Jobs[k])
	}
	if err != nil {
		return nil, nil, fmt.Errorf("complete jobs: %w", err)
	}
	if len(failed) > 0 {
		return nil, nil, errors.Join(failed...)
	}
	s.cfg.Hooks.leasesExpired(res.Expiry.Total())
	s.cfg.Hooks.leased(now, res.Leases)
	return out, res.Leases, nil
}

func errCompleteBatch(n int) error {
	return invalid(ReasonBatchTooLarge, "at most %d completions per call, got %d", MaxCompleteBatch, n)
}

// FailRequest reports a failed attempt.
type FailRequest struct {
	LeaseCall
	Error     string
	Retryable bool
}

// Fail ends an attempt: a retryable failure waits in failed for its backoff
// and is retried until the job has used max_attempts; otherwise it is dead.
func (s *Service) Fail(ctx context.Context, tenant string, r FailRequest) (Job, error) {
	ref, err := r.ref(tenant)
	if err != nil {
		return Job{}, err
	}
	msg := clipError(r.Error)
	now := s.now()
	j, err := s.store.Fail(ctx, ref, func(j Job) Retry {
		if !r.Retryable || j.Attempts >= j.MaxAttempts {
			return Retry{Dead: true, Error: msg, Now: now}
		}
		return Retry{RunAt: now.Add(s.cfg.Backoff.Delay(j.Attempts)), Error: msg, Now: now}
	})
	if err != nil {
		return Job{}, s.leaseError("fail", ref, j, err)
	}
	s.cfg.Hooks.finished(now, j)
	return j, nil
}

// leaseError translates a store error of a lease operation.
func (s *Service) leaseError(op string, ref LeaseRef, current Job, err error) error {
	switch {
	case errors.Is(err, ErrNotFound):
		return errJobNotFound(ref.JobID)
	case errors.Is(err, ErrConflict) && current.Status == StatusCancelled:
		return apierr.FailedPrecondition(ReasonJobCancelled, "job %s was cancelled", ref.JobID).InDomain(Domain)
	case errors.Is(err, ErrConflict):
		return apierr.FailedPrecondition(ReasonLeaseLost,
			"job %s is not leased to worker %q under token %d (it is %s)", ref.JobID, ref.WorkerID, ref.Token, current.Status,
		).InDomain(Domain)
	}
	return fmt.Errorf("%s job: %w", op, err)
}

// ReapExpiredLeases returns jobs whose leases ran out to their queues (or
// makes them dead when out of attempts), tenant by tenant, and wakes the
// tenants' waiting workers. Lease calls do the same for their own tenant,
// so this only bounds how long an expired job of an idle tenant sits.
func (s *Service) ReapExpiredLeases(ctx context.Context) (int, error) {
	now := s.now()
	tenants, err := s.store.TenantsWithExpiredLeases(ctx, now)
	if err != nil {
		return 0, fmt.Errorf("reap leases: %w", err)
	}
	total := 0
	for _, tenant := range tenants {
		e, err := s.store.ExpireLeases(ctx, tenant, now)
		if err != nil {
			return total, fmt.Errorf("reap leases of %q: %w", tenant, err)
		}
		s.cfg.Hooks.leasesExpired(e.Total())
		total += e.Total()
		if e.Requeued > 0 {
			s.wake.Notify(tenant)
		}
	}
	return total, nil
}

// Prune deletes finished jobs last changed more than retention ago.
func (s *Service) Prune(ctx context.Context, retention time.Duration) (int64, error) {
	n, err := s.store.DeleteFinished(ctx, s.now().Add(-retention))
	if err != nil {
		return n, fmt.Errorf("prune jobs: %w", err)
	}
	return n, nil
}

// OldestWaiting returns how long the oldest due queued job of each
// priority has waited (absent or 0: none is due), for metrics.
func (s *Service) OldestWaiting(ctx context.Context) (map[Priority]time.Duration, error) {
	oldest, err := s.store.OldestQueued(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	ages := make(map[Priority]time.Duration, len(oldest))
	for p, at := range oldest {
		ages[p] = max(0, now.Sub(at))
	}
	return ages, nil
}

// Depth counts unfinished jobs of all tenants, for metrics.
func (s *Service) Depth(ctx context.Context) ([]Depth, error) {
	d, err := s.store.Depth(ctx)
	if err != nil {
		return nil, fmt.Errorf("queue depth: %w", err)
	}
	return d, nil
}

func errJobNotFound(id string) error {
	return apierr.NotFound(ReasonJobNotFound, "job %q not found", apierr.Clip(id)).InDomain(Domain)
}
