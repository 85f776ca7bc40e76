package outbound

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/outbox"
	"github.com/echopilot/echopilot/services/audit/internal/domain"
	"github.com/echopilot/echopilot/services/audit/internal/ledger"
	"github.com/echopilot/echopilot/services/audit/internal/webhook"
)

// Reasons of the repair calls.
const (
	// ReasonDeliveryNotFound: the tenant has no undelivered delivery by
	// that id (unknown, another tenant's, delivered, or pruned).
	ReasonDeliveryNotFound = "DELIVERY_NOT_FOUND"
	// ReasonEndpointDisabled: a disabled endpoint's deliveries are sent
	// again by enabling it, not by a redelivery.
	ReasonEndpointDisabled = "ENDPOINT_DISABLED"
	// ReasonFilterInvalid: event types or minimum severity refused.
	ReasonFilterInvalid = "ENDPOINT_FILTER_INVALID"
	// ReasonDisableReasonInvalid: a disable reason too long or with
	// control characters.
	ReasonDisableReasonInvalid = "DISABLE_REASON_INVALID"
	// ReasonGraceInvalid: a rotation's grace period negative or longer
	// than MaxSecretGrace.
	ReasonGraceInvalid = "SECRET_GRACE_INVALID"
)

// Limits of the repair calls.
const (
	maxEventTypes   = 50
	maxEventTypeLen = 128
	maxReasonLen    = 256
	// DefaultSecretGrace is how long a rotated-out secret still signs
	// unless the rotation says otherwise; MaxSecretGrace the longest.
	DefaultSecretGrace = 24 * time.Hour
	MaxSecretGrace     = 7 * 24 * time.Hour
	// DefaultAutoDisableAfter is the failing time after which an endpoint
	// is disabled (ECHOPILOT_WEBHOOK_AUTO_DISABLE_AFTER).
	DefaultAutoDisableAfter = 120 * time.Hour
	// EventEndpointDisabled is the event type of the entry noting an
	// automatic disable in the tenant's log.
	EventEndpointDisabled = "webhook.endpoint.disabled"
)

// Filter is what an endpoint receives: entries of EventTypes (empty:
// every type) at least MinSeverity ("" or high: high and critical;
// critical: critical only). Webhooks carry high and critical entries only.
type Filter struct {
	EventTypes  []string
	MinSeverity string
}

func (f Filter) check() error {
	switch f.MinSeverity {
	case "", ledger.SeverityHigh, ledger.SeverityCritical:
	default:
		return invalid(ReasonFilterInvalid, "min_severity must be high or critical (webhooks carry high and critical entries), got %q",
			apierr.Clip(f.MinSeverity))
	}
	if len(f.EventTypes) > maxEventTypes {
		return invalid(ReasonFilterInvalid, "at most %d event_types, got %d", maxEventTypes, len(f.EventTypes))
	}
	seen := make(map[string]bool, len(f.EventTypes))
	for _, t := range f.EventTypes {
		if t == "" || len(t) > maxEventTypeLen || !plainText(t) {
			return invalid(ReasonFilterInvalid, "an event type is 1 to %d bytes of UTF-8 without control characters", maxEventTypeLen)
		}
		if seen[t] {
			return invalid(ReasonFilterInvalid, "event type %q given twice", apierr.Clip(t))
		}
		seen[t] = true
	}
	return nil
}

// plainText reports whether s is UTF-8 without control characters.
func plainText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// RedeliverDelivery sends tenant's delivery id again now, with a fresh
// attempt budget, when it is dead or waiting for a retry; anything else
// (unknown, another tenant's, delivered, being sent) is NOT_FOUND.
func (s *Service) RedeliverDelivery(ctx context.Context, tenant, id string) error {
	n, err := s.store.RequeueDeliveries(ctx, outbox.RequeueRequest{
		IDs: []string{id}, TenantID: tenant, Topic: TopicWebhook, Pending: true}, s.cfg.Now())
	if err != nil {
		return fmt.Errorf("redeliver: %w", err)
	}
	if n == 0 {
		return apierr.NotFound(ReasonDeliveryNotFound, "no dead or failed delivery %q", apierr.Clip(id)).InDomain(domain.Domain)
	}
	s.cfg.Hooks.requeued()
	return nil
}

// RedeliverEndpoint sends every dead delivery of tenant's endpoint id
// again and reports how many; a disabled endpoint is refused
// (ENDPOINT_DISABLED: enabling it does this).
func (s *Service) RedeliverEndpoint(ctx context.Context, tenant, id string) (int64, error) {
	ep, ok, err := s.store.Endpoint(ctx, tenant, id)
	switch {
	case err != nil:
		return 0, fmt.Errorf("redeliver: %w", err)
	case !ok || !ep.Deleted.IsZero():
		return 0, endpointNotFound(id)
	case !ep.Disabled.IsZero():
		return 0, apierr.FailedPrecondition(ReasonEndpointDisabled,
			"endpoint %q is disabled: enable it, which sends its dead deliveries again", apierr.Clip(id)).InDomain(domain.Domain)
	}
	return s.requeueEndpoint(ctx, tenant, id)
}

func (s *Service) requeueEndpoint(ctx context.Context, tenant, id string) (int64, error) {
	n, err := s.store.RequeueDeliveries(ctx, outbox.RequeueRequest{
		All: true, TenantID: tenant, Topic: TopicWebhook, Key: id}, s.cfg.Now())
	if err != nil {
		return 0, fmt.Errorf("redeliver: %w", err)
	}
	if n > 0 {
		s.cfg.Hooks.requeued()
	}
	return n, nil
}

// change applies fn to tenant's active endpoint id (NOT_FOUND when none).
func (s *Service) change(ctx context.Context, tenant, id string, fn func(*Endpoint) bool) (Endpoint, error) {
	ep, ok, err := s.store.ChangeEndpoint(ctx, tenant, id, fn)
	if err != nil {
		return Endpoint{}, err
	}
	if !ok {
		return Endpoint{}, endpointNotFound(id)
	}
	return ep, nil
}

// DisableEndpoint stops deliveries to tenant's endpoint id: entries
// appended meanwhile are not sent to it, and deliveries already queued are
// parked as dead until EnableEndpoint. Disabling a disabled endpoint
// changes nothing.
func (s *Service) DisableEndpoint(ctx context.Context, tenant, id, reason string) (Endpoint, error) {
	if len(reason) > maxReasonLen || !plainText(reason) {
		return Endpoint{}, invalid(ReasonDisableReasonInvalid, "reason is at most %d bytes of UTF-8 without control characters", maxReasonLen)
	}
	if reason == "" {
		reason = "disabled by the tenant"
	}
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	return s.change(ctx, tenant, id, func(e *Endpoint) bool {
		if !e.Disabled.IsZero() {
			return false
		}
		e.Disabled, e.DisabledReason = now, reason
		return true
	})
}

// EnableEndpoint resumes deliveries to tenant's endpoint id and sends its
// dead deliveries (those parked while it was disabled, and those that
// failed for good before) again; it reports how many.
func (s *Service) EnableEndpoint(ctx context.Context, tenant, id string) (Endpoint, int64, error) {
	ep, err := s.change(ctx, tenant, id, func(e *Endpoint) bool {
		if e.Disabled.IsZero() {
			return false
		}
		e.Disabled, e.DisabledReason = time.Time{}, ""
		return true
	})
	if err != nil {
		return Endpoint{}, 0, err
	}
	n, err := s.requeueEndpoint(ctx, tenant, id)
	return ep, n, err
}

// UpdateEndpoint replaces the filter of tenant's endpoint id; entries
// appended from now on are filtered by it.
func (s *Service) UpdateEndpoint(ctx context.Context, tenant, id string, f Filter) (Endpoint, error) {
	if err := f.check(); err != nil {
		return Endpoint{}, err
	}
	return s.change(ctx, tenant, id, func(e *Endpoint) bool {
		e.EventTypes, e.MinSeverity = f.EventTypes, f.MinSeverity
		return true
	})
}

// RotateRequest rotates an endpoint's secret; GraceSeconds nil means
// DefaultSecretGrace.
type RotateRequest struct {
	ID           string
	GraceSeconds *int64
}

// RotateSecret gives tenant's endpoint a new secret, returned in the
// endpoint (Secret), the only time it is shown. The current secret keeps
// signing (a second webhook-signature entry) until the grace period ends;
// a secret rotated out before is dropped.
func (s *Service) RotateSecret(ctx context.Context, tenant string, req RotateRequest) (Endpoint, error) {
	grace := DefaultSecretGrace
	if g := req.GraceSeconds; g != nil {
		// Checked in seconds: a huge count would overflow a Duration.
		if *g < 0 || *g > int64(MaxSecretGrace/time.Second) {
			return Endpoint{}, invalid(ReasonGraceInvalid, "grace_seconds must be 0 to %d", int64(MaxSecretGrace/time.Second))
		}
		grace = time.Duration(*g) * time.Second
	}
	secret, err := webhook.NewSecret()
	if err != nil {
		return Endpoint{}, err
	}
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	return s.change(ctx, tenant, req.ID, func(e *Endpoint) bool {
		e.PrevSecret, e.PrevUntil = e.Secret, now.Add(grace)
		if grace == 0 {
			e.PrevSecret, e.PrevUntil = "", time.Time{}
		}
		e.Secret = secret
		return true
	})
}

// autoDisable disables tenant's endpoint id when every attempt since its
// last delivery (if any) failed for AutoDisableAfter, and notes it in the
// tenant's log. Of concurrent failures only the one that disables writes
// the entry.
func (s *Service) autoDisable(ctx context.Context, tenant, id string) error {
	if s.cfg.AutoDisableAfter <= 0 {
		return nil
	}
	since, failing, err := s.store.FailingSince(ctx, tenant, id)
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	if err != nil || !failing || now.Sub(since) < s.cfg.AutoDisableAfter {
		return err
	}
	reason := fmt.Sprintf("every delivery failed since %s", since.Format(time.RFC3339))
	disabled := false
	ep, _, err := s.store.ChangeEndpoint(ctx, tenant, id, func(e *Endpoint) bool {
		if !e.Disabled.IsZero() {
			return false
		}
		e.Disabled, e.DisabledReason, disabled = now, reason, true
		return true
	})
	if err != nil || !disabled {
		return err
	}
	s.cfg.Hooks.autoDisabled()
	details, err := json.Marshal(map[string]any{"endpoint_id": id, "url": ep.URL, "failing_since": since.Format(time.RFC3339Nano),
		"disabled_at": now.Format(time.RFC3339Nano), "auto_disable_after_seconds": int64(s.cfg.AutoDisableAfter / time.Second)})
	if err != nil {
		return err
	}
	_, err = s.cfg.Ledger.Append(ctx, domain.Caller{Tenant: tenant}, []domain.NewEntry{{
		Key:       "webhook.endpoint.disabled/" + id + "/" + now.Format(time.RFC3339Nano),
		EventType: EventEndpointDisabled, User: "echopilot-audit", Action: "disable",
		Resource: "webhook_endpoint/" + id, Details: details, Severity: ledger.SeverityMedium,
	}})
	if err != nil {
		return fmt.Errorf("note the disabled endpoint in the log: %w", err)
	}
	return nil
}
