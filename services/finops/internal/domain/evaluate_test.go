package domain

import (
	"testing"
	"time"
)

// The month's days run from its first to today; its length is the
// calendar's (leap years included).
func TestMonthOf(t *testing.T) {
	for _, c := range []struct {
		now     time.Time
		elapsed int64
		length  int64
		label   string
	}{
		{time.Date(2028, 2, 29, 23, 59, 0, 0, time.UTC), 29, 29, "2028-02"},
		{time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), 1, 28, "2026-02"},
		{time.Date(2026, 12, 31, 12, 0, 0, 0, time.UTC), 31, 31, "2026-12"},
		{time.Date(2026, 4, 10, 1, 0, 0, 0, time.FixedZone("x", -5*3600)), 10, 30, "2026-04"}, // 06:00 UTC
	} {
		d, n, label := monthOf(c.now)
		if d.Len() != c.elapsed || n != c.length || label != c.label || d.To != DayOf(c.now) {
			t.Errorf("%v: %+v (%d days) %d %s, want %d of %d in %s", c.now, d, d.Len(), n, label, c.elapsed, c.length, c.label)
		}
	}
}

func TestOutlier(t *testing.T) {
	normal := []float64{100, 110, 90, 100, 105, 95, 100}
	for _, c := range []struct {
		name    string
		history []float64
		v       float64
		want    bool
	}{
		{"too little history", normal[:6], 1e9, false},
		{"within k sd", normal, 115, false},
		{"spike", normal, 200, true},
		{"drop", normal, 0, true},
		// sd 0: the floor is 1% of the mean, so a tiny change is not an
		// anomaly, a large one is.
		{"flat, small change", []float64{1000, 1000, 1000, 1000, 1000, 1000, 1000}, 1020, false},
		{"flat, large change", []float64{1000, 1000, 1000, 1000, 1000, 1000, 1000}, 1100, true},
	} {
		if _, got := outlier(c.history, c.v, DefaultAnomalyK); got != c.want {
			t.Errorf("%s: outlier = %v, want %v", c.name, got, c.want)
		}
	}
}
