// Package loadtest holds what the benchmarks of every service share:
// running seeding work on a few goroutines, and collecting call latencies
// to report their quantiles.
package loadtest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
)

// Parallel runs fn(0..n-1) on workers goroutines and fails tb at the first
// error.
func Parallel(tb testing.TB, workers, n int, fn func(i int) error) {
	tb.Helper()
	var g errgroup.Group
	g.SetLimit(workers)
	for i := range n {
		g.Go(func() error { return fn(i) })
	}
	if err := g.Wait(); err != nil {
		tb.Fatal(err)
	}
}

// Latencies collects durations; the zero value is ready. Not safe for
// concurrent use: give each goroutine its own and Merge them.
type Latencies struct{ took []time.Duration }

// Time runs fn and records how long it took.
func (l *Latencies) Time(fn func() error) error {
	start := time.Now()
	err := fn()
	l.took = append(l.took, time.Since(start))
	return err
}

// Add records d.
func (l *Latencies) Add(d time.Duration) { l.took = append(l.took, d) }

// Merge records every duration of others.
func (l *Latencies) Merge(others ...*Latencies) {
	for _, o := range others {
		l.took = append(l.took, o.took...)
	}
}

// Len is how many durations were recorded.
func (l *Latencies) Len() int { return len(l.took) }

// Quantile is the q-quantile (0 <= q <= 1) of the recorded durations, the
// nearest rank below; 0 when none were recorded.
func (l *Latencies) Quantile(q float64) time.Duration {
	if len(l.took) == 0 {
		return 0
	}
	s := slices.Clone(l.took)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1))]
}

// Report reports each quantile of qs to b as "p<NN>-ms" in milliseconds
// (0.5 is p50-ms, 0.99 is p99-ms).
func (l *Latencies) Report(b *testing.B, qs ...float64) {
	for _, q := range qs {
		b.ReportMetric(float64(l.Quantile(q))/float64(time.Millisecond), fmt.Sprintf("p%g-ms", q*100))
	}
}
