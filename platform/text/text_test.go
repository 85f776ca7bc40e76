package text

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTruncate(t *testing.T) {
	for _, tt := range []struct {
		in   string
		max  int
		want string
	}{
		{"hello", 10, "hello"},
		{"hello", 5, "hello"},
		{"hello", 3, "hel"},
		{"héllo", 2, "h"}, // é is two bytes: not split
		{"héllo", 3, "hé"},
		{"日本", 4, "日"},
		{"a\xffb", 10, "ab"}, // invalid bytes go
		{"abc", 0, ""},
		{"abc", -1, ""},
	} {
		if got := Truncate(tt.in, tt.max); got != tt.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}

func TestClip(t *testing.T) {
	if got := Clip("short", 10); got != "short" {
		t.Errorf("Clip kept %q", got)
	}
	if got := Clip(strings.Repeat("é", 10), 5); got != "éé…" {
		t.Errorf("Clip = %q", got)
	}
}

func FuzzTruncate(f *testing.F) {
	f.Add("héllo wörld", 4)
	f.Add("a\xffb", 2)
	f.Fuzz(func(t *testing.T, s string, max int) {
		got := Truncate(s, max)
		if max >= 0 && len(got) > max || max < 0 && got != "" {
			t.Fatalf("Truncate(%q, %d) = %q: too long", s, max, got)
		}
		if !utf8.ValidString(got) {
			t.Fatalf("Truncate(%q, %d) = %q: invalid UTF-8", s, max, got)
		}
		if utf8.ValidString(s) && !strings.HasPrefix(s, got) {
			t.Fatalf("Truncate(%q, %d) = %q: not a prefix", s, max, got)
		}
	})
}

func TestIsName(t *testing.T) {
	for s, want := range map[string]bool{
		"edge-1":               true,
		"été 🚀":                true,
		strings.Repeat("é", 8): true, // 16 bytes, 8 characters
		strings.Repeat("é", 9): false,
		"":                     false,
		"tab\there":            false,
		"nul\x00":              false,
		"bad\xff":              false, // invalid UTF-8 reads as U+FFFD, which is printable
	} {
		if got := IsName(s, 8); got != want {
			t.Errorf("IsName(%q, 8) = %v, want %v", s, got, want)
		}
	}
}
