package server

import "testing"

func TestBoundedLabel(t *testing.T) {
	b := NewBoundedLabel(2)
	for _, c := range []struct{ in, want string }{
		{"a", "a"}, {"b", "b"}, {"c", OverflowLabel}, {"a", "a"}, {"b", "b"}, {"d", OverflowLabel},
	} {
		if got := b.Value(c.in); got != c.want {
			t.Errorf("Value(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
