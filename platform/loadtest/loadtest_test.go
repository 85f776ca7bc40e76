package loadtest

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestQuantiles(t *testing.T) {
	var l Latencies
	if l.Quantile(0.5) != 0 {
		t.Fatal("quantile of nothing is not 0")
	}
	for _, ms := range []int{9, 1, 5, 3, 7, 2, 8, 4, 6, 10} {
		l.Add(time.Duration(ms) * time.Millisecond)
	}
	for q, want := range map[float64]time.Duration{0: time.Millisecond, 0.5: 5 * time.Millisecond, 0.95: 9 * time.Millisecond, 1: 10 * time.Millisecond} {
		if got := l.Quantile(q); got != want {
			t.Errorf("Quantile(%v) = %v, want %v", q, got, want)
		}
	}
	var other Latencies
	if err := other.Time(func() error { return errors.New("boom") }); err == nil || other.Len() != 1 {
		t.Fatalf("Time: err %v, %d recorded", err, other.Len())
	}
	l.Merge(&other)
	if l.Len() != 11 {
		t.Fatalf("merged %d, want 11", l.Len())
	}
}

func TestParallelRunsEveryIndex(t *testing.T) {
	var seen [100]atomic.Int32
	Parallel(t, 4, len(seen), func(i int) error { seen[i].Add(1); return nil })
	for i := range seen {
		if n := seen[i].Load(); n != 1 {
			t.Fatalf("index %d ran %d times", i, n)
		}
	}
}
