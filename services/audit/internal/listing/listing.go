// Package listing pages the audit service's lists one way, for the ledger,
// intake and outbound alike: a page size with a default and a ceiling,
// opaque page tokens tied to the query that issued them (platform/page),
// and one row more asked of the store than the page holds, so that a list
// never ends with an empty page (page.Trim).
package listing

import (
	"strconv"
	"strings"
	"time"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/page"
)

// Page sizes: the default and the most one page holds (a page.Request's
// PageSize of 0 asks for DefaultSize).
const (
	DefaultSize = 100
	MaxSize     = 1000
)

// InvalidToken is the answer to a token that decodes but does not hold
// a key this API issued.
func InvalidToken() error {
	return apierr.InvalidArgument(page.ReasonPageTokenInvalid, "page_token is not a token this API issued")
}

// Cursor is where a page of a list in (created, id) order continues: after
// the row it names. The zero Cursor starts at the beginning.
type Cursor struct {
	Created time.Time
	ID      string
}

// IsZero reports whether c is the beginning of the list.
func (c Cursor) IsZero() bool { return c.ID == "" }

func (c Cursor) key() string { return strconv.FormatInt(c.Created.UnixMicro(), 10) + "/" + c.ID }

// ByCreated reads the page of a list in (created, id) order that req asks
// for (its token tied to scope) with read, and returns it with the token of
// the next page ("" on the last).
func ByCreated[T any](req page.Request, scope string, read func(after Cursor, limit int) ([]T, error), at func(T) Cursor) ([]T, string, error) {
	size, err := req.Size(DefaultSize, MaxSize)
	if err != nil {
		return nil, "", err
	}
	after, err := cursor(req.PageToken, scope)
	if err != nil {
		return nil, "", err
	}
	rows, err := read(after, size+1)
	if err != nil {
		return nil, "", err
	}
	rows, next := page.Trim(rows, size, func(x T) string { return at(x).key() }, scope)
	return rows, next, nil
}

// cursor decodes the token of a list in (created, id) order.
func cursor(token, scope string) (Cursor, error) {
	after, err := page.Decode(token, scope)
	if err != nil || after == "" {
		return Cursor{}, err
	}
	micros, id, ok := strings.Cut(after, "/")
	us, err := strconv.ParseInt(micros, 10, 64)
	if !ok || err != nil || id == "" {
		return Cursor{}, InvalidToken()
	}
	return Cursor{Created: time.UnixMicro(us).UTC(), ID: id}, nil
}

// ByOffset reads the page req asks for of a list the store reads by offset
// (its token, tied to scope, carries the offset of the next page), and
// returns it with the token of the next page ("" on the last).
func ByOffset[T any](req page.Request, scope string, read func(offset, limit int) ([]T, error)) ([]T, string, error) {
	size, err := req.Size(DefaultSize, MaxSize)
	if err != nil {
		return nil, "", err
	}
	offset := 0
	if after, err := page.Decode(req.PageToken, scope); err != nil {
		return nil, "", err
	} else if after != "" {
		if offset, err = strconv.Atoi(after); err != nil || offset < 0 {
			return nil, "", InvalidToken()
		}
	}
	rows, err := read(offset, size+1)
	if err != nil {
		return nil, "", err
	}
	next := strconv.Itoa(offset + size)
	rows, tok := page.Trim(rows, size, func(T) string { return next }, scope)
	return rows, tok, nil
}
