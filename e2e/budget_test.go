package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// Budgets over REST: a tenant admin sets its own, a user or another
// tenant's admin cannot; the platform admin's budget covers every tenant,
// whose rate card alone crosses a budget of one micro-dollar, so the
// background evaluator records the actual and forecast crossings once,
// listed to the platform and not to a tenant, and each becomes one entry
// of the platform's audit log and one delivery to its webhook endpoint.
func TestBudgetsOverREST(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		s := startOn(t, "required", backend, "ECHOPILOT_FINOPS_ALERT_INTERVAL=100ms", allowLoopbackReceivers)
		admin, acmeAdmin, acmeUser := s.token(t, "default", "admin"), s.token(t, "acme", "admin"), s.token(t, "acme", "user")
		var mu sync.Mutex
		delivered := map[string]string{} // entry hash → its severity
		rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var d struct {
				Entry struct {
					Hash      string `json:"hash"`
					EventType string `json:"event_type"`
					Severity  string `json:"severity"`
				} `json:"entry"`
			}
			if err := json.NewDecoder(r.Body).Decode(&d); err != nil || d.Entry.EventType != "finops.alert" {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			mu.Lock()
			delivered[d.Entry.Hash] = d.Entry.Severity
			mu.Unlock()
		}))
		defer rcv.Close()
		if code, body := s.call(t, "POST", "/api/audit/endpoints", admin, nil,
			fmt.Sprintf(`{"url":%q,"event_types":["finops.alert"]}`, rcv.URL)); code != http.StatusOK {
			t.Fatalf("endpoint: %d %v", code, body)
		}

		code, body := s.call(t, "PUT", "/api/finops/budget", acmeAdmin, nil, `{"amount_micros":25000000,"thresholds_pct":[80,50]}`)
		if code != http.StatusOK || dig(body, "budget", "amount") != 25.0 || dig(body, "budget", "tenant_id") != "acme" {
			t.Fatalf("set: %d %v", code, body)
		}
		if code, body = s.call(t, "GET", "/api/finops/budget", acmeUser, nil, ""); code != http.StatusOK || dig(body, "budget", "amount_micros") != 25_000_000.0 {
			t.Fatalf("get: %d %v", code, body)
		}
		if code, body = s.call(t, "PUT", "/api/finops/budget", acmeUser, nil, `{"amount_micros":1}`); code != http.StatusForbidden {
			t.Errorf("a user set a budget: %d %v", code, body)
		}
		globexAdmin := s.token(t, "globex", "admin")
		if code, body = s.call(t, "GET", "/api/finops/budget", globexAdmin, map[string]string{"X-Tenant-ID": "acme"}, ""); code != http.StatusForbidden {
			t.Errorf("globex read acme's budget: %d %v", code, body)
		}
		if code, body = s.call(t, "PUT", "/api/finops/budget", acmeAdmin, nil, `{"amount_micros":0}`); code != http.StatusBadRequest {
			t.Errorf("zero budget: %d %v", code, body)
		}

		if code, body = s.call(t, "PUT", "/api/finops/budget", admin, nil, `{"amount_micros":1,"thresholds_pct":[100]}`); code != http.StatusOK {
			t.Fatalf("platform budget: %d %v", code, body)
		}
		var alerts []any
		for deadline := time.Now().Add(20 * time.Second); len(alerts) < 2 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			_, body = s.call(t, "GET", "/api/finops/alerts", admin, nil, "")
			alerts, _ = body["alerts"].([]any)
		}
		if len(alerts) != 2 {
			t.Fatalf("platform alerts: %v", body)
		}
		time.Sleep(300 * time.Millisecond)
		if _, body = s.call(t, "GET", "/api/finops/alerts?page_size=1", admin, nil, ""); len(body["alerts"].([]any)) != 1 || body["next_page_token"] == "" {
			t.Errorf("first page: %v", body)
		}
		if _, body = s.call(t, "GET", "/api/finops/alerts", admin, nil, ""); len(body["alerts"].([]any)) != 2 {
			t.Errorf("evaluated again: %v", body)
		}
		if code, body = s.call(t, "GET", "/api/finops/alerts", acmeUser, nil, ""); code != http.StatusOK || len(body["alerts"].([]any)) != 0 {
			t.Errorf("acme sees: %d %v", code, body)
		}

		// Each alert reaches the platform's audit log once, through
		// finops's outbox.
		var entries []any
		for deadline := time.Now().Add(20 * time.Second); len(entries) < 2 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			_, body = s.call(t, "GET", "/api/audit/chain?event_type=finops.alert", admin, nil, "")
			entries, _ = body["entries"].([]any)
		}
		time.Sleep(300 * time.Millisecond)
		if _, body = s.call(t, "GET", "/api/audit/chain?event_type=finops.alert", admin, nil, ""); len(body["entries"].([]any)) != 2 {
			t.Errorf("audit entries: %v", body)
		}
		// And each reaches the platform's endpoint: actual spend past 100 %
		// is critical, the forecast's crossing high.
		var got map[string]string
		for deadline := time.Now().Add(20 * time.Second); len(got) < 2 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			mu.Lock()
			got = map[string]string{}
			for h, sev := range delivered {
				got[h] = sev
			}
			mu.Unlock()
		}
		severities := map[string]int{}
		for _, sev := range got {
			severities[sev]++
		}
		if len(got) != 2 || severities["critical"] != 1 || severities["high"] != 1 {
			t.Errorf("webhook deliveries: %v", got)
		}
	})
}
