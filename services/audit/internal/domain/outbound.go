package domain

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/netguard"
	"github.com/echopilot/echopilot/platform/outbox"
	"github.com/echopilot/echopilot/platform/page"
	"github.com/echopilot/echopilot/services/audit/internal/ledger"
	"github.com/echopilot/echopilot/services/audit/internal/webhook"
)

// TopicWebhook is the outbox topic of outbound webhook deliveries: one
// event per high or critical entry and endpoint, whose id is the
// delivery's webhook-id.
const TopicWebhook = "audit.webhook"

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

// Outbound configures outbound deliveries.
type Outbound struct {
	// Guard vets endpoint URLs, which tenants choose, at registration and
	// on every connection of a delivery (nil: the zero Guard, no exceptions).
	Guard *netguard.Guard
	// Timeout bounds one delivery (netguard's default when 0).
	Timeout time.Duration
	client  *http.Client // made from Guard by prepare
	// MaxAttempts is the outbox relay's: an attempt failing at it is
	// recorded as dead.
	MaxAttempts int
}

// delivery is the payload of a TopicWebhook event.
type delivery struct {
	EndpointID string          `json:"endpoint_id"`
	Seq        uint64          `json:"seq"`
	Body       json.RawMessage `json:"body"`
}

// notifies reports whether an entry of severity goes to the endpoints.
func notifies(severity string) bool {
	return severity == ledger.SeverityHigh || severity == ledger.SeverityCritical
}

// webhookEvents are the outbox events of entries for endpoints.
func webhookEvents(tenant string, entries []ledger.Entry, loadEndpoints func() ([]string, error)) ([]outbox.Event, error) {
	var evs []outbox.Event
	var endpoints []string
	loaded := false
	for _, e := range entries {
		if !notifies(e.Severity) {
			continue
		}
		if !loaded {
			var err error
			if endpoints, err = loadEndpoints(); err != nil {
				return nil, fmt.Errorf("endpoints: %w", err)
			}
			loaded = true
		}
		body, err := json.Marshal(map[string]any{
			"type": "audit.entry", "tenant_id": tenant,
			"entry": map[string]any{
				"seq": e.Seq, "ts": e.TS.Format(time.RFC3339Nano), "event_type": e.EventType, "user": e.User,
				"action": e.Action, "resource": e.Resource, "details": json.RawMessage(e.Details),
				"severity": e.Severity, "hash": e.Hash, "prev_hash": e.PrevHash,
			},
		})
		if err != nil {
			return nil, err
		}
		for _, ep := range endpoints {
			payload, err := json.Marshal(delivery{EndpointID: ep, Seq: e.Seq, Body: body})
			if err != nil {
				return nil, err
			}
			evs = append(evs, outbox.Event{Topic: TopicWebhook, Key: ep, TenantID: tenant, Payload: payload})
		}
	}
	return evs, nil
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
	if !ok || !ep.Deleted.IsZero() {
		a.Outcome, a.Error = OutcomeDead, errDeleted
		if _, err := s.store.RecordAttempt(ctx, ev.TenantID, a, s.cfg.Outbound.MaxAttempts); err != nil {
			return err
		}
		s.cfg.Hooks.attempted(a.Outcome)
		return fmt.Errorf("%w: endpoint %s deleted", outbox.ErrPermanent, d.EndpointID)
	}
	a.StatusCode, err = s.post(ctx, ep, ev.ID, d.Body)
	a.Outcome = OutcomeDelivered
	if err != nil {
		a.Outcome, a.Error = OutcomeFailed, attemptError(a.StatusCode, err)
	}
	recorded, rerr := s.store.RecordAttempt(ctx, ev.TenantID, a, s.cfg.Outbound.MaxAttempts)
	if rerr != nil {
		return errors.Join(err, rerr)
	}
	s.cfg.Hooks.attempted(recorded.Outcome)
	return err
}

func (s *Service) post(ctx context.Context, ep Endpoint, id string, body []byte) (int, error) {
	h, err := webhook.Sign(ep.Secret, id, s.cfg.Now(), body)
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
	resp, err := s.cfg.Outbound.client.Do(req)
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

// CreateEndpoint registers rawURL for tenant's high and critical entries.
func (s *Service) CreateEndpoint(ctx context.Context, tenant, rawURL string) (Endpoint, error) {
	u, err := s.checkEndpointURL(ctx, rawURL)
	if err != nil {
		return Endpoint{}, err
	}
	secret, err := webhook.NewSecret()
	if err != nil {
		return Endpoint{}, err
	}
	ep := Endpoint{ID: ulid.Make().String(), URL: u.String(), Secret: secret, Created: s.cfg.Now().UTC().Truncate(time.Microsecond)}
	added, err := s.store.AddEndpoint(ctx, tenant, ep, s.cfg.MaxEndpoints)
	if err != nil {
		return Endpoint{}, fmt.Errorf("add endpoint: %w", err)
	}
	if !added {
		return Endpoint{}, limitReached(ReasonEndpointLimit, s.cfg.MaxEndpoints,
			"at most %d active endpoints per tenant: delete one first", s.cfg.MaxEndpoints)
	}
	return ep, nil
}

// Endpoints lists a page of tenant's active endpoints, oldest first.
func (s *Service) Endpoints(ctx context.Context, tenant string, pageSize int32, token string) ([]Endpoint, string, error) {
	return listed(pageSize, token, tenant+"|endpoints", func(after Cursor, limit int) ([]Endpoint, error) {
		return s.store.Endpoints(ctx, tenant, after, limit)
	}, func(x Endpoint) Cursor { return Cursor{Created: x.Created, ID: x.ID} })
}

// DeleteEndpoint stops deliveries to tenant's endpoint id.
func (s *Service) DeleteEndpoint(ctx context.Context, tenant, id string) error {
	ok, err := s.store.DeleteEndpoint(ctx, tenant, id, s.cfg.Now().UTC())
	if err != nil {
		return fmt.Errorf("delete endpoint: %w", err)
	}
	if !ok {
		return apierr.NotFound(ReasonEndpointNotFound, "no endpoint %q", apierr.Clip(id)).InDomain(Domain)
	}
	return nil
}

// Attempts lists tenant's delivery attempts newest first, a page at a time.
func (s *Service) Attempts(ctx context.Context, tenant, endpointID string, pageSize int32, token string) ([]Attempt, string, error) {
	size, err := page.Size(pageSize, defaultPage, maxPage)
	if err != nil {
		return nil, "", err
	}
	scope := tenant + "|" + endpointID
	offset := 0
	if token != "" {
		after, err := page.Decode(token, scope)
		if err != nil {
			return nil, "", err
		}
		if _, err := fmt.Sscan(after, &offset); err != nil || offset < 0 {
			return nil, "", apierr.InvalidArgument(page.ReasonPageTokenInvalid, "page_token is not a token this API issued")
		}
	}
	out, err := s.store.Attempts(ctx, tenant, endpointID, offset, size)
	if err != nil {
		return nil, "", err
	}
	for i := range out {
		out[i].Error = shownError(out[i].Error)
	}
	next := ""
	if len(out) == size {
		next = page.Encode(fmt.Sprint(offset+size), scope)
	}
	return out, next, nil
}
