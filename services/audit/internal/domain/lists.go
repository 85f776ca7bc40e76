package domain

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/page"
)

// Caps on what a tenant can create: the defaults, and the most an operator
// may configure (each active secret costs every delivery an HMAC, each
// endpoint every high or critical entry a delivery).
const (
	DefaultMaxWebhookSecrets = 10
	DefaultMaxEndpoints      = 25
	limitMaxWebhookSecrets   = 100
	limitMaxEndpoints        = 1000
)

// limits fills in the default caps and checks configured ones.
func (c *Config) limits() error {
	if c.MaxWebhookSecrets == 0 {
		c.MaxWebhookSecrets = DefaultMaxWebhookSecrets
	}
	if c.MaxEndpoints == 0 {
		c.MaxEndpoints = DefaultMaxEndpoints
	}
	if c.MaxWebhookSecrets < 1 || c.MaxWebhookSecrets > limitMaxWebhookSecrets {
		return fmt.Errorf("max webhook secrets: want 1 to %d, got %d", limitMaxWebhookSecrets, c.MaxWebhookSecrets)
	}
	if c.MaxEndpoints < 1 || c.MaxEndpoints > limitMaxEndpoints {
		return fmt.Errorf("max endpoints: want 1 to %d, got %d", limitMaxEndpoints, c.MaxEndpoints)
	}
	return nil
}

// limitReached is the answer to a create beyond a cap; the cap is in the
// message and in the ErrorInfo metadata ("limit").
func limitReached(reason string, limit int, format string, args ...any) error {
	return apierr.ResourceExhausted(reason, format, args...).InDomain(Domain).With("limit", strconv.Itoa(limit))
}

// Cursor is where a page of a list in (created, id) order continues: after
// the row it names. The zero Cursor starts at the beginning.
type Cursor struct {
	Created time.Time
	ID      string
}

// IsZero reports whether c is the beginning of the list.
func (c Cursor) IsZero() bool { return c.ID == "" }

// listed reads the page of a list in (created, id) order that token (tied
// to scope; "" for the first) and pageSize ask for, with read, and returns
// it with the token of the next page: "" after a short page, the last.
func listed[T any](pageSize int32, token, scope string, read func(after Cursor, limit int) ([]T, error), at func(T) Cursor) ([]T, string, error) {
	size, after, err := listPage(pageSize, token, scope)
	if err != nil {
		return nil, "", err
	}
	rows, err := read(after, size)
	if err != nil || len(rows) < size || len(rows) == 0 {
		return rows, "", err
	}
	c := at(rows[len(rows)-1])
	return rows, page.Encode(strconv.FormatInt(c.Created.UnixMicro(), 10)+"/"+c.ID, scope), nil
}

// listPage is the size and the start of a page of a list in (created, id)
// order.
func listPage(pageSize int32, token, scope string) (int, Cursor, error) {
	size, err := page.Size(pageSize, defaultPage, maxPage)
	if err != nil {
		return 0, Cursor{}, err
	}
	after, err := page.Decode(token, scope)
	if err != nil || after == "" {
		return size, Cursor{}, err
	}
	micros, id, ok := strings.Cut(after, "/")
	us, err := strconv.ParseInt(micros, 10, 64)
	if !ok || err != nil || id == "" {
		return 0, Cursor{}, apierr.InvalidArgument(page.ReasonPageTokenInvalid, "page_token is not a token this API issued")
	}
	return size, Cursor{Created: time.UnixMicro(us).UTC(), ID: id}, nil
}
