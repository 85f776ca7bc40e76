package app_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	"github.com/echopilot/echopilot/services/audit/internal/webhook"
)

// Finding 7: a signed event with members the service does not know is
// appended with them kept in its details (under "extra"), and its id makes
// a re-signed resend a duplicate, per tenant.
func TestComplianceUnknownFieldsAndSenderID(t *testing.T) {
	backends(t, func(t *testing.T, s stack) {
		acme, globex := as(t, "acme", "user"), as(t, "globex", "user")
		acmeSec, err := s.c.CreateWebhookSecret(acme, &auditv1.CreateWebhookSecretRequest{})
		if err != nil {
			t.Fatal(err)
		}
		globexSec, err := s.c.CreateWebhookSecret(globex, &auditv1.CreateWebhookSecretRequest{})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		const ev = `{"id":"evt_42","event_type":"crm.export","severity":"high","user":"ops@acme.test",` +
			`"source":{"system":"crm","region":"eu"},"schema_version":3,"details":{"rows":10}}`

		res, err := deliver(s, "acme", ev, signed(acmeSec.GetValue(), now, ev))
		if err != nil || res.GetDuplicate() {
			t.Fatalf("event with unknown members = %v, %v", res, err)
		}
		d := res.GetEntry().GetDetails().AsMap()
		extra, _ := d["extra"].(map[string]any)
		if d["rows"] != 10.0 || extra["id"] != "evt_42" || extra["schema_version"] != 3.0 ||
			extra["source"].(map[string]any)["system"] != "crm" || len(extra) != 3 || len(d) != 2 {
			t.Fatalf("details = %v", d)
		}

		// The same id again: re-signed later (a new replay key), then
		// with the other scheme and another body. Duplicates, both.
		if res, err := deliver(s, "acme", ev, signed(acmeSec.GetValue(), now.Add(2*time.Second), ev)); err != nil || !res.GetDuplicate() {
			t.Fatalf("re-signed resend = %v, %v", res, err)
		}
		changed := strings.Replace(ev, `"high"`, `"critical"`, 1)
		if res, err := deliver(s, "acme", changed, standardHeaders(t, acmeSec.GetValue(), "msg_other", now, changed)); err != nil || !res.GetDuplicate() {
			t.Fatalf("same id, other scheme and body = %v, %v", res, err)
		}
		// Another tenant's sender may use the same id.
		if res, err := deliver(s, "globex", ev, signed(globexSec.GetValue(), now, ev)); err != nil || res.GetDuplicate() {
			t.Fatalf("globex with acme's sender id = %v, %v", res, err)
		}
		// Without an id, only the replay cache applies: a re-signed resend
		// is a new event.
		noID := `{"event_type":"crm.sync","severity":"low","trace":"abc"}`
		for i := range 2 {
			if res, err := deliver(s, "acme", noID, signed(acmeSec.GetValue(), now.Add(time.Duration(i)*time.Second), noID)); err != nil || res.GetDuplicate() {
				t.Fatalf("event without id, delivery %d = %v, %v", i, res, err)
			}
		}

		// A Standard Webhooks message id is a sender id too: kept for as
		// long, since senders retry under it, re-signed, for days.
		if _, err := deliver(s, "acme", noID, standardHeaders(t, acmeSec.GetValue(), "msg_keep", now, noID)); err != nil {
			t.Fatal(err)
		}
		var keep time.Time
		if err := s.owner.QueryRowContext(t.Context(), "SELECT keep_until FROM claimed_keys WHERE tenant_id = 'acme' AND replay_key = 'swh:msg_keep'").
			Scan(&keep); err != nil || time.Until(keep) < 29*24*time.Hour {
			t.Fatalf("webhook-id kept until %v (%v), want 30 days", keep, err)
		}

		// Known members keep their types; the id is bounded.
		for _, body := range []string{
			`{"event_type":1,"severity":"low"}`,
			`{"event_type":"a","severity":"low","details":[1]}`,
			`{"event_type":"a","severity":"low","id":"` + strings.Repeat("x", 256) + `"}`,
			`{"event_type":"a","severity":"low","id":{"n":1}}`,
			`{"event_type":"a","severity":"low","x":1,"x":2}`,
		} {
			_, err := deliver(s, "acme", body, signed(acmeSec.GetValue(), now, body))
			wantErr(t, err, codes.InvalidArgument, "COMPLIANCE_EVENT_INVALID")
		}

		// The chain holds and shows the kept members.
		c := chain(t, s.c, acme)
		if c.GetTotal() != 4 || !c.GetVerification().GetValid() {
			t.Fatalf("acme's log: total %d, %v", c.GetTotal(), c.GetVerification())
		}
		if got := c.GetEntries()[0].GetDetails().AsMap()["extra"].(map[string]any)["id"]; got != "evt_42" {
			t.Fatalf("chain entry details = %v", c.GetEntries()[0].GetDetails())
		}
		if c := chain(t, s.c, globex); c.GetTotal() != 1 || !c.GetVerification().GetValid() {
			t.Fatalf("globex's log: total %d, %v", c.GetTotal(), c.GetVerification())
		}
	})
}

// standardHeaders is Standard Webhooks headers of body under message id at `at`.
func standardHeaders(t *testing.T, secret, id string, at time.Time, body string) webhook.Headers {
	t.Helper()
	h, err := webhook.Sign(secret, id, at, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return h
}
