// Package page implements AIP-158 pagination: a page size with a default and
// a ceiling, and opaque page tokens that carry the last key seen.
package page

import (
	"encoding/base64"
	"encoding/json"

	"github.com/echopilot/echopilot/platform/apierr"
)

// Reasons returned for bad pagination input.
const (
	ReasonPageSizeInvalid  = "PAGE_SIZE_INVALID"
	ReasonPageTokenInvalid = "PAGE_TOKEN_INVALID"
)

// Size returns the effective page size: def for 0, max for anything larger
// than max (AIP-158 coerces rather than fails), an error for negatives.
func Size(requested int32, def, max int) (int, error) {
	switch {
	case requested < 0:
		return 0, apierr.InvalidArgument(ReasonPageSizeInvalid, "page_size must not be negative")
	case requested == 0:
		return def, nil
	case int(requested) > max:
		return max, nil
	}
	return int(requested), nil
}

// Request is what a list call asks for: PageSize entries (0: the list's
// default) after PageToken ("" for the first page). Domains take it whole,
// or embedded in a bigger request, so every list pages the same way.
type Request struct {
	PageSize  int32
	PageToken string
}

// Size is the effective page size of r for a list with default def and
// ceiling max (see Size).
func (r Request) Size(def, max int) (int, error) { return Size(r.PageSize, def, max) }

type token struct {
	After string `json:"a"`
	Scope string `json:"s,omitempty"`
}

// Encode returns the token that continues after key. scope ties the token to
// the query it came from (for example the filter), so it cannot be replayed
// against another one.
func Encode(after, scope string) string {
	if after == "" {
		return ""
	}
	b, _ := json.Marshal(token{After: after, Scope: scope})
	return base64.RawURLEncoding.EncodeToString(b)
}

// Decode returns the key a token continues after ("" for no token).
func Decode(tok, scope string) (string, error) {
	if tok == "" {
		return "", nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(raw) > 1024 {
		return "", apierr.InvalidArgument(ReasonPageTokenInvalid, "page_token is not a token this API issued")
	}
	var t token
	if err := json.Unmarshal(raw, &t); err != nil || t.After == "" {
		return "", apierr.InvalidArgument(ReasonPageTokenInvalid, "page_token is not a token this API issued")
	}
	if t.Scope != scope {
		return "", apierr.InvalidArgument(ReasonPageTokenInvalid, "page_token belongs to a different query")
	}
	return t.After, nil
}

// Trim turns the rows a store returned for a limit of size+1 into a page and
// the token of the next one ("" on the last page). The extra row only proves
// that a next page exists, so a list never ends with an empty page.
func Trim[T any](rows []T, size int, key func(T) string, scope string) ([]T, string) {
	if len(rows) <= size {
		return rows, ""
	}
	rows = rows[:size]
	return rows, Encode(key(rows[size-1]), scope)
}
