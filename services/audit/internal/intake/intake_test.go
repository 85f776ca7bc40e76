package intake

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/services/audit/internal/domain"
	"github.com/echopilot/echopilot/services/audit/internal/ledger"
	"github.com/echopilot/echopilot/services/audit/internal/listing"
	"github.com/echopilot/echopilot/services/audit/internal/webhook"
)

// secrets is a Store holding the active secrets of one tenant.
type secrets struct {
	tenant string
	values []string
}

func (s secrets) AddSecret(context.Context, string, Secret, int) (bool, error) { return false, nil }
func (s secrets) Secrets(context.Context, string, listing.Cursor, int) ([]Secret, error) {
	return nil, nil
}
func (s secrets) RevokeSecret(context.Context, string, string, time.Time) (Secret, bool, error) {
	return Secret{}, false, nil
}
func (s secrets) ActiveSecrets(_ context.Context, tenant string, limit int) ([]Secret, error) {
	var out []Secret
	for _, v := range s.values {
		if tenant == s.tenant && len(out) < limit {
			out = append(out, Secret{ID: v, Value: v})
		}
	}
	return out, nil
}

// appends is a Ledger that records what it is asked to append; a claim it
// saw before makes a duplicate.
type appends struct {
	tenants []string
	claims  [][]domain.Claim
	entries []domain.NewEntry
	seen    map[string]bool
}

func (a *appends) AppendOnce(_ context.Context, tenant string, claims []domain.Claim, n domain.NewEntry) (ledger.Entry, bool, error) {
	a.tenants, a.claims, a.entries = append(a.tenants, tenant), append(a.claims, claims), append(a.entries, n)
	dup := false
	for _, c := range claims {
		dup = dup || a.seen[tenant+c.Key]
		a.seen[tenant+c.Key] = true
	}
	return ledger.Entry{TenantID: tenant, EventType: n.EventType}, dup, nil
}

// A delivery signed with one of the tenant's secrets is appended through
// the ledger once, claiming its message id and its event id for
// domain.KeyRetention; its resend under another message id is a duplicate
// by the event id.
func TestComplianceGoesThroughTheLedger(t *testing.T) {
	secret, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0).UTC()
	l := &appends{seen: map[string]bool{}}
	svc, err := NewService(secrets{tenant: "acme", values: []string{secret}}, l,
		Config{Webhooks: webhook.Verifier{Now: func() time.Time { return now }}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"id":"evt_1","event_type":"gdpr.request","severity":"high","user":"dpo"}`)
	deliver := func(tenant, msgID, key string) (bool, error) {
		h, err := webhook.Sign(key, msgID, now, body)
		if err != nil {
			t.Fatal(err)
		}
		_, dup, err := svc.HandleCompliance(t.Context(), Delivery{TenantID: tenant, Payload: body, Headers: h})
		return dup, err
	}
	if dup, err := deliver("acme", "msg_1", secret); dup || err != nil {
		t.Fatalf("first delivery: duplicate %v, %v", dup, err)
	}
	until := now.Add(domain.KeyRetention)
	if want := []domain.Claim{{Key: "swh:msg_1", Until: until}, {Key: "evt:evt_1", Until: until}}; !slices.Equal(l.claims[0], want) {
		t.Fatalf("claims %v, want %v", l.claims[0], want)
	}
	if n := l.entries[0]; l.tenants[0] != "acme" || n.TenantID != "" || n.EventType != "gdpr.request" || n.Severity != "high" || n.User != "dpo" {
		t.Fatalf("appended %q %+v", l.tenants[0], n)
	}
	if dup, err := deliver("acme", "msg_2", secret); !dup || err != nil {
		t.Fatalf("resend under another message id: duplicate %v, %v", dup, err)
	}
	// Another tenant's secret, or none, is refused before the ledger.
	for _, tenant := range []string{"globex", identity.DefaultTenant, "not a tenant!"} {
		if _, err := deliver(tenant, "msg_3", secret); apierr.Reason(err) == "" {
			t.Errorf("%s: %v, want a refusal", tenant, err)
		}
	}
	if len(l.entries) != 2 {
		t.Fatalf("%d appends, want 2", len(l.entries))
	}
}

func TestSecretCapIsChecked(t *testing.T) {
	for _, n := range []int{-1, limitMaxWebhookSecrets + 1} {
		if _, err := NewService(secrets{}, &appends{}, Config{MaxWebhookSecrets: n}); err == nil {
			t.Errorf("max webhook secrets %d accepted", n)
		}
	}
}
