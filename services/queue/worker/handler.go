package worker

import (
	"context"
	"errors"
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
)

// Result is what a successful handler hands to CompleteJob.
type Result struct {
	// Output is stored as the job's result.
	Output *structpb.Struct
	// Usage is what the job consumed, for finops to price; nil when nothing
	// billable was used. The worker fills in DurationMs when it is zero.
	Usage *queuev1.Usage
}

// Handler runs the jobs of one type. Run must return soon after ctx is done:
// the worker cancels it when the job is cancelled, its lease is lost or the
// shutdown grace period ends.
type Handler interface {
	Run(ctx context.Context, job *queuev1.Job) (Result, error)
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc func(ctx context.Context, job *queuev1.Job) (Result, error)

// Run calls f(ctx, job).
func (f HandlerFunc) Run(ctx context.Context, job *queuev1.Job) (Result, error) { return f(ctx, job) }

// classified carries the retry decision of a handler error.
type classified struct {
	err       error
	retryable bool
}

func (c *classified) Error() string { return c.err.Error() }
func (c *classified) Unwrap() error { return c.err }

// Permanent marks err as a failure that trying again cannot fix (a bad
// payload, a 4xx answer): the queue makes the job dead at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &classified{err: err, retryable: false}
}

// Retryable marks err as transient: the queue retries the job with backoff
// until its max_attempts.
func Retryable(err error) error {
	if err == nil {
		return nil
	}
	return &classified{err: err, retryable: true}
}

// IsRetryable reports whether a job that failed with err should run again.
// Unmarked errors are retryable: an unknown failure is more often transient
// than not, and max_attempts bounds the cost of being wrong.
func IsRetryable(err error) bool {
	var c *classified
	if errors.As(err, &c) {
		return c.retryable
	}
	return true
}

// classifyHTTP marks err by the HTTP status that caused it: rate limits,
// timeouts and server errors may pass; any other answer will not change.
func classifyHTTP(code int, err error) error {
	if code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code >= 500 {
		return Retryable(err)
	}
	return Permanent(err)
}

// transientCode reports whether a gRPC failure may pass by itself.
func transientCode(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted,
		codes.Internal, codes.Unknown:
		return true
	}
	return false
}

// classifyGRPC marks err from a call to another service by its code.
func classifyGRPC(err error) error {
	if transientCode(err) {
		return Retryable(err)
	}
	return Permanent(err)
}
