package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/store/storetest"
)

// The seed's PHASE 118 gate: three events appended come back chained with
// verification.valid true; after a direct database edit the chain is
// reported invalid, naming the entry.
func TestAuditGate(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		s := startOn(t, "optional", backend)
		user := s.token(t, "acme", "user")
		for _, ev := range []string{
			`{"entries":[{"event_type":"user.login","user":"alice@acme.test","action":"login","resource":"console","severity":"low"}]}`,
			`{"entries":[{"event_type":"data.export","user":"alice@acme.test","action":"export","resource":"reports/q3","details":{"rows":1200},"severity":"high"}]}`,
			`{"entries":[{"event_type":"policy.change","user":"bob@acme.test","action":"update","resource":"retention","severity":"critical"}]}`,
		} {
			if code, body := s.call(t, "POST", "/api/audit/entries", user, nil, ev); code != http.StatusOK {
				t.Fatalf("append = %d %v", code, body)
			}
		}
		code, body := s.call(t, "GET", "/api/audit/chain?limit=10&offset=0", user, nil, "")
		entries, _ := body["entries"].([]any)
		if code != http.StatusOK || body["ok"] != true || body["total"] != 3.0 || len(entries) != 3 ||
			dig(body, "verification", "valid") != true || dig(body, "verification", "entries") != 3.0 {
			t.Fatalf("chain = %d %v", code, body)
		}
		first, second := entries[0].(map[string]any), entries[1].(map[string]any)
		if first["prev_hash"] != "genesis" || second["prev_hash"] != first["hash"] || first["seq"] != 1.0 ||
			dig(second, "details", "rows") != 1200.0 {
			t.Fatalf("entries are not chained: %v", entries)
		}

		owner := storetest.Open(t, s.ownerURL["audit"])
		if _, err := owner.ExecContext(t.Context(), "UPDATE audit_entries SET resource = 'reports/q4' WHERE tenant_id = 'acme' AND seq = 2"); err != nil {
			t.Fatal(err)
		}
		_, body = s.call(t, "GET", "/api/audit/chain", user, nil, "")
		if dig(body, "verification", "valid") != false || dig(body, "verification", "first_invalid_seq") != 2.0 {
			t.Fatalf("after the edit: %v", body["verification"])
		}
	})
}

// A compliance webhook signed with the default tenant's secret lands in its
// log once; a replay is acknowledged as a duplicate; a bad signature is a
// 401 with a reason.
func TestComplianceWebhookThroughGateway(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		complianceWebhookThroughGateway(t, startOn(t, "optional", backend))
	})
}

// complianceSign is the X-EchoPilot-Signature of body at `at` with the
// default tenant's secret.
func complianceSign(body []byte, at time.Time) string {
	m := hmac.New(sha256.New, []byte(complianceSecret))
	fmt.Fprintf(m, "%d.%s", at.Unix(), body)
	return fmt.Sprintf("t=%d,v1=%s", at.Unix(), hex.EncodeToString(m.Sum(nil)))
}

func complianceWebhookThroughGateway(t *testing.T, s *suite) {
	body := []byte(`{"event_type":"policy.violation","severity":"high","user":"scanner","action":"detect","resource":"bucket/public"}`)
	sig := complianceSign(body, time.Now())
	headers := map[string]string{"X-EchoPilot-Signature": sig, "X-Tenant-ID": "default"}
	code, resp := s.post(t, "/api/compliance/webhook", body, headers)
	if code != http.StatusOK || resp["duplicate"] != false || dig(resp, "entry", "severity") != "high" {
		t.Fatalf("webhook = %d %v", code, resp)
	}
	if code, resp = s.post(t, "/api/compliance/webhook", body, headers); code != http.StatusOK || resp["duplicate"] != true {
		t.Fatalf("replay = %d %v", code, resp)
	}
	flipped := "0"
	if sig[len(sig)-1] == '0' {
		flipped = "1"
	}
	headers["X-EchoPilot-Signature"] = sig[:len(sig)-1] + flipped
	if code, resp = s.post(t, "/api/compliance/webhook", body, headers); code != http.StatusUnauthorized || errReason(resp) != "SIGNATURE_INVALID" {
		t.Fatalf("bad signature = %d %v", code, resp)
	}
	admin := s.token(t, "default", "admin")
	if _, chain := s.call(t, "GET", "/api/audit/chain", admin, nil, ""); chain["total"] != 1.0 || dig(chain, "verification", "valid") != true {
		t.Fatalf("default's log = %v", chain)
	}
}

// Outbound webhooks survive a flaky receiver and a killed service: 30 % of
// deliveries fail, audit is killed with SIGKILL while deliveries are in
// flight and started again; every high or critical entry arrives at least
// once, under one stable webhook-id each, and none is lost.
func TestOutboundDeliveryFaults(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		outboundDeliveryFaults(t, startOn(t, "optional", backend, allowLoopbackReceivers))
	})
}

func outboundDeliveryFaults(t *testing.T, s *suite) {
	var mu sync.Mutex
	got := map[string]map[string]bool{} // entry hash → webhook-ids seen
	calls := 0
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var d struct {
			Entry struct {
				Hash string `json:"hash"`
			} `json:"entry"`
		}
		if err := json.NewDecoder(r.Body).Decode(&d); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls%10 < 3 { // 30 % fail
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		if got[d.Entry.Hash] == nil {
			got[d.Entry.Hash] = map[string]bool{}
		}
		got[d.Entry.Hash][r.Header.Get("webhook-id")] = true
	}))
	defer rcv.Close()
	user := s.token(t, "acme", "user")
	if code, body := s.call(t, "POST", "/api/audit/endpoints", user, nil, fmt.Sprintf(`{"url":%q}`, rcv.URL)); code != http.StatusOK {
		t.Fatalf("endpoint = %d %v", code, body)
	}
	const n = 40
	var want []string
	appendOne := func(i int) {
		sev := []string{"high", "critical", "low"}[i%3]
		code, body := s.call(t, "POST", "/api/audit/entries", user, nil,
			fmt.Sprintf(`{"entries":[{"event_type":"e2e.fault","action":"a%d","severity":%q}]}`, i, sev))
		if code != http.StatusOK {
			t.Fatalf("append %d = %d %v", i, code, body)
		}
		if sev != "low" {
			want = append(want, dig(body["entries"].([]any)[0].(map[string]any), "hash").(string))
		}
	}
	for i := range n / 2 {
		appendOne(i)
	}
	s.Procs["audit"].Kill()
	if err := s.Restart(t.Context(), "audit"); err != nil {
		t.Fatal(err)
	}
	for i := n / 2; i < n; i++ {
		appendOne(i)
	}
	waitFor(t, 90*time.Second, "every high and critical entry delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, h := range want {
			if len(got[h]) == 0 {
				return false
			}
		}
		return true
	})
	mu.Lock()
	defer mu.Unlock()
	for _, h := range want {
		if len(got[h]) != 1 {
			t.Errorf("entry %s arrived under %d webhook-ids, want one stable id", h, len(got[h]))
		}
	}
	if len(got) != len(want) {
		t.Errorf("receiver got %d entries, want %d (low severity is not delivered)", len(got), len(want))
	}
}
