package apierr

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClip(t *testing.T) {
	if got := Clip("short"); got != "short" {
		t.Fatalf("Clip(short) = %q", got)
	}
	exact := strings.Repeat("a", clipLimit)
	if got := Clip(exact); got != exact {
		t.Fatalf("a value at the limit was clipped: %q", got)
	}
	// 63 ASCII bytes then a 3-byte character across the 64-byte mark: the
	// cut falls before the character, never inside it.
	s := strings.Repeat("a", clipLimit-1) + "€€€"
	got := Clip(s)
	if got != strings.Repeat("a", clipLimit-1)+"…" || !utf8.ValidString(got) {
		t.Fatalf("Clip = %q", got)
	}
	if got := Clip(strings.Repeat("x", 1<<20)); len(got) > clipLimit+len("…") {
		t.Fatalf("a megabyte clipped to %d bytes", len(got))
	}
}
