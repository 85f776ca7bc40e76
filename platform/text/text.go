// Package text holds the string handling that several services need at
// their limits: cutting a value a caller or a peer sent to a size a column,
// a field or an error message allows.
package text

import (
	"strings"
	"unicode"
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

// IsName reports whether s can name a thing a tenant creates (a token, a
// key): 1 to max characters of valid UTF-8, all printable, so that it
// shows as typed in lists and logs.
func IsName(s string, max int) bool {
	if s == "" || !utf8.ValidString(s) || utf8.RuneCountInString(s) > max {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
