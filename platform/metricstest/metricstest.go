// Package metricstest reads a registry the way a scrape does, for tests:
// the series names a deployable exposes (compared with a committed list the
// deploy checks hold alert rules and dashboards to) and one series' count.
package metricstest

import (
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

var update = flag.Bool("update-metrics", false, "rewrite the committed metric name lists (deploy/testdata/metrics)")

// Names returns the metric names a scrape of g shows: every family's name,
// a histogram's _bucket, _sum and _count, a summary's _sum and _count
// beside its own. A vector with no child yet shows nothing, as in a
// scrape: a series an alert needs must exist from the start (its label
// values set at registration), or the alert stays silent on a fresh pod.
func Names(g prometheus.Gatherer) ([]string, error) {
	mfs, err := g.Gather()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, mf := range mfs {
		n := mf.GetName()
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			names = append(names, n+"_bucket", n+"_sum", n+"_count")
		case dto.MetricType_SUMMARY:
			names = append(names, n, n+"_sum", n+"_count")
		default:
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// Golden compares Names(g) with the list in file (one name a line), or
// rewrites the file with -update-metrics. The list is what the deploy
// checks read; a stale one fails here, in the module that changed.
func Golden(t testing.TB, g prometheus.Gatherer, file string) {
	t.Helper()
	names, err := Names(g)
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	if runtime.GOOS != "linux" {
		// The process collector's series differ by OS; the list is that of
		// Linux, where the binaries run.
		t.Logf("%s: compared on Linux only", file)
		return
	}
	got := strings.Join(names, "\n") + "\n"
	if *update {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run the test with -update-metrics)", err)
	}
	if string(want) != got {
		w := strings.Split(strings.TrimSpace(string(want)), "\n")
		var added, removed []string
		for _, n := range names {
			if !slices.Contains(w, n) {
				added = append(added, n)
			}
		}
		for _, n := range w {
			if !slices.Contains(names, n) {
				removed = append(removed, n)
			}
		}
		t.Fatalf("%s is stale (run the test with -update-metrics): new %v, gone %v", file, added, removed)
	}
}

// SampleCount is the number of observations of the histogram name whose
// labels include want, summed over the matching series (0 when none).
func SampleCount(t testing.TB, g prometheus.Gatherer, name string, want map[string]string) uint64 {
	t.Helper()
	var n uint64
	for _, m := range series(t, g, name, want) {
		n += m.GetHistogram().GetSampleCount()
	}
	return n
}

// Value is the sum of the counter or gauge name over the series whose
// labels include want.
func Value(t testing.TB, g prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	var v float64
	for _, m := range series(t, g, name, want) {
		v += m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return v
}

func series(t testing.TB, g prometheus.Gatherer, name string, want map[string]string) []*dto.Metric {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var out []*dto.Metric
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if matches(m, want) {
				out = append(out, m)
			}
		}
	}
	return out
}

func matches(m *dto.Metric, want map[string]string) bool {
	found := 0
	for _, lp := range m.GetLabel() {
		if v, ok := want[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			found++
		}
	}
	return found == len(want)
}
