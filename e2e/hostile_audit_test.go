package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// Audit's boundaries, attacked through the gateway with the real binaries:
// a compliance event with members the service does not know is kept, not
// refused, and its sender id makes a re-signed resend a duplicate; the
// caps on webhook secrets and endpoints hold against concurrent creators.
func TestHostileAudit(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		s := startOn(t, "optional", backend,
			"ECHOPILOT_AUDIT_MAX_WEBHOOK_SECRETS=3", "ECHOPILOT_AUDIT_MAX_ENDPOINTS=2")
		t.Run("unknown fields and sender id", func(t *testing.T) { hostileComplianceEvents(t, s) })
		t.Run("caps", func(t *testing.T) { hostileAuditCaps(t, s) })
	})
}

// complianceStandardSign is the Standard Webhooks headers of body, message id and at,
// with the default tenant's compliance secret.
func complianceStandardSign(id string, at time.Time, body []byte) map[string]string {
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(complianceSecret, "whsec_"))
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "%s.%d.%s", id, at.Unix(), body)
	return map[string]string{
		"webhook-id": id, "webhook-timestamp": fmt.Sprint(at.Unix()),
		"webhook-signature": "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil)), "X-Tenant-ID": "default",
	}
}

func hostileComplianceEvents(t *testing.T, s *suite) {
	body := []byte(`{"id":"evt_e2e_7","event_type":"crm.export","severity":"low","user":"ops@default.test",` +
		`"source":{"system":"crm","region":"eu"},"details":{"rows":3}}`)
	now := time.Now()
	signedAt := func(at time.Time, b []byte) map[string]string {
		return map[string]string{"X-EchoPilot-Signature": complianceSign(b, at), "X-Tenant-ID": "default"}
	}
	code, resp := s.post(t, "/api/compliance/webhook", body, signedAt(now, body))
	if code != http.StatusOK || resp["duplicate"] != false || dig(resp, "entry", "details", "extra", "id") != "evt_e2e_7" ||
		dig(resp, "entry", "details", "extra", "source", "system") != "crm" || dig(resp, "entry", "details", "rows") != 3.0 {
		t.Fatalf("event with unknown members = %d %v", code, resp)
	}
	// The same sender id, re-signed a second later (another replay key),
	// then under the other scheme with another body: duplicates.
	if code, resp = s.post(t, "/api/compliance/webhook", body, signedAt(now.Add(time.Second), body)); code != http.StatusOK || resp["duplicate"] != true {
		t.Fatalf("re-signed resend = %d %v", code, resp)
	}
	changed := []byte(strings.Replace(string(body), `"low"`, `"medium"`, 1))
	if code, resp = s.post(t, "/api/compliance/webhook", changed, complianceStandardSign("msg_e2e_other", now, changed)); code != http.StatusOK || resp["duplicate"] != true {
		t.Fatalf("same sender id, other scheme and body = %d %v", code, resp)
	}
	// Known members keep their types; the sender id is bounded.
	for _, bad := range []string{
		`{"event_type":["x"],"severity":"low"}`,
		`{"event_type":"x","severity":"low","id":"` + strings.Repeat("i", 256) + `"}`,
		`{"event_type":"x","severity":"low","id":"a","id":"b"}`,
	} {
		if code, resp = s.post(t, "/api/compliance/webhook", []byte(bad), signedAt(now, []byte(bad))); code != http.StatusBadRequest ||
			errReason(resp) != "COMPLIANCE_EVENT_INVALID" {
			t.Fatalf("%.60s… = %d %v", bad, code, resp)
		}
	}
	admin := s.token(t, "default", "admin")
	_, chain := s.call(t, "GET", "/api/audit/chain", admin, nil, "")
	entries, _ := chain["entries"].([]any)
	if chain["total"] != 1.0 || dig(chain, "verification", "valid") != true || len(entries) != 1 ||
		dig(entries[0].(map[string]any), "details", "extra", "id") != "evt_e2e_7" {
		t.Fatalf("default's log = %v", chain)
	}
}

// auditRace sends n requests at once and returns their statuses and bodies.
func auditRace(t *testing.T, s *suite, n int, method, path, token, body string) ([]int, []map[string]any) {
	codes, bodies := make([]int, n), make([]map[string]any, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			codes[i], bodies[i] = s.call(t, method, path, token, nil, body)
		})
	}
	close(start)
	wg.Wait()
	return codes, bodies
}

// auditCapped checks that exactly want of the answers are 200 and the
// others 429 with reason, naming the cap limit.
func auditCapped(t *testing.T, what string, codes []int, bodies []map[string]any, want, limit int, reason string) {
	t.Helper()
	ok := 0
	for i, code := range codes {
		switch {
		case code == http.StatusOK:
			ok++
		case code != http.StatusTooManyRequests || errReason(bodies[i]) != reason ||
			!strings.Contains(fmt.Sprint(dig(bodies[i], "error", "message")), fmt.Sprint(limit)):
			t.Fatalf("%s: %d %v, want 200 or 429 %s", what, code, bodies[i], reason)
		}
	}
	if ok != want {
		t.Fatalf("%s: %d of %d concurrent creations succeeded, want %d (cap %d)", what, ok, len(codes), want, limit)
	}
}

func hostileAuditCaps(t *testing.T, s *suite) {
	acme, globex := s.token(t, "acme", "user"), s.token(t, "globex", "user")
	codes, bodies := auditRace(t, s, 16, "POST", "/api/compliance/secrets", acme, `{}`)
	auditCapped(t, "acme's secrets", codes, bodies, 3, 3, "WEBHOOK_SECRET_LIMIT")
	// An IP literal on the public internet: registration does not call it.
	codes, bodies = auditRace(t, s, 16, "POST", "/api/audit/endpoints", acme, `{"url":"https://93.184.215.14/hook"}`)
	auditCapped(t, "acme's endpoints", codes, bodies, 2, 2, "ENDPOINT_LIMIT")
	// The caps are per tenant.
	if code, body := s.call(t, "POST", "/api/compliance/secrets", globex, nil, `{}`); code != http.StatusOK {
		t.Fatalf("globex's first secret = %d %v", code, body)
	}

	// A revoked secret frees its slot; the list pages, revoked included.
	code, page := s.call(t, "GET", "/api/compliance/secrets?page_size=2", acme, nil, "")
	secrets, _ := page["secrets"].([]any)
	tok, _ := page["next_page_token"].(string)
	if code != http.StatusOK || len(secrets) != 2 || tok == "" {
		t.Fatalf("first page of secrets = %d %v", code, page)
	}
	first := dig(secrets[0].(map[string]any), "secret_id").(string)
	if code, body := s.call(t, "POST", "/api/compliance/secrets/"+first+"/revoke", acme, nil, `{}`); code != http.StatusOK {
		t.Fatalf("revoke = %d %v", code, body)
	}
	codes, bodies = auditRace(t, s, 4, "POST", "/api/compliance/secrets", acme, `{}`)
	auditCapped(t, "acme's secrets after a revocation", codes, bodies, 1, 3, "WEBHOOK_SECRET_LIMIT")
	seen := map[any]bool{}
	for tok = ""; ; {
		code, page = s.call(t, "GET", "/api/compliance/secrets?page_size=2&page_token="+tok, acme, nil, "")
		if code != http.StatusOK {
			t.Fatalf("secrets page = %d %v", code, page)
		}
		for _, sec := range page["secrets"].([]any) {
			seen[dig(sec.(map[string]any), "secret_id")] = true
		}
		if tok, _ = page["next_page_token"].(string); tok == "" {
			break
		}
	}
	if len(seen) != 4 {
		t.Fatalf("pages listed %d secrets, want 4 (3 active, 1 revoked)", len(seen))
	}
	// Another tenant's token is refused.
	_, page = s.call(t, "GET", "/api/compliance/secrets?page_size=1", acme, nil, "")
	tok, _ = page["next_page_token"].(string)
	if code, body := s.call(t, "GET", "/api/compliance/secrets?page_token="+tok, globex, nil, ""); code != http.StatusBadRequest ||
		errReason(body) != "PAGE_TOKEN_INVALID" {
		t.Fatalf("acme's page token used by globex = %d %v", code, body)
	}
}
