package metricstest

import (
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestNames: a scrape's names, histograms and summaries expanded, a vector
// without a series absent; SampleCount and Value read by label.
func TestNames(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "h_seconds", Help: "h"}, []string{"k"})
	s := prometheus.NewSummary(prometheus.SummaryOpts{Name: "s_seconds", Help: "s"})
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "c_total", Help: "c"}, []string{"k"})
	empty := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "empty_total", Help: "e"}, []string{"k"})
	reg.MustRegister(h, s, c, empty)
	h.WithLabelValues("a").Observe(1)
	h.WithLabelValues("a").Observe(2)
	h.WithLabelValues("b").Observe(3)
	c.WithLabelValues("a").Add(2)
	c.WithLabelValues("b").Add(5)
	got, err := Names(reg)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"c_total", "h_seconds_bucket", "h_seconds_count", "h_seconds_sum", "s_seconds", "s_seconds_count", "s_seconds_sum"}
	if !slices.Equal(got, want) {
		t.Errorf("Names = %v, want %v", got, want)
	}
	if n := SampleCount(t, reg, "h_seconds", map[string]string{"k": "a"}); n != 2 {
		t.Errorf("SampleCount(k=a) = %d, want 2", n)
	}
	if n := SampleCount(t, reg, "h_seconds", nil); n != 3 {
		t.Errorf("SampleCount() = %d, want 3", n)
	}
	if v := Value(t, reg, "c_total", map[string]string{"k": "b"}); v != 5 {
		t.Errorf("Value(k=b) = %v, want 5", v)
	}
}
