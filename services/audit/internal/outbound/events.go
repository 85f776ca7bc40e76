package outbound

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/echopilot/echopilot/platform/outbox"
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

// notifies reports whether an entry of severity goes to the endpoints.
func notifies(severity string) bool {
	return severity == ledger.SeverityHigh || severity == ledger.SeverityCritical
}

// Events are the outbox events of appended entries for the tenant's
// endpoints (read with loadEndpoints, only when an entry is to be
// delivered): the ledger writes them in the append's transaction
// (domain.Config.Events), and Deliver publishes them.
func Events(tenant string, entries []ledger.Entry, loadEndpoints func() ([]string, error)) ([]outbox.Event, error) {
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
