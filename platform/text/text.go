// Package text holds the string handling that several services need at
// their limits: cutting a value a caller or a peer sent to a size a column,
// a field or an error message allows.
package text

import (
	"strings"
	"unicode/utf8"
)

// Truncate returns the longest prefix of s of at most max bytes that ends at
// a character boundary, as valid UTF-8 (invalid bytes are dropped, so the
// result never exceeds max and never splits a character).
func Truncate(s string, max int) string {
	if max <= 0 {
		return ""
	}
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return strings.ToValidUTF8(s, "")
}

// Clip is Truncate with an ellipsis appended when anything was cut, for
// text a person reads (error messages): the result is at most max bytes
// plus the ellipsis.
func Clip(s string, max int) string {
	if len(s) <= max {
		return strings.ToValidUTF8(s, "")
	}
	return Truncate(s, max) + "…"
}
