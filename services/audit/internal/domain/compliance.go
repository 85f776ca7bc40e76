package domain

import (
	"context"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/services/audit/internal/ledger"
	"github.com/echopilot/echopilot/services/audit/internal/webhook"
)

// Compliance reasons.
const (
	ReasonEventInvalid       = "COMPLIANCE_EVENT_INVALID"
	ReasonSecretNotFound     = "SECRET_NOT_FOUND"
	ReasonWebhookSecretLimit = "WEBHOOK_SECRET_LIMIT"
)

// Delivery is one inbound compliance webhook.
type Delivery struct {
	TenantID string
	Payload  []byte
	Headers  webhook.Headers
}

// HandleCompliance authenticates a delivery with the tenant's active
// secrets and appends its event once: a delivery seen before (the same
// Standard Webhooks id, or the same signed time and body) is a duplicate,
// and so is an event whose id (see parseEvent) the tenant's log took in
// the last KeyRetention, however it was signed. Members of the event the
// service does not know are kept in the entry's details (see extraKey).
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
	ev, err := parseEvent(d.Payload)
	if err != nil {
		return ledger.Entry{}, false, err
	}
	if ev.Severity == "" {
		return ledger.Entry{}, false, eventInvalid("severity is required: low, medium, high or critical")
	}
	details, err := ev.entryDetails()
	if err != nil {
		return ledger.Entry{}, false, err
	}
	draft, err := s.draft(Caller{Tenant: d.TenantID}, NewEntry{EventType: ev.EventType, User: ev.User, Action: ev.Action,
		Resource: ev.Resource, Details: details, Severity: ev.Severity})
	if err != nil {
		return ledger.Entry{}, false, err
	}
	var out ledger.Entry
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	// A replay key is kept while a replay would still be fresh, except a
	// Standard Webhooks message id: senders retry a message under its id,
	// re-signed, for days. Ids are kept as long as idempotency keys, past
	// any sender's retries.
	claims := []Claim{{Key: v.ReplayKey, Until: v.KeepUntil.Add(time.Minute)}}
	if v.MessageID != "" {
		claims[0].Until = now.Add(KeyRetention)
	}
	if ev.ID != "" {
		claims = append(claims, Claim{Key: eventIDPrefix + ev.ID, Until: now.Add(KeyRetention)})
	}
	dup, err := s.store.AppendOnce(ctx, d.TenantID, claims, func(tenant string, h Head) (Batch, error) {
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

// activeSecrets are the tenant's unrevoked secrets, newest first, at most
// the cap (which also bounds the HMACs a delivery costs), and for the
// default tenant the ones configured for local runs.
func (s *Service) activeSecrets(ctx context.Context, tenant string) ([]string, error) {
	active, err := s.store.ActiveSecrets(ctx, tenant, s.cfg.MaxWebhookSecrets)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(active)+len(s.cfg.DefaultTenantSecrets))
	for _, sec := range active {
		out = append(out, sec.Value)
	}
	if tenant == identity.DefaultTenant {
		out = append(out, s.cfg.DefaultTenantSecrets...)
	}
	return out, nil
}

// CreateSecret makes a new secret for tenant and returns it with its value;
// a tenant holding MaxWebhookSecrets active ones gets WEBHOOK_SECRET_LIMIT.
func (s *Service) CreateSecret(ctx context.Context, tenant string) (Secret, error) {
	value, err := webhook.NewSecret()
	if err != nil {
		return Secret{}, err
	}
	sec := Secret{ID: ulid.Make().String(), Value: value, Created: s.cfg.Now().UTC().Truncate(time.Microsecond)}
	added, err := s.store.AddSecret(ctx, tenant, sec, s.cfg.MaxWebhookSecrets)
	if err != nil {
		return Secret{}, fmt.Errorf("add secret: %w", err)
	}
	if !added {
		return Secret{}, limitReached(ReasonWebhookSecretLimit, s.cfg.MaxWebhookSecrets,
			"at most %d active webhook secrets per tenant: revoke one first", s.cfg.MaxWebhookSecrets)
	}
	return sec, nil
}

// Secrets lists a page of tenant's secrets, revoked ones included, oldest
// first; values are never returned after creation.
func (s *Service) Secrets(ctx context.Context, tenant string, pageSize int32, token string) ([]Secret, string, error) {
	return listed(pageSize, token, tenant+"|secrets", func(after Cursor, limit int) ([]Secret, error) {
		return s.store.Secrets(ctx, tenant, after, limit)
	}, func(x Secret) Cursor { return Cursor{Created: x.Created, ID: x.ID} })
}

// RevokeSecret revokes tenant's secret id.
func (s *Service) RevokeSecret(ctx context.Context, tenant, id string) (Secret, error) {
	sec, ok, err := s.store.RevokeSecret(ctx, tenant, id, s.cfg.Now().UTC().Truncate(time.Microsecond))
	if err != nil {
		return Secret{}, fmt.Errorf("revoke secret: %w", err)
	}
	if !ok {
		return Secret{}, apierr.NotFound(ReasonSecretNotFound, "no active secret %q", apierr.Clip(id)).InDomain(Domain)
	}
	return sec, nil
}

// Hint is the end of a secret, to tell secrets apart without showing them.
func (sec Secret) Hint() string {
	if len(sec.Value) < 4 {
		return ""
	}
	return sec.Value[len(sec.Value)-4:]
}
