// Package outbound delivers tenants' high and critical audit entries to the
// webhook endpoints they register, and keeps the endpoints and the
// attempts.
//
// It is a package of its own beside the ledger (domain) so that it is read,
// and reaches, only its own store port (Store): it sees entries only as the
// outbox events an append writes (Events), and it owns the checks of the
// URLs tenants choose (netguard).
package outbound

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/netguard"
	"github.com/echopilot/echopilot/platform/outbox"
	"github.com/echopilot/echopilot/platform/page"
	"github.com/echopilot/echopilot/services/audit/internal/domain"
	"github.com/echopilot/echopilot/services/audit/internal/ledger"
	"github.com/echopilot/echopilot/services/audit/internal/listing"
	"github.com/echopilot/echopilot/services/audit/internal/webhook"
)

// Attempt outcomes.
const (
	OutcomeDelivered = "delivered"
	OutcomeFailed    = "failed"
	OutcomeDead      = "dead"
)

// Outbound reasons.
const (
	ReasonEndpointInvalid  = "ENDPOINT_URL_INVALID"
	ReasonEndpointNotFound = "ENDPOINT_NOT_FOUND"
	ReasonEndpointLimit    = "ENDPOINT_LIMIT"
)

// Caps on a tenant's active endpoints: the default, and the most an
// operator may configure (each endpoint costs every high or critical entry
// a delivery).
const (
	DefaultMaxEndpoints = 25
	limitMaxEndpoints   = 1000
)

// Endpoint is a receiver of outbound webhooks.
type Endpoint struct {
	ID      string
	URL     string
	Secret  string
	Created time.Time
	Deleted time.Time // zero while active
	// Disabled is when deliveries were stopped (zero while enabled), and
	// DisabledReason why.
	Disabled       time.Time
	DisabledReason string
	// EventTypes are the event types delivered (empty: every type), and
	// MinSeverity the least severity ("": high).
	EventTypes  []string
	MinSeverity string
	// PrevSecret, the secret before the last rotation, still signs until
	// PrevUntil.
	PrevSecret string
	PrevUntil  time.Time
}

// Attempt is one delivery attempt of an outbound webhook.
type Attempt struct {
	DeliveryID string
	EndpointID string
	Seq        uint64
	Number     int
	At         time.Time
	Outcome    string // delivered, failed or dead
	StatusCode int
	Error      string
}

// Store keeps the endpoints and the delivery attempts.
type Store interface {
	// AddEndpoint stores a new webhook endpoint of tenant unless tenant
	// already has limit active ones (then false). Counting and inserting
	// are one step per tenant: concurrent calls, on one replica or several,
	// never leave more than limit active.
	AddEndpoint(ctx context.Context, tenant string, e Endpoint, limit int) (bool, error)
	// Endpoints lists up to limit of tenant's active endpoints in (Created,
	// ID) order after the cursor.
	Endpoints(ctx context.Context, tenant string, after listing.Cursor, limit int) ([]Endpoint, error)
	// Endpoint returns one endpoint, deleted or not; false when unknown.
	Endpoint(ctx context.Context, tenant, id string) (Endpoint, bool, error)
	// DeleteEndpoint marks an active endpoint deleted; false when none.
	DeleteEndpoint(ctx context.Context, tenant, id string, at time.Time) (bool, error)
	// RecordAttempt stores a delivery attempt, numbering it after the
	// delivery's earlier ones; the outcome of a failure is "dead" from the
	// maxAttempts-th attempt on. It returns the attempt as stored.
	RecordAttempt(ctx context.Context, tenant string, a Attempt, maxAttempts int) (Attempt, error)
	// Attempts lists tenant's attempts newest first (of one endpoint when
	// endpointID is set), skipping offset.
	Attempts(ctx context.Context, tenant, endpointID string, offset, limit int) ([]Attempt, error)
	// ChangeEndpoint applies change to tenant's active endpoint id and
	// stores the result when change reports true, in one transaction; it
	// returns the endpoint as it then is, false when there is none.
	ChangeEndpoint(ctx context.Context, tenant, id string, change func(*Endpoint) bool) (Endpoint, bool, error)
	// RequeueDeliveries puts deliveries back for the relay (req scoped to
	// a tenant and TopicWebhook) and reports how many (outbox.Requeue).
	RequeueDeliveries(ctx context.Context, req outbox.RequeueRequest, now time.Time) (int64, error)
	// FailingSince is when the endpoint's first attempt after its last
	// delivered one was made; false when its last attempt was delivered
	// or it has none.
	FailingSince(ctx context.Context, tenant, endpointID string) (time.Time, bool, error)
}

// Ledger appends to a tenant's own audit log (*domain.Service).
type Ledger interface {
	Append(ctx context.Context, c domain.Caller, in []domain.NewEntry) ([]ledger.Entry, error)
}

// Config configures outbound deliveries.
type Config struct {
	// Guard vets endpoint URLs, which tenants choose, at registration and
	// on every connection of a delivery (nil: the zero Guard, no exceptions).
	Guard *netguard.Guard
	// Timeout bounds one delivery (netguard's default when 0).
	Timeout time.Duration
	// MaxAttempts is the outbox relay's: an attempt failing at it is
	// recorded as dead.
	MaxAttempts int
	// MaxEndpoints caps a tenant's active endpoints, and so the deliveries
	// one entry fans out to (DefaultMaxEndpoints when 0).
	MaxEndpoints int
	// AutoDisableAfter disables an endpoint whose every delivery attempt
	// failed for this long (0: never), noting it in the tenant's log
	// through Ledger.
	AutoDisableAfter time.Duration
	Ledger           Ledger
	// Hooks hear of what happened, for metrics and the relay.
	Hooks Hooks
	// TenantActive says whether a tenant's deliveries go out; a suspended
	// tenant's wait (see PausedRecheck) without using up attempts, and go
	// once it is resumed (nil: always).
	TenantActive func(ctx context.Context, tenant string) bool
	Now          func() time.Time // time.Now when nil
}

// PausedRecheck is how long a suspended tenant's delivery waits before the
// relay looks at it again: at most this (plus a relay poll) after a
// resumption, its webhooks flow again.
const PausedRecheck = 5 * time.Second

// Hooks are called after the events they name; nil ones are skipped.
type Hooks struct {
	// Attempted: a delivery attempt was recorded with this outcome
	// (OutcomeDelivered, OutcomeFailed or OutcomeDead).
	Attempted func(outcome string)
	// Posted: a POST to a receiver ended, delivered (2xx) or failed (any
	// other answer, or none), after this long: the receiver's latency.
	Posted func(outcome string, took time.Duration)
	// Requeued: deliveries were put back in the outbox (wake the relay).
	Requeued func()
	// AutoDisabled: an endpoint was disabled because its deliveries kept
	// failing.
	AutoDisabled func()
}

func (h Hooks) attempted(outcome string) {
	if h.Attempted != nil {
		h.Attempted(outcome)
	}
}

func (h Hooks) posted(outcome string, took time.Duration) {
	if h.Posted != nil {
		h.Posted(outcome, took)
	}
}

func (h Hooks) requeued() {
	if h.Requeued != nil {
		h.Requeued()
	}
}

func (h Hooks) autoDisabled() {
	if h.AutoDisabled != nil {
		h.AutoDisabled()
	}
}

// Service manages endpoints and delivers to them.
type Service struct {
	store  Store
	cfg    Config
	client *http.Client // made from cfg.Guard, so no delivery goes out unguarded
}

// NewService returns a Service.
func NewService(st Store, cfg Config) (*Service, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Guard == nil {
		cfg.Guard = &netguard.Guard{}
	}
	if cfg.MaxEndpoints == 0 {
		cfg.MaxEndpoints = DefaultMaxEndpoints
	}
	if cfg.MaxEndpoints < 1 || cfg.MaxEndpoints > limitMaxEndpoints {
		return nil, fmt.Errorf("max endpoints: want 1 to %d, got %d", limitMaxEndpoints, cfg.MaxEndpoints)
	}
	if cfg.AutoDisableAfter < 0 || (cfg.AutoDisableAfter > 0 && cfg.Ledger == nil) {
		return nil, errors.New("auto-disable: want a duration >= 0, and a ledger to note it in")
	}
	return &Service{store: st, cfg: cfg, client: cfg.Guard.Client(cfg.Timeout)}, nil
}

// Deliver is the outbox publisher of TopicWebhook: it POSTs one delivery,
// signed with Standard Webhooks headers whose webhook-id is the event id
// (stable across retries, so receivers deduplicate), and records the
// attempt. A non-2xx answer or no answer is a failure for the relay to
// retry with backoff; a deleted endpoint is dropped.
func (s *Service) Deliver(ctx context.Context, ev outbox.Event) error {
	var d delivery
	if err := json.Unmarshal(ev.Payload, &d); err != nil {
		return fmt.Errorf("%w: delivery %s: %v", outbox.ErrPermanent, ev.ID, err)
	}
	ep, ok, err := s.store.Endpoint(ctx, ev.TenantID, d.EndpointID)
	if err != nil {
		return err
	}
	a := Attempt{DeliveryID: ev.ID, EndpointID: d.EndpointID, Seq: d.Seq, At: s.cfg.Now().UTC().Truncate(time.Microsecond)}
	var parked string
	switch {
	case !ok || !ep.Deleted.IsZero():
		parked = errDeleted
	case !ep.Disabled.IsZero():
		// Parked as dead: EnableEndpoint sends it again.
		parked = errDisabled
	}
	if parked != "" {
		a.Outcome, a.Error = OutcomeDead, parked
		if _, err := s.store.RecordAttempt(ctx, ev.TenantID, a, s.cfg.MaxAttempts); err != nil {
			return err
		}
		s.cfg.Hooks.attempted(a.Outcome)
		return fmt.Errorf("%w: %s %s", outbox.ErrPermanent, parked, d.EndpointID)
	}
	// A paused tenant's deliveries to a live endpoint wait; those to an
	// endpoint that is gone are parked above whatever the tenant's state,
	// so an erased tenant's outbox drains.
	if s.cfg.TenantActive != nil && !s.cfg.TenantActive(ctx, ev.TenantID) {
		return outbox.Defer(PausedRecheck, "tenant suspended")
	}
	start := time.Now()
	a.StatusCode, err = s.post(ctx, ep, ev.ID, d.Body)
	took := time.Since(start)
	a.Outcome = OutcomeDelivered
	if err != nil {
		a.Outcome, a.Error = OutcomeFailed, attemptError(a.StatusCode, err)
	}
	s.cfg.Hooks.posted(a.Outcome, took)
	recorded, rerr := s.store.RecordAttempt(ctx, ev.TenantID, a, s.cfg.MaxAttempts)
	if rerr != nil {
		return errors.Join(err, rerr)
	}
	s.cfg.Hooks.attempted(recorded.Outcome)
	if err != nil {
		if derr := s.autoDisable(ctx, ev.TenantID, ep.ID); derr != nil {
			return errors.Join(err, derr)
		}
	}
	return err
}

func (s *Service) post(ctx context.Context, ep Endpoint, id string, body []byte) (int, error) {
	now := s.cfg.Now()
	secrets := []string{ep.Secret}
	if ep.PrevSecret != "" && now.Before(ep.PrevUntil) {
		secrets = append(secrets, ep.PrevSecret)
	}
	h, err := webhook.SignAll(secrets, id, now, body)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "echopilot-audit")
	h.Set(req.Header)
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("receiver answered %d", resp.StatusCode)
	}
	return resp.StatusCode, nil
}

// CreateEndpointRequest is a new endpoint: its URL and its filter.
type CreateEndpointRequest struct {
	URL string
	Filter
}

// CreateEndpoint registers an endpoint for tenant's high and critical
// entries that its filter takes; a tenant holding MaxEndpoints active ones
// gets ENDPOINT_LIMIT.
func (s *Service) CreateEndpoint(ctx context.Context, tenant string, req CreateEndpointRequest) (Endpoint, error) {
	if err := req.Filter.check(); err != nil {
		return Endpoint{}, err
	}
	u, err := s.checkEndpointURL(ctx, req.URL)
	if err != nil {
		return Endpoint{}, err
	}
	secret, err := webhook.NewSecret()
	if err != nil {
		return Endpoint{}, err
	}
	ep := Endpoint{ID: ulid.Make().String(), URL: u.String(), Secret: secret, Created: s.cfg.Now().UTC().Truncate(time.Microsecond),
		EventTypes: req.EventTypes, MinSeverity: req.MinSeverity}
	added, err := s.store.AddEndpoint(ctx, tenant, ep, s.cfg.MaxEndpoints)
	if err != nil {
		return Endpoint{}, fmt.Errorf("add endpoint: %w", err)
	}
	if !added {
		// The cap is in the message and in the ErrorInfo metadata.
		return Endpoint{}, apierr.ResourceExhausted(ReasonEndpointLimit,
			"at most %d active endpoints per tenant: delete one first", s.cfg.MaxEndpoints).
			InDomain(domain.Domain).With("limit", strconv.Itoa(s.cfg.MaxEndpoints))
	}
	return ep, nil
}

// Endpoints lists a page of tenant's active endpoints, oldest first.
func (s *Service) Endpoints(ctx context.Context, tenant string, req page.Request) ([]Endpoint, string, error) {
	return listing.ByCreated(req, tenant+"|endpoints", func(after listing.Cursor, limit int) ([]Endpoint, error) {
		return s.store.Endpoints(ctx, tenant, after, limit)
	}, func(x Endpoint) listing.Cursor { return listing.Cursor{Created: x.Created, ID: x.ID} })
}

// DeleteEndpoint stops deliveries to tenant's endpoint id.
func (s *Service) DeleteEndpoint(ctx context.Context, tenant, id string) error {
	ok, err := s.store.DeleteEndpoint(ctx, tenant, id, s.cfg.Now().UTC())
	if err != nil {
		return fmt.Errorf("delete endpoint: %w", err)
	}
	if !ok {
		return endpointNotFound(id)
	}
	return nil
}

func endpointNotFound(id string) error {
	return apierr.NotFound(ReasonEndpointNotFound, "no endpoint %q", apierr.Clip(id)).InDomain(domain.Domain)
}

// AttemptsRequest asks for a page of delivery attempts, of one endpoint
// when EndpointID is set.
type AttemptsRequest struct {
	EndpointID string
	page.Request
}

// Attempts lists tenant's delivery attempts newest first, a page at a time.
// The store pages them by offset; the token carries it, tied to the tenant
// and the endpoint asked for.
func (s *Service) Attempts(ctx context.Context, tenant string, req AttemptsRequest) ([]Attempt, string, error) {
	out, next, err := listing.ByOffset(req.Request, tenant+"|"+req.EndpointID,
		func(offset, limit int) ([]Attempt, error) {
			return s.store.Attempts(ctx, tenant, req.EndpointID, offset, limit)
		})
	if err != nil {
		return nil, "", err
	}
	for i := range out {
		out[i].Error = shownError(out[i].Error)
	}
	return out, next, nil
}

func invalid(reason, format string, args ...any) error {
	return apierr.InvalidArgument(reason, format, args...).InDomain(domain.Domain)
}
