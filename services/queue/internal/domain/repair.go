package domain

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/page"
)

// Operator repairs: retry, delete, bulk changes by filter, paused job types
// and each job's attempt history. The queue publishes no audit events, so
// the caller of a change is stored with it instead: retried_by and
// cancelled_by on the job, paused_by on the paused type. A deleted job
// leaves no row to name its deleter; the access log records the call.

// Limits of the repair API.
const (
	// DefaultBulkLimit and MaxBulkLimit bound the jobs one bulk call
	// changes, in one transaction.
	DefaultBulkLimit = 1000
	MaxBulkLimit     = 1000
	// MaxPausedTypes bounds the job types a tenant may have paused: every
	// lease call reads them.
	MaxPausedTypes = 256
	// anonymous is the actor recorded for a caller without a subject (an
	// unverified caller in auth=optional mode).
	anonymous = "anonymous"
)

// Reasons of the repair API.
const (
	ReasonJobNotRetryable     = "JOB_NOT_RETRYABLE"
	ReasonJobNotFinished      = "JOB_NOT_FINISHED"
	ReasonBulkActionInvalid   = "BULK_ACTION_INVALID"
	ReasonBulkLimitInvalid    = "BULK_LIMIT_INVALID"
	ReasonCreatedRangeInvalid = "CREATED_RANGE_INVALID"
	ReasonPausedTypesLimit    = "PAUSED_TYPES_LIMIT"
)

// Action is a change an operator applies to jobs.
type Action string

// The actions.
const (
	ActionCancel Action = "cancel"
	ActionRetry  Action = "retry"
	ActionDelete Action = "delete"
)

// Statuses returns the statuses a applies to: cancel ends jobs that are not
// finished; retry requeues jobs that will not run again by themselves (or
// not before their backoff); delete removes jobs no worker holds.
func (a Action) Statuses() []Status {
	switch a {
	case ActionCancel:
		return []Status{StatusQueued, StatusFailed, StatusProcessing}
	case ActionRetry:
		return []Status{StatusDead, StatusFailed, StatusCancelled}
	case ActionDelete:
		return []Status{StatusCompleted, StatusDead, StatusFailed, StatusCancelled}
	}
	return nil
}

// JobFilter selects a tenant's jobs for a bulk change.
type JobFilter struct {
	// Statuses the job is in; never empty once validated (the action's
	// statuses, intersected with the caller's).
	Statuses []Status
	Type     string // "" for any
	// Priority, when HasPriority.
	Priority    Priority
	HasPriority bool
	// CreatedAfter (inclusive) and CreatedBefore (exclusive); zero for open.
	CreatedAfter  time.Time
	CreatedBefore time.Time
}

// Repair is one change for the store: to one job (JobID) or to up to Limit
// jobs matching Filter.
type Repair struct {
	TenantID string
	Action   Action
	// JobID names one job: the store answers ErrNotFound, or ErrConflict
	// with the job when its status is not among Action's.
	JobID  string
	Filter JobFilter
	Limit  int
	// DryRun counts the matching jobs and changes nothing.
	DryRun bool
	// Actor is recorded on the job (retried_by, cancelled_by).
	Actor string
	Now   time.Time
}

// RepairResult is what a Repair did.
type RepairResult struct {
	// Matched counts the jobs the filter matched before the change.
	Matched int64
	// Affected counts the jobs changed.
	Affected int64
	// Job is the one job of a JobID repair: as it is now, or as it was
	// when deleted.
	Job Job
}

// JobCall names one job and the caller acting on it.
type JobCall struct {
	JobID string
	// Actor is the caller's subject, recorded with the change.
	Actor string
}

// actor is the name recorded for a caller's subject.
func actor(subject string) string {
	if subject == "" {
		return anonymous
	}
	return subject
}

// repairOne applies action to one job of tenant and translates the outcome;
// refused names the reason of a job in another status.
func (s *Service) repairOne(ctx context.Context, tenant string, c JobCall, action Action, refused func(Job) error) (Job, error) {
	if err := checkJobID(c.JobID); err != nil {
		return Job{}, err
	}
	res, err := s.store.Repair(ctx, Repair{TenantID: tenant, Action: action, JobID: c.JobID, Limit: 1, Actor: actor(c.Actor), Now: s.now()})
	switch {
	case errors.Is(err, ErrNotFound):
		return Job{}, errJobNotFound(c.JobID)
	case errors.Is(err, ErrConflict):
		return res.Job, refused(res.Job)
	case err != nil:
		return Job{}, fmt.Errorf("%s job: %w", action, err)
	}
	if action == ActionRetry {
		s.wake.Notify(tenant)
	}
	return res.Job, nil
}

// Retry puts a dead, failed or cancelled job back in the queue, runnable
// now. Its attempts and their history are kept, so a job that used all
// its attempts gets one more.
func (s *Service) Retry(ctx context.Context, tenant string, c JobCall) (Job, error) {
	return s.repairOne(ctx, tenant, c, ActionRetry, func(j Job) error {
		return apierr.FailedPrecondition(ReasonJobNotRetryable,
			"job %s is %s: only dead, failed or cancelled jobs are retried", j.ID, j.Status).InDomain(Domain)
	})
}

// Delete deletes a job no worker holds (completed, dead, failed or
// cancelled) with its attempts, and returns it as it was.
func (s *Service) Delete(ctx context.Context, tenant string, c JobCall) (Job, error) {
	return s.repairOne(ctx, tenant, c, ActionDelete, func(j Job) error {
		return apierr.FailedPrecondition(ReasonJobNotFinished,
			"job %s is %s: cancel it before deleting it", j.ID, j.Status).InDomain(Domain)
	})
}

// Cancel makes a job cancelled: a queued or failed job never runs again; a
// processing job's worker learns it on its next heartbeat, and its
// completion is refused. Cancelling a cancelled job returns it unchanged.
func (s *Service) Cancel(ctx context.Context, tenant string, c JobCall) (Job, error) {
	return s.repairOne(ctx, tenant, c, ActionCancel, func(j Job) error {
		if j.Status == StatusCancelled {
			return nil
		}
		return apierr.FailedPrecondition(ReasonJobFinished, "job %s is already %s", j.ID, j.Status).InDomain(Domain)
	})
}

// BulkRequest is a bulk change as a client asks for it.
type BulkRequest struct {
	Action string
	// Statuses, Type and Priority are API names ("" for any); statuses
	// outside the action's are left out.
	Statuses      []string
	Type          string
	Priority      string
	CreatedAfter  time.Time
	CreatedBefore time.Time
	DryRun        bool
	// Limit 0 means DefaultBulkLimit.
	Limit int32
	Actor string
}

// BulkResult says what a bulk call matched and changed.
type BulkResult struct {
	Matched   int64
	Affected  int64
	Remaining int64
	DryRun    bool
}

func (r BulkRequest) repair(tenant string, now time.Time) (Repair, error) {
	action := Action(r.Action)
	allowed := action.Statuses()
	if allowed == nil {
		return Repair{}, invalid(ReasonBulkActionInvalid, "action %q: want cancel, retry or delete", apierr.Clip(r.Action))
	}
	f := JobFilter{Type: r.Type, CreatedAfter: r.CreatedAfter, CreatedBefore: r.CreatedBefore}
	if len(r.Statuses) == 0 {
		f.Statuses = allowed
	}
	for _, name := range r.Statuses {
		st, ok := ParseStatus(name)
		if !ok {
			return Repair{}, invalid(ReasonStatusInvalid,
				"status %q: want queued, processing, completed, failed, dead or cancelled", apierr.Clip(name))
		}
		if slices.Contains(allowed, st) && !slices.Contains(f.Statuses, st) {
			f.Statuses = append(f.Statuses, st)
		}
	}
	if r.Type != "" {
		if err := checkType(r.Type); err != nil {
			return Repair{}, err
		}
	}
	if r.Priority != "" {
		p, ok := ParsePriority(r.Priority)
		if !ok {
			return Repair{}, invalid(ReasonPriorityInvalid, "priority %q: want critical, high, normal or low", apierr.Clip(r.Priority))
		}
		f.Priority, f.HasPriority = p, true
	}
	if !f.CreatedAfter.IsZero() && !f.CreatedBefore.IsZero() && !f.CreatedBefore.After(f.CreatedAfter) {
		return Repair{}, invalid(ReasonCreatedRangeInvalid, "created_before must be after created_after")
	}
	limit := int(r.Limit)
	switch {
	case limit == 0:
		limit = DefaultBulkLimit
	case limit < 1 || limit > MaxBulkLimit:
		return Repair{}, invalid(ReasonBulkLimitInvalid, "limit %d: want 1 to %d (0 means %d)", limit, MaxBulkLimit, DefaultBulkLimit)
	}
	return Repair{
		TenantID: tenant, Action: action, Filter: f, Limit: limit, DryRun: r.DryRun,
		Actor: actor(r.Actor), Now: now,
	}, nil
}

// Bulk applies an action to up to r.Limit of tenant's jobs that match the
// filter and the action's statuses, in one transaction, and says how many
// matched, how many changed and how many remain for further calls.
func (s *Service) Bulk(ctx context.Context, tenant string, r BulkRequest) (BulkResult, error) {
	rep, err := r.repair(tenant, s.now())
	if err != nil {
		return BulkResult{}, err
	}
	var res RepairResult
	if len(rep.Filter.Statuses) > 0 {
		if res, err = s.store.Repair(ctx, rep); err != nil {
			return BulkResult{}, fmt.Errorf("bulk %s: %w", rep.Action, err)
		}
	}
	if rep.Action == ActionRetry && res.Affected > 0 {
		s.wake.Notify(tenant)
	}
	return BulkResult{Matched: res.Matched, Affected: res.Affected, Remaining: res.Matched - res.Affected, DryRun: rep.DryRun}, nil
}

// Outcome is how an attempt ended.
type Outcome string

// The outcomes; OutcomeRunning while the attempt's lease holds.
const (
	OutcomeRunning      Outcome = "running"
	OutcomeCompleted    Outcome = "completed"
	OutcomeFailed       Outcome = "failed"
	OutcomeLeaseExpired Outcome = "lease_expired"
	OutcomeCancelled    Outcome = "cancelled"
)

// Attempt is one lease of a job.
type Attempt struct {
	JobID      string
	LeaseToken int64
	// Number is the job's attempt count when the lease started.
	Number    int
	WorkerID  string
	StartedAt time.Time
	EndedAt   time.Time // zero while running
	Outcome   Outcome
	Error     string
}

// AttemptsRequest asks for a page of a job's attempts, oldest first.
type AttemptsRequest struct {
	JobID string
	page.Request
}

// Attempts pages through the attempts of one of tenant's jobs.
func (s *Service) Attempts(ctx context.Context, tenant string, r AttemptsRequest) ([]Attempt, string, error) {
	if err := checkJobID(r.JobID); err != nil {
		return nil, "", err
	}
	size, err := r.Size(DefaultListPageSize, MaxListPageSize)
	if err != nil {
		return nil, "", err
	}
	scope := "attempts/" + r.JobID
	after, err := page.Decode(r.PageToken, scope)
	if err != nil {
		return nil, "", err
	}
	var afterToken int64
	if after != "" {
		if afterToken, err = strconv.ParseInt(after, 10, 64); err != nil {
			return nil, "", apierr.InvalidArgument(page.ReasonPageTokenInvalid, "page_token is not a token this API issued")
		}
	}
	attempts, err := s.store.ListAttempts(ctx, AttemptFilter{TenantID: tenant, JobID: r.JobID, AfterToken: afterToken, Limit: size + 1})
	if errors.Is(err, ErrNotFound) {
		return nil, "", errJobNotFound(r.JobID)
	}
	if err != nil {
		return nil, "", fmt.Errorf("list attempts: %w", err)
	}
	attempts, next := page.Trim(attempts, size, func(a Attempt) string { return strconv.FormatInt(a.LeaseToken, 10) }, scope)
	return attempts, next, nil
}

// AttemptFilter selects a page of one job's attempts.
type AttemptFilter struct {
	TenantID   string
	JobID      string
	AfterToken int64 // only attempts of a larger lease token
	Limit      int
}

// PausedType is a job type a tenant paused: lease calls skip its jobs.
type PausedType struct {
	TenantID string
	Type     string
	PausedAt time.Time
	PausedBy string
}

// TypeCall names a job type and the caller acting on it.
type TypeCall struct {
	Type  string
	Actor string
}

// ErrPausedLimit is returned by a Store when a tenant would have more than
// the limit of paused types.
var ErrPausedLimit = errors.New("paused types limit reached")

// Pause pauses a job type in tenant: lease calls skip its jobs until
// Resume; jobs being processed run on. Pausing a paused type returns it
// as it was paused.
func (s *Service) Pause(ctx context.Context, tenant string, c TypeCall) (PausedType, error) {
	if err := checkType(c.Type); err != nil {
		return PausedType{}, err
	}
	p, err := s.store.PauseType(ctx, PausedType{
		TenantID: tenant, Type: c.Type, PausedAt: s.now(), PausedBy: actor(c.Actor),
	}, MaxPausedTypes)
	if errors.Is(err, ErrPausedLimit) {
		return PausedType{}, apierr.FailedPrecondition(ReasonPausedTypesLimit,
			"at most %d job types may be paused at once", MaxPausedTypes).InDomain(Domain)
	}
	if err != nil {
		return PausedType{}, fmt.Errorf("pause job type: %w", err)
	}
	return p, nil
}

// Resume resumes a paused job type and wakes tenant's waiting workers; it
// reports false when the type was not paused.
func (s *Service) Resume(ctx context.Context, tenant string, c TypeCall) (bool, error) {
	if err := checkType(c.Type); err != nil {
		return false, err
	}
	resumed, err := s.store.ResumeType(ctx, tenant, c.Type)
	if err != nil {
		return false, fmt.Errorf("resume job type: %w", err)
	}
	if resumed {
		s.wake.Notify(tenant)
	}
	return resumed, nil
}

// PausedTypes pages through tenant's paused job types by type.
func (s *Service) PausedTypes(ctx context.Context, tenant string, r page.Request) ([]PausedType, string, error) {
	size, err := r.Size(DefaultListPageSize, MaxListPageSize)
	if err != nil {
		return nil, "", err
	}
	const scope = "paused-types"
	after, err := page.Decode(r.PageToken, scope)
	if err != nil {
		return nil, "", err
	}
	types, err := s.store.ListPausedTypes(ctx, tenant, after, size+1)
	if err != nil {
		return nil, "", fmt.Errorf("list paused types: %w", err)
	}
	types, next := page.Trim(types, size, func(p PausedType) string { return p.Type }, scope)
	return types, next, nil
}
