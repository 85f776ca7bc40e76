// Package backoff computes retry delays: exponential from a base, doubling
// with every retry up to a cap, with or without jitter. It is the one
// schedule behind the queue's job retries, the outbox relay's redeliveries,
// the batcher's sink retries and the queue worker's lease and report
// retries.
//
// Why not github.com/cenkalti/backoff/v5 (already in the module graph,
// through the OTLP exporter): its ExponentialBackOff is a stateful iterator
// (NextBackOff) with a symmetric randomization factor around the step and a
// process-wide random source. Our callers need the delay of retry n as a
// pure function of n (the queue and the outbox persist it as a row's next
// run time, computed from the attempt count stored on the row), "equal
// jitter" ([step/2, step], so a delay never falls below the previous
// step), and a seedable source in tests. Getting those from cenkalti would
// mean replaying the iterator n times per call and picking
// interval and factor so that 1±f lands on [½, 1]; a Policy value with one
// method says the same in a few lines.
package backoff

import (
	"math"
	"math/rand/v2"
	"time"
)

// Jitter says how a Policy randomises its delays.
type Jitter int

const (
	// Equal keeps half of the step and draws the other half at random: the
	// delay lies in [step/2, step], so retries that failed together spread
	// out, yet never come much sooner than the schedule says and never
	// sooner than the previous retry's step. It is the zero value, since a
	// retry schedule shared by many clients wants jitter.
	Equal Jitter = iota
	// None returns the step itself: a deterministic schedule.
	None
)

// Policy is a retry schedule. The zero Jitter is Equal. A Policy is a plain
// value, safe for concurrent use unless Rand is set.
type Policy struct {
	// Base is the step of the first retry; it doubles with every further
	// retry. Base <= 0 makes every delay 0.
	Base time.Duration
	// Cap bounds the step; 0 means no bound (the step saturates instead of
	// overflowing).
	Cap    time.Duration
	Jitter Jitter
	// Rand, when set, draws the jitter (tests seed it for repeatable
	// delays); nil uses math/rand/v2's global source. A *rand.Rand is not
	// safe for concurrent use, so a Policy with Rand must not be shared by
	// goroutines.
	Rand *rand.Rand
}

// Delay returns the wait before retry n, where n counts from 1: the retry
// after the first failure. Its step is min(Cap, Base·2^(n-1)); n < 1
// counts as 1.
func (p Policy) Delay(n int) time.Duration {
	d := p.step(n)
	if p.Jitter == None || d <= 0 {
		return d
	}
	half := d / 2
	return half + p.randN(d-half+1)
}

// step is min(Cap, Base·2^(n-1)) without the jitter.
func (p Policy) step(n int) time.Duration {
	if p.Base <= 0 {
		return 0
	}
	limit := p.Cap
	if limit <= 0 {
		limit = math.MaxInt64
	}
	shift := max(n, 1) - 1
	// Compared by shifting the limit down, so Base is never shifted into
	// overflow.
	if shift < 63 && p.Base <= limit>>shift {
		return p.Base << shift
	}
	return limit
}

// randN draws from [0, n).
func (p Policy) randN(n time.Duration) time.Duration {
	if p.Rand != nil {
		return time.Duration(p.Rand.Int64N(int64(n)))
	}
	return rand.N(n)
}
