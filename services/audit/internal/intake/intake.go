// Package intake takes inbound compliance webhooks into tenants' audit
// logs and keeps the secrets they are signed with.
//
// It is a package of its own beside the ledger (domain) so that changing a
// webhook secret means reading this package only: it reaches its own store
// port (Store, the secrets) and appends through the ledger's AppendOnce
// (Ledger), never the ledger's store.
package intake

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/page"
	"github.com/echopilot/echopilot/services/audit/internal/domain"
	"github.com/echopilot/echopilot/services/audit/internal/ledger"
	"github.com/echopilot/echopilot/services/audit/internal/listing"
	"github.com/echopilot/echopilot/services/audit/internal/webhook"
)

// Compliance reasons.
const (
	ReasonEventInvalid       = "COMPLIANCE_EVENT_INVALID"
	ReasonSecretNotFound     = "SECRET_NOT_FOUND"
	ReasonWebhookSecretLimit = "WEBHOOK_SECRET_LIMIT"
)

// Caps on a tenant's active webhook secrets: the default, and the most an
// operator may configure (each active secret costs every delivery an HMAC).
const (
	DefaultMaxWebhookSecrets = 10
	limitMaxWebhookSecrets   = 100
)

// Secret is a webhook signing secret.
type Secret struct {
	ID      string
	Value   string
	Created time.Time
	Revoked time.Time // zero while active
}

// Store keeps the tenants' webhook secrets.
type Store interface {
	// AddSecret stores a new webhook secret of tenant unless tenant already
	// has limit active ones (then false). Counting and inserting are one
	// step per tenant: concurrent calls, on one replica or several, never
	// leave more than limit active.
	AddSecret(ctx context.Context, tenant string, s Secret, limit int) (bool, error)
	// Secrets lists up to limit of tenant's secrets, revoked ones included,
	// in (Created, ID) order after the cursor.
	Secrets(ctx context.Context, tenant string, after listing.Cursor, limit int) ([]Secret, error)
	// ActiveSecrets lists up to limit of tenant's unrevoked secrets, newest
	// first.
	ActiveSecrets(ctx context.Context, tenant string, limit int) ([]Secret, error)
	// RevokeSecret revokes an active secret and returns it revoked; false
	// when there is none by id.
	RevokeSecret(ctx context.Context, tenant, id string, at time.Time) (Secret, bool, error)
}

// Ledger appends an event's entry (*domain.Service).
type Ledger interface {
	// AppendOnce appends n to tenant's log unless one of claims was claimed
	// there before; it reports such a duplicate.
	AppendOnce(ctx context.Context, tenant string, claims []domain.Claim, n domain.NewEntry) (ledger.Entry, bool, error)
}

// Config is what intake needs besides its store and the ledger.
type Config struct {
	// Webhooks verifies the deliveries.
	Webhooks webhook.Verifier
	// DefaultTenantSecrets verify the default tenant's webhooks besides its
	// stored secrets (ECHOPILOT_COMPLIANCE_WEBHOOK_SECRET, for local runs).
	DefaultTenantSecrets []string
	// MaxWebhookSecrets caps a tenant's active webhook secrets, and so the
	// secrets a delivery is checked against (DefaultMaxWebhookSecrets when
	// 0).
	MaxWebhookSecrets int
	Now               func() time.Time // time.Now when nil
}

// Service takes compliance webhooks in and manages their secrets.
type Service struct {
	store  Store
	ledger Ledger
	cfg    Config
}

// NewService returns a Service.
func NewService(st Store, l Ledger, cfg Config) (*Service, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxWebhookSecrets == 0 {
		cfg.MaxWebhookSecrets = DefaultMaxWebhookSecrets
	}
	if cfg.MaxWebhookSecrets < 1 || cfg.MaxWebhookSecrets > limitMaxWebhookSecrets {
		return nil, fmt.Errorf("max webhook secrets: want 1 to %d, got %d", limitMaxWebhookSecrets, cfg.MaxWebhookSecrets)
	}
	return &Service{store: st, ledger: l, cfg: cfg}, nil
}

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
// the last domain.KeyRetention, however it was signed. Members of the event
// the service does not know are kept in the entry's details (see
// extraKey).
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
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	// A replay key is kept while a replay would still be fresh, except a
	// Standard Webhooks message id: senders retry a message under its id,
	// re-signed, for days. Ids are kept as long as idempotency keys, past
	// any sender's retries.
	claims := []domain.Claim{{Key: v.ReplayKey, Until: v.KeepUntil.Add(time.Minute)}}
	if v.MessageID != "" {
		claims[0].Until = now.Add(domain.KeyRetention)
	}
	if ev.ID != "" {
		claims = append(claims, domain.Claim{Key: eventIDPrefix + ev.ID, Until: now.Add(domain.KeyRetention)})
	}
	return s.ledger.AppendOnce(ctx, d.TenantID, claims, domain.NewEntry{EventType: ev.EventType, User: ev.User,
		Action: ev.Action, Resource: ev.Resource, Details: details, Severity: ev.Severity})
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
		// The cap is in the message and in the ErrorInfo metadata.
		return Secret{}, apierr.ResourceExhausted(ReasonWebhookSecretLimit,
			"at most %d active webhook secrets per tenant: revoke one first", s.cfg.MaxWebhookSecrets).
			InDomain(domain.Domain).With("limit", strconv.Itoa(s.cfg.MaxWebhookSecrets))
	}
	return sec, nil
}

// Secrets lists a page of tenant's secrets, revoked ones included, oldest
// first; values are never returned after creation.
func (s *Service) Secrets(ctx context.Context, tenant string, req page.Request) ([]Secret, string, error) {
	return listing.ByCreated(req, tenant+"|secrets", func(after listing.Cursor, limit int) ([]Secret, error) {
		return s.store.Secrets(ctx, tenant, after, limit)
	}, func(x Secret) listing.Cursor { return listing.Cursor{Created: x.Created, ID: x.ID} })
}

// RevokeSecret revokes tenant's secret id.
func (s *Service) RevokeSecret(ctx context.Context, tenant, id string) (Secret, error) {
	sec, ok, err := s.store.RevokeSecret(ctx, tenant, id, s.cfg.Now().UTC().Truncate(time.Microsecond))
	if err != nil {
		return Secret{}, fmt.Errorf("revoke secret: %w", err)
	}
	if !ok {
		return Secret{}, apierr.NotFound(ReasonSecretNotFound, "no active secret %q", apierr.Clip(id)).InDomain(domain.Domain)
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
