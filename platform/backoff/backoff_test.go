package backoff_test

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/backoff"
)

// The deterministic schedules the queue worker relies on: its lease retries
// (100ms doubling up to 10s) and its completion/failure reports (200ms,
// then 400ms, as the former attempt·200ms did for its three attempts).
func TestDelayWithoutJitter(t *testing.T) {
	lease := backoff.Policy{Base: 100 * time.Millisecond, Cap: 10 * time.Second, Jitter: backoff.None}
	want := []time.Duration{
		100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		1600 * time.Millisecond, 3200 * time.Millisecond, 6400 * time.Millisecond,
		10 * time.Second, 10 * time.Second,
	}
	for i, w := range want {
		if got := lease.Delay(i + 1); got != w {
			t.Errorf("lease Delay(%d) = %v, want %v", i+1, got, w)
		}
	}
	report := backoff.Policy{Base: 200 * time.Millisecond, Jitter: backoff.None}
	for attempt := 1; attempt <= 2; attempt++ {
		if got, w := report.Delay(attempt), time.Duration(attempt)*200*time.Millisecond; got != w {
			t.Errorf("report Delay(%d) = %v, want %v", attempt, got, w)
		}
	}
}

// Equal jitter as the queue's job retries and the outbox relay use it (the
// relay's former private backoff(attempts) is Delay(attempts+1)): retry n
// waits within [d/2, d] for d, the unjittered step, so delays never shrink
// from one retry to the next; and retries of the same n spread out.
func TestDelayEqualJitter(t *testing.T) {
	jittered := backoff.Policy{Base: time.Second, Cap: 5 * time.Minute}
	steps := jittered
	steps.Jitter = backoff.None
	// 1s, 2s, … 256s, then the 5m cap; far beyond, the shift must not overflow.
	for _, n := range []int{1, 2, 3, 9, 10, 11, 62, 63, 64, 200} {
		d := steps.Delay(n)
		if want := min(time.Second<<min(n-1, 20), 5*time.Minute); d != want {
			t.Fatalf("step %d = %v, want %v", n, d, want)
		}
		seen := map[time.Duration]bool{}
		for range 50 {
			got := jittered.Delay(n)
			if got < d/2 || got > d {
				t.Fatalf("Delay(%d) = %v, want within [%v, %v]", n, got, d/2, d)
			}
			seen[got] = true
		}
		if len(seen) < 2 {
			t.Errorf("Delay(%d) has no jitter: always %v", n, jittered.Delay(n))
		}
	}
}

// The batcher's schedule: no cap, doubling from its RetryDelay.
func TestDelayUncapped(t *testing.T) {
	p := backoff.Policy{Base: 100 * time.Millisecond, Jitter: backoff.None}
	if got, want := p.Delay(5), 1600*time.Millisecond; got != want {
		t.Errorf("Delay(5) = %v, want %v", got, want)
	}
	// No overflow: the step saturates.
	for _, n := range []int{40, 62, 63, 64, 1000, math.MaxInt} {
		if got := p.Delay(n); got != math.MaxInt64 {
			t.Errorf("Delay(%d) = %v, want the largest Duration", n, got)
		}
	}
	j := backoff.Policy{Base: 100 * time.Millisecond}
	if d := j.Delay(1000); d < math.MaxInt64/2 {
		t.Errorf("jittered Delay(1000) = %v, want at least half the largest Duration", d)
	}
}

func TestDelayEdges(t *testing.T) {
	p := backoff.Policy{Base: time.Second, Cap: time.Minute, Jitter: backoff.None}
	for _, n := range []int{0, -1, math.MinInt} {
		if got := p.Delay(n); got != time.Second {
			t.Errorf("Delay(%d) = %v, want Base (n < 1 counts as 1)", n, got)
		}
	}
	for _, base := range []time.Duration{0, -time.Second} {
		for _, j := range []backoff.Jitter{backoff.Equal, backoff.None} {
			if got := (backoff.Policy{Base: base, Cap: time.Minute, Jitter: j}).Delay(3); got != 0 {
				t.Errorf("Base %v, jitter %d: Delay(3) = %v, want 0", base, j, got)
			}
		}
	}
	// A cap below the base wins.
	if got := (backoff.Policy{Base: time.Minute, Cap: time.Second, Jitter: backoff.None}).Delay(1); got != time.Second {
		t.Errorf("Cap below Base: Delay(1) = %v, want the cap", got)
	}
	// The smallest step jitters within [0, 1]ns.
	if got := (backoff.Policy{Base: 1}).Delay(1); got < 0 || got > 1 {
		t.Errorf("Base 1ns: Delay(1) = %v, want 0 or 1ns", got)
	}
}

func TestDelaySeeded(t *testing.T) {
	delays := func() []time.Duration {
		p := backoff.Policy{Base: time.Second, Cap: time.Hour, Rand: rand.New(rand.NewPCG(1, 2))}
		var out []time.Duration
		for n := 1; n <= 10; n++ {
			out = append(out, p.Delay(n))
		}
		return out
	}
	a, b := delays(), delays()
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("seeded delays differ at retry %d: %v vs %v", i+1, a, b)
		}
	}
}
