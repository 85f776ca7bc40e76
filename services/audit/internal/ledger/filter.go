package ledger

import (
	"slices"
	"time"
)

// severities in increasing order.
var severities = []string{SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical}

// Filter selects entries of a log; the zero Filter selects all. Fields
// combine with AND.
type Filter struct {
	EventType, User, Resource string // exact matches; "" for any
	MinSeverity               string // the least severity; "" for any
	// Since is inclusive, Until exclusive; zero for no bound.
	Since, Until time.Time
}

// IsZero reports whether f selects every entry.
func (f Filter) IsZero() bool { return f == Filter{} }

// Severities are the severities f selects, in increasing order (all four
// when f names none; none when it names an unknown one).
func (f Filter) Severities() []string {
	if f.MinSeverity == "" {
		return severities
	}
	i := slices.Index(severities, f.MinSeverity)
	if i < 0 {
		return nil
	}
	return severities[i:]
}

// Match reports whether e is one f selects.
func (f Filter) Match(e Entry) bool {
	ts := NormalizeTS(e.TS)
	return (f.EventType == "" || e.EventType == f.EventType) && (f.User == "" || e.User == f.User) &&
		(f.Resource == "" || e.Resource == f.Resource) && slices.Contains(f.Severities(), e.Severity) &&
		(f.Since.IsZero() || !ts.Before(f.Since)) && (f.Until.IsZero() || ts.Before(f.Until))
}

// Bounds are f's time bounds in RFC 3339 (UTC), "" for none.
func (f Filter) Bounds() (since, until string) {
	t := func(ts time.Time) string {
		if ts.IsZero() {
			return ""
		}
		return ts.UTC().Format(time.RFC3339Nano)
	}
	return t(f.Since), t(f.Until)
}
