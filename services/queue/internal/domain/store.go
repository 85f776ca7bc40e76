package domain

import (
	"context"
	"errors"
	"time"
)

var (
	// ErrNotFound is returned by a Store when the job does not exist in the
	// tenant (another tenant's job included: the caller must not learn of it).
	ErrNotFound = errors.New("job not found")
	// ErrConflict is returned by a Store when the job is not in a status the
	// change applies to; the Job returned with it is the job as it is now.
	ErrConflict = errors.New("job status conflict")
)

// Store persists jobs. Every method is scoped to one tenant except the
// maintenance ones that say otherwise. Every implementation must pass the
// contract suite in internal/store on SQLite and PostgreSQL.
type Store interface {
	// Enqueue inserts j. When j has an idempotency key that the tenant
	// already used, it inserts nothing and returns the existing job with
	// duplicate=true, also when several callers race with the same key.
	Enqueue(ctx context.Context, j NewJob) (stored Job, duplicate bool, err error)
	// EnqueueBatch inserts js, all of one tenant, in one transaction: all
	// or none. Each job's idempotency key works as in Enqueue, also against
	// an earlier job of js; stored and duplicate follow js's order.
	EnqueueBatch(ctx context.Context, js []NewJob) (stored []Job, duplicate []bool, err error)
	// Get returns ErrNotFound when there is no such job in the tenant.
	Get(ctx context.Context, tenant, id string) (Job, error)
	// List returns up to f.Limit jobs matching f, newest first.
	List(ctx context.Context, f ListFilter) ([]Job, error)
	// Counts returns the tenant's job counts by status, type and priority
	// (combinations without jobs are left out).
	Counts(ctx context.Context, tenant string) ([]Count, error)

	// Claim leases up to c.Max runnable jobs (queued or failed, RunAt due)
	// of the tenant to c.WorkerID, highest priority first and FIFO within
	// a priority (RunAt, then Seq): each gets status processing, attempts+1,
	// lease token+1 and a lease until c.Now+c.LeaseFor, and a running
	// attempt in its history. Jobs of the tenant's paused types are skipped. Concurrent claims
	// never hand out the same job. First, in the same transaction, it
	// applies ExpireLeases to the tenant, so pickup does not wait for the
	// reaper. Leases are returned in priority order.
	Claim(ctx context.Context, c Claim) ([]Lease, Expiry, error)
	// Heartbeat extends ref's lease to now+extend, or by the job's leased
	// length when extend is 0, and returns the job. It returns ErrConflict
	// (with the job) when ref is not the job's current lease, changing nothing.
	//
	// A lease that ran out is current until the job is taken back (by a
	// claim or ExpireLeases): its worker may still heartbeat, complete or
	// fail it, which loses nobody's work, and the row lock orders it against
	// the taking back.
	Heartbeat(ctx context.Context, ref LeaseRef, extend time.Duration, now time.Time) (Job, error)
	// Complete finishes ref's job as completed with c and, in the same
	// transaction, adds CompletedEvent of the result to the outbox. It
	// returns ErrConflict (with the job) when ref is not the job's current
	// lease, changing nothing.
	Complete(ctx context.Context, ref LeaseRef, c Completion) (Job, error)
	// CompleteBatch completes each of b's leases as Complete would, in one
	// transaction and, when b.Then is set, runs that claim in the same one
	// after them (a worker reporting a batch and asking for the next).
	// res.Errs[i] is Complete's error for b.Refs[i]; err fails the claim.
	CompleteBatch(ctx context.Context, b CompleteBatch) (res CompleteBatchResult, err error)
	// Fail ends ref's lease with the outcome decide picks for the job as it
	// is, in one transaction. It returns ErrConflict (with the job) when ref
	// is not the job's current lease, changing nothing.
	Fail(ctx context.Context, ref LeaseRef, decide func(Job) Retry) (Job, error)
	// Repair applies r in one transaction. A JobID repair reads the job
	// first: ErrNotFound when the tenant has no such job, ErrConflict (with
	// the job) when its status is not among r.Action's, else the job changed
	// (or as it was, when deleted). A filter repair counts the matching jobs
	// and changes up to r.Limit of them (none with r.DryRun). Cancel keeps a
	// processing job's worker and token, so its worker learns of it on its
	// next heartbeat; cancel and retry record r.Actor; retry makes the job
	// queued and runnable at r.Now, its attempts kept; delete deletes the
	// job's attempts too. Attempts still running end as cancelled.
	Repair(ctx context.Context, r Repair) (RepairResult, error)
	// ListAttempts returns up to f.Limit attempts of the job by lease
	// token, or ErrNotFound when the tenant has no such job.
	ListAttempts(ctx context.Context, f AttemptFilter) ([]Attempt, error)
	// PauseType records p unless its type is paused already, and returns
	// the type's pause as stored. It returns ErrPausedLimit when the
	// tenant has limit types paused already.
	PauseType(ctx context.Context, p PausedType, limit int) (PausedType, error)
	// ResumeType deletes a pause and reports whether there was one.
	ResumeType(ctx context.Context, tenant, typ string) (bool, error)
	// ListPausedTypes returns up to limit of the tenant's paused types
	// whose type sorts after after, by type.
	ListPausedTypes(ctx context.Context, tenant, after string, limit int) ([]PausedType, error)

	// TenantsWithExpiredLeases lists, across all tenants, the tenants that
	// have processing jobs whose lease ended at or before now.
	TenantsWithExpiredLeases(ctx context.Context, now time.Time) ([]string, error)
	// ExpireLeases returns the tenant's processing jobs whose lease ended at
	// or before now to the queue (attempts stay counted), or makes them dead
	// when they have used all their attempts.
	ExpireLeases(ctx context.Context, tenant string, now time.Time) (Expiry, error)
	// Depth counts unfinished jobs across all tenants (metrics).
	Depth(ctx context.Context) ([]Depth, error)
	// OldestQueued is the earliest run_at of queued jobs by priority,
	// across all tenants (metrics).
	OldestQueued(ctx context.Context) (map[Priority]time.Time, error)
	// DeleteFinished deletes, across all tenants and in bounded
	// transactions, finished jobs last updated before before, and returns
	// how many it deleted (so far, on error).
	DeleteFinished(ctx context.Context, before time.Time) (int64, error)

	// SeeWorker registers w.WorkerID in its tenant with w.Info and last
	// seen w.Now (first seen too, when new), or updates its registration.
	// A new worker beyond w.Limit registered workers of the tenant gets
	// ErrWorkerLimit, nothing written; racing registrations may pass the
	// limit by a few.
	SeeWorker(ctx context.Context, w WorkerSeen) error
	// ListWorkers returns up to f.Limit workers of the tenant by id, each
	// with the number of its processing jobs.
	ListWorkers(ctx context.Context, f WorkerFilter) ([]Worker, error)
	// CountWorkers counts the workers of all tenants, stale ones being
	// those last seen before staleBefore.
	CountWorkers(ctx context.Context, staleBefore time.Time) (WorkerCounts, error)
	// DeleteWorkers deletes, across all tenants and in bounded
	// transactions, workers last seen before before, and returns how many
	// it deleted (so far, on error).
	DeleteWorkers(ctx context.Context, before time.Time) (int64, error)
	Close() error
}

// CompleteBatch is a worker's completions and, optionally, its next claim.
type CompleteBatch struct {
	Refs        []LeaseRef
	Completions []Completion // one per ref
	Then        *Claim
}

// CompleteBatchResult is CompleteBatch's outcome: per completion, the job
// or Complete's error, and the claim's leases.
type CompleteBatchResult struct {
	Jobs   []Job
	Errs   []error
	Leases []Lease
	Expiry Expiry
}
