package domain

import (
	"encoding/json"
	"time"
)

// Priority is a job's rank: lower runs first. Its values are what the store
// orders by, so they must not be renumbered.
type Priority int

// The priorities, highest first.
const (
	PriorityCritical Priority = iota
	PriorityHigh
	PriorityNormal
	PriorityLow
)

// Priorities returns every priority, highest first.
func Priorities() []Priority {
	return []Priority{PriorityCritical, PriorityHigh, PriorityNormal, PriorityLow}
}

// String is the API name of p.
func (p Priority) String() string {
	switch p {
	case PriorityCritical:
		return "critical"
	case PriorityHigh:
		return "high"
	case PriorityNormal:
		return "normal"
	case PriorityLow:
		return "low"
	}
	return "unknown"
}

// ParsePriority parses an API name; "" is normal.
func ParsePriority(s string) (Priority, bool) {
	if s == "" {
		return PriorityNormal, true
	}
	for _, p := range Priorities() {
		if s == p.String() {
			return p, true
		}
	}
	return 0, false
}

// Status is where a job is in its life.
type Status string

// The statuses. Queued and failed jobs are runnable once run_at is due;
// completed, dead and cancelled are final.
const (
	StatusQueued     Status = "queued"
	StatusProcessing Status = "processing"
	StatusCompleted  Status = "completed"
	StatusFailed     Status = "failed"
	StatusDead       Status = "dead"
	StatusCancelled  Status = "cancelled"
)

// Statuses returns every status, in the order of a job's life.
func Statuses() []Status {
	return []Status{StatusQueued, StatusProcessing, StatusCompleted, StatusFailed, StatusDead, StatusCancelled}
}

// Finished reports whether s is final.
func (s Status) Finished() bool {
	return s == StatusCompleted || s == StatusDead || s == StatusCancelled
}

// ParseStatus parses a status name.
func ParseStatus(s string) (Status, bool) {
	for _, st := range Statuses() {
		if Status(s) == st {
			return st, true
		}
	}
	return "", false
}

// Usage is what a job consumed, as reported by its worker; finops prices it.
type Usage struct {
	Model        string
	InputTokens  int64
	OutputTokens int64
	DurationMS   int64
}

// Job is one unit of work of one tenant.
type Job struct {
	TenantID string
	ID       string
	// Seq orders jobs enqueued in the same instant: FIFO within a priority
	// is by RunAt, then Seq.
	Seq            int64
	Type           string
	Priority       Priority
	Status         Status
	Payload        json.RawMessage // a JSON object
	IdempotencyKey string
	// Attempts counts leases handed out so far (attempts started).
	Attempts    int
	MaxAttempts int
	// RunAt is when the job becomes runnable (again, for a failed one).
	RunAt     time.Time
	CreatedAt time.Time
	UpdatedAt time.Time
	// WorkerID and LeaseToken belong to the latest lease; LeaseExpiresAt is
	// set only while the job is processing.
	WorkerID       string
	LeaseToken     int64
	LeaseSeconds   int
	LeaseExpiresAt time.Time
	// AttemptStartedAt is when the latest lease was handed out (zero
	// before the first): what a run's duration is measured from.
	AttemptStartedAt time.Time
	Result           json.RawMessage // a JSON object once completed; nil before
	Usage            Usage
	LastError        string
	// RetriedBy and RetriedAt name the latest retry ("" and zero for none);
	// CancelledBy the caller that cancelled the job.
	RetriedBy   string
	RetriedAt   time.Time
	CancelledBy string
}

// Leased reports whether ref names j's current lease.
func (j Job) Leased(ref LeaseRef) bool {
	return j.Status == StatusProcessing && j.WorkerID == ref.WorkerID && j.LeaseToken == ref.Token
}

// Lease is a job handed to a worker with the fencing token of this lease.
type Lease struct {
	Job   Job
	Token int64
}

// LeaseRef names a lease a worker holds.
type LeaseRef struct {
	TenantID string
	JobID    string
	WorkerID string
	Token    int64
}

// NewJob is a validated job to insert.
type NewJob struct {
	TenantID       string
	ID             string
	Type           string
	Priority       Priority
	Payload        json.RawMessage
	IdempotencyKey string
	MaxAttempts    int
	RunAt          time.Time
	CreatedAt      time.Time
}

// Claim asks the store for up to Max runnable jobs.
type Claim struct {
	TenantID string
	WorkerID string
	// Types limits the claim to these job types; empty means any.
	Types    []string
	Max      int
	LeaseFor time.Duration
	Now      time.Time
}

// Completion is a successful end of a lease.
type Completion struct {
	Result json.RawMessage
	Usage  Usage
	Now    time.Time
}

// Retry is what a failed attempt leads to: dead, or failed until RunAt.
type Retry struct {
	Dead  bool
	RunAt time.Time
	Error string
	Now   time.Time
}

// ListFilter selects jobs of one tenant, newest first.
type ListFilter struct {
	TenantID string
	Status   Status // "" for any
	Type     string // "" for any
	// Priority, when HasPriority.
	Priority    Priority
	HasPriority bool
	BeforeID    string // keyset: only jobs with a smaller id ("" for the first page)
	Limit       int
}

// Count is the number of jobs of a tenant in one (status, type, priority).
type Count struct {
	Status   Status
	Type     string
	Priority Priority
	N        int64
}

// Depth is the number of unfinished jobs, over all tenants, in one
// (status, priority).
type Depth struct {
	Status   Status
	Priority Priority
	N        int64
}

// Expiry says what happened to jobs whose leases ran out.
type Expiry struct {
	Requeued int // back to queued
	Dead     int // out of attempts
}

// Total is the number of expired leases.
func (e Expiry) Total() int { return e.Requeued + e.Dead }
