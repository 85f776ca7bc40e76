package domain

import (
	"time"

	"github.com/echopilot/echopilot/platform/backoff"
)

// Backoff spaces out the retries of a failing job: exponential from Base,
// doubling per attempt up to Cap, with equal jitter (the zero Jitter) so
// that jobs that failed together (a downstream outage) do not all come back
// at the same instant. Delay(attempt) is the wait before the retry that
// follows failed attempt number attempt (1 for the first): between half of
// min(Cap, Base·2^(attempt-1)) and all of it, so a retry never comes much
// sooner than the schedule says.
type Backoff = backoff.Policy

// The retry schedule unless configured otherwise.
const (
	DefaultBackoffBase = time.Second
	DefaultBackoffCap  = 5 * time.Minute
)
