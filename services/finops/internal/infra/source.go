package infra

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/echopilot/echopilot/platform/netguard"
)

// ErrSourceRefused is an URL the outbound guard refuses: not public, and
// not on the operator's allow-list.
var ErrSourceRefused = errors.New("source refused by the outbound guard (ECHOPILOT_OUTBOUND_ALLOW admits private destinations)")

// Open opens src: an http(s) URL (an OpenCost endpoint, a bucket's
// presigned link) fetched through guard, so that an import cannot be
// pointed at internal services; "-" for stdin; else a file.
func Open(ctx context.Context, src string, guard *netguard.Guard, timeout time.Duration) (io.ReadCloser, error) {
	switch {
	case src == "-":
		return io.NopCloser(os.Stdin), nil
	case strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://"):
	default:
		return os.Open(src)
	}
	u, err := guard.CheckURL(ctx, src)
	if errors.Is(err, netguard.ErrDestinationNotAllowed) {
		return nil, ErrSourceRefused
	}
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := guard.Client(timeout).Do(req)
	if errors.Is(err, netguard.ErrDestinationNotAllowed) {
		return nil, ErrSourceRefused
	}
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", u.Redacted(), err)
	}
	if resp.StatusCode/100 != 2 {
		resp.Body.Close()
		return nil, fmt.Errorf("fetch %s: %s", u.Redacted(), resp.Status)
	}
	return resp.Body, nil
}
