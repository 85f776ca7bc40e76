package server

import "sync"

// OverflowLabel is the label value BoundedLabel gives every value past its
// first n.
const OverflowLabel = "other"

// BoundedLabel caps the distinct values of a metric label whose values come
// from tenants (job types, tenant ids): the first n distinct values seen by
// this process keep their own series, every later one shares OverflowLabel.
// First-seen rather than top-k: a series never changes meaning once
// exported, and it costs one map lookup. The price: which values get their
// own series depends on the process's history (per replica, since start).
type BoundedLabel struct {
	mu   sync.Mutex
	n    int
	seen map[string]struct{}
}

// NewBoundedLabel returns a BoundedLabel admitting n distinct values.
func NewBoundedLabel(n int) *BoundedLabel {
	return &BoundedLabel{n: n, seen: make(map[string]struct{}, n)}
}

// Value is v if v has (or now gets) its own series, else OverflowLabel.
func (b *BoundedLabel) Value(v string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.seen[v]; ok {
		return v
	}
	if len(b.seen) >= b.n {
		return OverflowLabel
	}
	b.seen[v] = struct{}{}
	return v
}
