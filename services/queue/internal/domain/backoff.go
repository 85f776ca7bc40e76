package domain

import (
	"math/rand/v2"
	"time"
)

// Backoff spaces out the retries of a failing job: exponential from Base,
// doubling per attempt up to Cap, with jitter so that jobs that failed
// together (a downstream outage) do not all come back at the same instant.
type Backoff struct {
	Base time.Duration
	Cap  time.Duration
}

// The retry schedule unless configured otherwise.
const (
	DefaultBackoffBase = time.Second
	DefaultBackoffCap  = 5 * time.Minute
)

// Delay returns the wait before the retry that follows failed attempt
// number attempt (1 for the first). It is "equal jitter": half of the
// exponential step is kept, the other half is random, so a retry never
// comes much sooner than the schedule says.
func (b Backoff) Delay(attempt int) time.Duration {
	if b.Base <= 0 {
		return 0
	}
	d := b.Cap
	// Shift only while it cannot overflow past the cap.
	if attempt < 1 {
		attempt = 1
	}
	if shift := attempt - 1; shift < 62 && b.Base <= b.Cap>>shift {
		d = b.Base << shift
	}
	half := d / 2
	return half + rand.N(d-half+1)
}
