package outbound

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"

	"github.com/echopilot/echopilot/platform/netguard"
)

// ReasonEndpointNotAllowed refuses an endpoint whose destination the
// outbound guard refuses (DESIGN.md section 2, rule 9).
const ReasonEndpointNotAllowed = "ENDPOINT_URL_NOT_ALLOWED"

// What the deliveries list says of a failed attempt, besides its status
// code. Never the receiver's answer or the dialer's error: those would make
// deliveries a probe of networks the tenant cannot otherwise see.
const (
	errNotAllowed = "destination not allowed"
	errRedirect   = "redirect not followed"
	errStatus     = "error status"
	errNoResponse = "no response"
	errDeleted    = "endpoint deleted"
	errDisabled   = "endpoint disabled"
)

// checkEndpointURL vets a URL a tenant gives with the guard.
func (s *Service) checkEndpointURL(ctx context.Context, raw string) (*url.URL, error) {
	u, err := s.cfg.Guard.CheckURL(ctx, raw)
	switch {
	case errors.Is(err, netguard.ErrDestinationNotAllowed):
		return nil, invalid(ReasonEndpointNotAllowed, "%v", netguard.ErrDestinationNotAllowed)
	case err != nil:
		return nil, invalid(ReasonEndpointInvalid, "%v", err)
	}
	return u, nil
}

// attemptError is the plain reason of a failed attempt that got status
// (0: no answer) and err.
func attemptError(status int, err error) string {
	switch {
	case errors.Is(err, netguard.ErrDestinationNotAllowed):
		return errNotAllowed
	case status >= 300 && status < 400:
		return errRedirect
	case status != 0:
		return errStatus
	}
	return errNoResponse
}

// shownError is what the list shows of a stored error: rows written before
// the reasons above were plain may hold a dialer's error.
func shownError(stored string) string {
	switch {
	case stored == "" || slices.Contains([]string{errNotAllowed, errRedirect, errStatus, errNoResponse, errDeleted, errDisabled}, stored):
		return stored
	case strings.HasPrefix(stored, "receiver answered "):
		return errStatus
	}
	return errNoResponse
}
