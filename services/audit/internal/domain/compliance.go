package domain

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/services/audit/internal/ledger"
	"github.com/echopilot/echopilot/services/audit/internal/webhook"
)

// Compliance reasons.
const (
	ReasonEventInvalid   = "COMPLIANCE_EVENT_INVALID"
	ReasonSecretNotFound = "SECRET_NOT_FOUND"
	// maxActiveSecrets bounds the secrets tried per delivery.
	maxActiveSecrets = 10
)

// complianceEvent is the body of a compliance webhook.
type complianceEvent struct {
	EventType string          `json:"event_type"`
	Severity  string          `json:"severity"`
	User      string          `json:"user"`
	Action    string          `json:"action"`
	Resource  string          `json:"resource"`
	Details   json.RawMessage `json:"details"`
}

// Delivery is one inbound compliance webhook.
type Delivery struct {
	TenantID string
	Payload  []byte
	Headers  webhook.Headers
}

// HandleCompliance authenticates a delivery with the tenant's active
// secrets and appends its event once: a delivery seen before (the same
// Standard Webhooks id, or the same signed time and body) is a duplicate.
func (s *Service) HandleCompliance(ctx context.Context, d Delivery) (ledger.Entry, bool, error) {
	if !identity.ValidTenant(d.TenantID) {
		// Indistinguishable from a wrong signature: probing tenant ids
		// must not tell which exist.
		_, err := s.cfg.Webhooks.Verify(d.Payload, d.Headers, nil)
		return ledger.Entry{}, false, err
	}
	secrets, err := s.activeSecrets(ctx, d.TenantID)
	if err != nil {
		return ledger.Entry{}, false, err
	}
	v, err := s.cfg.Webhooks.Verify(d.Payload, d.Headers, secrets)
	if err != nil {
		return ledger.Entry{}, false, err
	}
	var ev complianceEvent
	dec := json.NewDecoder(bytes.NewReader(d.Payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil || dec.More() {
		if err == nil {
			err = errors.New("data after the event")
		}
		return ledger.Entry{}, false, apierr.InvalidArgument(ReasonEventInvalid, "the body is not a compliance event: %v", err).InDomain(Domain)
	}
	if ev.Severity == "" {
		return ledger.Entry{}, false, apierr.InvalidArgument(ReasonEventInvalid, "severity is required: low, medium, high or critical").InDomain(Domain)
	}
	draft, err := s.draft(Caller{Tenant: d.TenantID}, NewEntry{EventType: ev.EventType, User: ev.User, Action: ev.Action,
		Resource: ev.Resource, Details: ev.Details, Severity: ev.Severity})
	if err != nil {
		return ledger.Entry{}, false, err
	}
	var out ledger.Entry
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	dup, err := s.store.AppendOnce(ctx, d.TenantID, v.ReplayKey, v.KeepUntil.Add(time.Minute), func(tenant string, h Head) (Batch, error) {
		b, err := s.build(tenant, h, now, []ledger.Draft{draft}, []int{0})
		if err == nil {
			out = b.Entries[0]
		}
		return b, err
	})
	if err != nil {
		return ledger.Entry{}, false, err
	}
	if !dup {
		s.cfg.Hooks.appended(1)
	}
	return out, dup, nil
}

// activeSecrets are the tenant's unrevoked secrets, newest first, and for
// the default tenant the one configured for local runs.
func (s *Service) activeSecrets(ctx context.Context, tenant string) ([]string, error) {
	all, err := s.store.Secrets(ctx, tenant)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, sec := range slices.Backward(all) {
		if sec.Revoked.IsZero() && len(out) < maxActiveSecrets {
			out = append(out, sec.Value)
		}
	}
	if tenant == identity.DefaultTenant {
		out = append(out, s.cfg.DefaultTenantSecrets...)
	}
	return out, nil
}

// CreateSecret makes a new secret for tenant and returns it with its value.
func (s *Service) CreateSecret(ctx context.Context, tenant string) (Secret, error) {
	value, err := webhook.NewSecret()
	if err != nil {
		return Secret{}, err
	}
	sec := Secret{ID: ulid.Make().String(), Value: value, Created: s.cfg.Now().UTC().Truncate(time.Microsecond)}
	if err := s.store.AddSecret(ctx, tenant, sec); err != nil {
		return Secret{}, fmt.Errorf("add secret: %w", err)
	}
	return sec, nil
}

// Secrets lists tenant's secrets; values are never returned after creation.
func (s *Service) Secrets(ctx context.Context, tenant string) ([]Secret, error) {
	return s.store.Secrets(ctx, tenant)
}

// RevokeSecret revokes tenant's secret id.
func (s *Service) RevokeSecret(ctx context.Context, tenant, id string) (Secret, error) {
	ok, err := s.store.RevokeSecret(ctx, tenant, id, s.cfg.Now().UTC().Truncate(time.Microsecond))
	if err != nil {
		return Secret{}, fmt.Errorf("revoke secret: %w", err)
	}
	if !ok {
		return Secret{}, apierr.NotFound(ReasonSecretNotFound, "no active secret %q", apierr.Clip(id)).InDomain(Domain)
	}
	all, err := s.store.Secrets(ctx, tenant)
	if err != nil {
		return Secret{}, err
	}
	for _, sec := range all {
		if sec.ID == id {
			return sec, nil
		}
	}
	return Secret{}, apierr.NotFound(ReasonSecretNotFound, "no secret %q", apierr.Clip(id)).InDomain(Domain)
}

// Hint is the end of a secret, to tell secrets apart without showing them.
func (sec Secret) Hint() string {
	if len(sec.Value) < 4 {
		return ""
	}
	return sec.Value[len(sec.Value)-4:]
}
