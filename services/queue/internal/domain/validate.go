package domain

import (
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/text"
)

// Limits of the API.
const (
	MaxPayloadBytes       = 256 << 10 // encoded JSON of a payload
	MaxResultBytes        = 256 << 10 // encoded JSON of a result
	MaxTypeLen            = 64
	MaxIdempotencyKeyLen  = 200
	MaxWorkerIDLen        = 128
	MaxModelLen           = 128
	MaxErrorLen           = 4 << 10 // longer failure messages are clipped, not refused
	DefaultMaxAttempts    = 3
	MaxMaxAttempts        = 100
	MaxDelay              = 365 * 24 * time.Hour
	DefaultLeaseSeconds   = 30
	MaxLeaseSeconds       = 3600
	MaxLeaseJobs          = 100
	MaxEnqueueBatch       = 500
	MaxCompleteBatch      = 100 // completions per CompleteJobs or LeaseJobs call
	MaxLeaseTypes         = 32
	MaxWait               = 30 * time.Second
	DefaultListPageSize   = 100
	MaxListPageSize       = 1000
	expiredLeaseLastError = "lease expired"
)

// Error reasons (ErrorInfo.reason, domain "queue.echopilot").
const (
	ReasonTypeInvalid = "TYPE_INVALID"
	// ReasonEnqueueBatchSizeInvalid: EnqueueJobs with no jobs or too many.
	ReasonEnqueueBatchSizeInvalid = "ENQUEUE_BATCH_SIZE_INVALID"
	// ReasonBatchTooLarge: more than MaxCompleteBatch completions.
	ReasonBatchTooLarge         = "BATCH_TOO_LARGE"
	ReasonPriorityInvalid       = "PRIORITY_INVALID"
	ReasonMaxAttemptsInvalid    = "MAX_ATTEMPTS_INVALID"
	ReasonPayloadTooLarge       = "PAYLOAD_TOO_LARGE"
	ReasonPayloadInvalid        = "PAYLOAD_INVALID"
	ReasonIdempotencyKeyInvalid = "IDEMPOTENCY_KEY_INVALID"
	ReasonRunAtInvalid          = "RUN_AT_INVALID"
	ReasonStatusInvalid         = "STATUS_INVALID"
	ReasonLeaseParamsInvalid    = "LEASE_PARAMS_INVALID"
	ReasonResultTooLarge        = "RESULT_TOO_LARGE"
	ReasonResultInvalid         = "RESULT_INVALID"
	ReasonUsageInvalid          = "USAGE_INVALID"
	ReasonJobNotFound           = "JOB_NOT_FOUND"
	ReasonLeaseLost             = "LEASE_LOST"
	ReasonJobCancelled          = "JOB_CANCELLED"
	ReasonJobFinished           = "JOB_FINISHED"
)

func invalid(reason, format string, args ...any) error {
	return apierr.InvalidArgument(reason, format, args...).InDomain(Domain)
}

// EnqueueRequest is a job as a client asks for it.
type EnqueueRequest struct {
	Type     string
	Priority string
	// Payload is the decoded JSON object (nil for none).
	Payload        map[string]any
	IdempotencyKey string
	// MaxAttempts 0 means DefaultMaxAttempts.
	MaxAttempts int32
	// RunAt zero means now; a past time means now too, so a job cannot
	// overtake jobs that were runnable before it was enqueued.
	RunAt time.Time
}

// Validate checks r against the API rules and returns the job to insert
// for tenant (without an ID). Every refusal is InvalidArgument.
func (r EnqueueRequest) Validate(tenant string, now time.Time) (NewJob, error) {
	if err := checkType(r.Type); err != nil {
		return NewJob{}, err
	}
	prio, ok := ParsePriority(r.Priority)
	if !ok {
		return NewJob{}, invalid(ReasonPriorityInvalid, "priority %q: want critical, high, normal or low", apierr.Clip(r.Priority))
	}
	if len(r.IdempotencyKey) > MaxIdempotencyKeyLen || !printable(r.IdempotencyKey) {
		return NewJob{}, invalid(ReasonIdempotencyKeyInvalid,
			"idempotency_key must be at most %d bytes of printable UTF-8", MaxIdempotencyKeyLen)
	}
	attempts := int(r.MaxAttempts)
	switch {
	case attempts == 0:
		attempts = DefaultMaxAttempts
	case attempts < 1 || attempts > MaxMaxAttempts:
		return NewJob{}, invalid(ReasonMaxAttemptsInvalid, "max_attempts %d: want 1 to %d (0 means %d)",
			attempts, MaxMaxAttempts, DefaultMaxAttempts)
	}
	runAt := now
	if r.RunAt.After(now) {
		if r.RunAt.Sub(now) > MaxDelay {
			return NewJob{}, invalid(ReasonRunAtInvalid, "run_at is more than %v ahead", MaxDelay)
		}
		runAt = r.RunAt
	}
	payload, err := encodeObject(r.Payload, MaxPayloadBytes, ReasonPayloadTooLarge, ReasonPayloadInvalid, "payload")
	if err != nil {
		return NewJob{}, err
	}
	return NewJob{
		TenantID: tenant, Type: r.Type, Priority: prio, Payload: payload, IdempotencyKey: r.IdempotencyKey,
		MaxAttempts: attempts, RunAt: runAt.UTC(), CreatedAt: now.UTC(),
	}, nil
}

// encodeObject encodes a decoded JSON object (nil is {}) and enforces its
// size limit.
func encodeObject(obj map[string]any, limit int, tooLarge, invalidReason, field string) (json.RawMessage, error) {
	if obj == nil {
		return json.RawMessage("{}"), nil
	}
	b, err := json.Marshal(obj)
	if err != nil {
		// NaN or an infinity in a number value: not JSON.
		return nil, invalid(invalidReason, "%s is not valid JSON: %v", field, err)
	}
	if len(b) > limit {
		return nil, invalid(tooLarge, "%s is %d bytes as JSON; the limit is %d", field, len(b), limit)
	}
	return b, nil
}

func checkType(t string) error {
	if !validType(t) {
		return invalid(ReasonTypeInvalid, "type %q: want 1 to %d of [a-z0-9_.-]", apierr.Clip(t), MaxTypeLen)
	}
	return nil
}

func validType(t string) bool {
	if len(t) == 0 || len(t) > MaxTypeLen {
		return false
	}
	for i := 0; i < len(t); i++ {
		switch c := t[i]; {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '_', c == '.', c == '-':
		default:
			return false
		}
	}
	return true
}

// printable reports whether s is valid UTF-8 without control characters
// (PostgreSQL text cannot hold NUL, and none belong in an identifier).
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

func checkWorkerID(id string) error {
	if id == "" || len(id) > MaxWorkerIDLen || !printable(id) {
		return invalid(ReasonLeaseParamsInvalid, "worker_id must be 1 to %d bytes of printable UTF-8", MaxWorkerIDLen)
	}
	return nil
}

// LeaseRequest is a worker's request for jobs.
type LeaseRequest struct {
	WorkerID     string
	Types        []string
	MaxJobs      int32 // 0 means 1
	LeaseSeconds int32 // 0 means DefaultLeaseSeconds
	WaitMS       int32 // 0 answers at once
	// WorkerInfo registers the worker (see Service.ListWorkers).
	WorkerInfo WorkerInfo
}

type leaseParams struct {
	claim Claim // without TenantID and Now
	wait  time.Duration
	info  WorkerInfo
}

func (r LeaseRequest) validate() (leaseParams, error) {
	if err := checkWorkerID(r.WorkerID); err != nil {
		return leaseParams{}, err
	}
	if len(r.Types) > MaxLeaseTypes {
		return leaseParams{}, invalid(ReasonLeaseParamsInvalid, "at most %d types, got %d", MaxLeaseTypes, len(r.Types))
	}
	for _, t := range r.Types {
		if err := checkType(t); err != nil {
			return leaseParams{}, err
		}
	}
	n := int(r.MaxJobs)
	switch {
	case n == 0:
		n = 1
	case n < 1 || n > MaxLeaseJobs:
		return leaseParams{}, invalid(ReasonLeaseParamsInvalid, "max_jobs %d: want 1 to %d", n, MaxLeaseJobs)
	}
	secs := int(r.LeaseSeconds)
	switch {
	case secs == 0:
		secs = DefaultLeaseSeconds
	case secs < 1 || secs > MaxLeaseSeconds:
		return leaseParams{}, invalid(ReasonLeaseParamsInvalid, "lease_seconds %d: want 1 to %d", secs, MaxLeaseSeconds)
	}
	wait := time.Duration(r.WaitMS) * time.Millisecond
	if wait < 0 || wait > MaxWait {
		return leaseParams{}, invalid(ReasonLeaseParamsInvalid, "wait_ms %d: want 0 to %d", r.WaitMS, MaxWait.Milliseconds())
	}
	info, err := r.WorkerInfo.clean()
	if err != nil {
		return leaseParams{}, err
	}
	return leaseParams{
		claim: Claim{WorkerID: r.WorkerID, Types: r.Types, Max: n, LeaseFor: time.Duration(secs) * time.Second},
		wait:  wait,
		info:  info,
	}, nil
}

// LeaseCall names a lease in a worker's call.
type LeaseCall struct {
	JobID    string
	WorkerID string
	Token    int64
}

func (c LeaseCall) ref(tenant string) (LeaseRef, error) {
	if err := checkJobID(c.JobID); err != nil {
		return LeaseRef{}, err
	}
	if err := checkWorkerID(c.WorkerID); err != nil {
		return LeaseRef{}, err
	}
	return LeaseRef{TenantID: tenant, JobID: c.JobID, WorkerID: c.WorkerID, Token: c.Token}, nil
}

// checkJobID refuses what cannot be a job id (a ULID) as not found, without
// asking the store.
func checkJobID(id string) error {
	if _, err := ulid.ParseStrict(id); err != nil {
		return errJobNotFound(id)
	}
	return nil
}

func checkUsage(u Usage) error {
	if u.InputTokens < 0 || u.OutputTokens < 0 || u.DurationMS < 0 {
		return invalid(ReasonUsageInvalid, "usage counts must not be negative")
	}
	if len(u.Model) > MaxModelLen || !printable(u.Model) {
		return invalid(ReasonUsageInvalid, "usage.model must be at most %d bytes of printable UTF-8", MaxModelLen)
	}
	return nil
}

// clipError keeps a worker's failure message within MaxErrorLen bytes of
// valid UTF-8 without NULs, which PostgreSQL text cannot store.
func clipError(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	return text.Truncate(s, MaxErrorLen)
}
