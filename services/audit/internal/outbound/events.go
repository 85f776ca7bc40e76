package outbound

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/echopilot/echopilot/platform/outbox"
	"github.com/echopilot/echopilot/services/audit/internal/domain"
	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

// TopicWebhook is the outbox topic of outbound webhook deliveries: one
// event per high or critical entry and endpoint, whose id is the
// delivery's webhook-id.
const TopicWebhook = "audit.webhook"

// delivery is the payload of a TopicWebhook event.
type delivery struct {
	EndpointID string          `json:"endpoint_id"`
	Seq        uint64          `json:"seq"`
	Body       json.RawMessage `json:"body"`
}

// notifies reports whether an entry of severity goes to the endpoints at
// all: only high and critical entries do.
func notifies(severity string) bool {
	return severity == ledger.SeverityHigh || severity == ledger.SeverityCritical
}

// wants reports whether endpoint r takes entry e: e's severity is at least
// r's minimum (high by default) and its event type is one r lists, when it
// lists any.
func wants(r domain.Route, e ledger.Entry) bool {
	if r.MinSeverity == ledger.SeverityCritical && e.Severity != ledger.SeverityCritical {
		return false
	}
	return len(r.EventTypes) == 0 || slices.Contains(r.EventTypes, e.EventType)
}

// Events are the outbox events of appended entries for the tenant's
// enabled endpoints whose filter takes them (read with loadEndpoints, only
// when an entry is to be delivered): the ledger writes them in the
// append's transaction (domain.Config.Events), and Deliver publishes them.
func Events(tenant string, entries []ledger.Entry, loadEndpoints func() ([]domain.Route, error)) ([]outbox.Event, error) {
	var evs []outbox.Event
	var endpoints []domain.Route
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
		var body []byte
		for _, ep := range endpoints {
			if !wants(ep, e) {
				continue
			}
			if body == nil {
				var err error
				if body, err = entryBody(tenant, e); err != nil {
					return nil, err
				}
			}
			payload, err := json.Marshal(delivery{EndpointID: ep.ID, Seq: e.Seq, Body: body})
			if err != nil {
				return nil, err
			}
			evs = append(evs, outbox.Event{Topic: TopicWebhook, Key: ep.ID, TenantID: tenant, Payload: payload})
		}
	}
	return evs, nil
}

// entryBody is the JSON body delivered for entry e.
func entryBody(tenant string, e ledger.Entry) ([]byte, error) {
	return json.Marshal(map[string]any{
		"type": "audit.entry", "tenant_id": tenant,
		"entry": map[string]any{
			"seq": e.Seq, "ts": e.TS.Format(time.RFC3339Nano), "event_type": e.EventType, "user": e.User,
			"action": e.Action, "resource": e.Resource, "details": json.RawMessage(e.Details),
			"severity": e.Severity, "hash": e.Hash, "prev_hash": e.PrevHash,
		},
	})
}
