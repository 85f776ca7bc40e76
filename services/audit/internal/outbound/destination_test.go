package outbound

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"

	"github.com/echopilot/echopilot/platform/netguard"
)

func TestAttemptErrorIsPlain(t *testing.T) {
	dial := &url.Error{Op: "Post", URL: "http://127.0.0.1:9203/metrics",
		Err: fmt.Errorf("dial tcp 127.0.0.1:9203: %w", netguard.ErrDestinationNotAllowed)}
	refused := &url.Error{Op: "Post", URL: "http://127.0.0.1:5432/", Err: errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")}
	for _, tc := range []struct {
		status int
		err    error
		want   string
	}{
		{0, dial, "destination not allowed"},
		{0, refused, "no response"},
		{0, context.DeadlineExceeded, "no response"},
		{302, errors.New("receiver answered 302"), "redirect not followed"},
		{503, errors.New("receiver answered 503: upstream db01.internal down"), "error status"},
	} {
		if got := attemptError(tc.status, tc.err); got != tc.want {
			t.Errorf("attemptError(%d, %v) = %q, want %q", tc.status, tc.err, got, tc.want)
		}
	}
}

// Rows stored before the reasons were plain are shown plain.
func TestShownError(t *testing.T) {
	for stored, want := range map[string]string{
		"":                        "",
		"destination not allowed": "destination not allowed",
		"endpoint deleted":        "endpoint deleted",
		"receiver answered 500":   "error status",
		`Post "http://127.0.0.1:9203/metrics": dial tcp 127.0.0.1:9203: connect: connection refused`: "no response",
	} {
		if got := shownError(stored); got != want {
			t.Errorf("shownError(%q) = %q, want %q", stored, got, want)
		}
	}
}
