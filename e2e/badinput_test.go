package e2e

import (
	"net/http"
	"strings"
	"testing"
)

// Hostile and malformed requests get a clear 4xx with a reason, never a 5xx
// or a hang, and the suite keeps serving.
func TestBadInputIsRefused(t *testing.T) {
	s := startSuite(t, "optional")
	acme := map[string]string{"X-Tenant-ID": "acme", "Content-Type": "application/json"}
	deep := strings.Repeat(`{"a":`, 20000) + "1" + strings.Repeat("}", 20000)
	cases := []struct {
		name, method, path, body string
		status                   int
	}{
		{"10 MiB body", "POST", "/api/queue/enqueue", `{"type":"report_gen","payload":{"x":"` + strings.Repeat("a", 10<<20) + `"}}`, http.StatusRequestEntityTooLarge},
		{"invalid UTF-8", "POST", "/api/growth/referral/create", "{\"referrer_id\":\"u\xff\xfe\",\"campaign\":\"x\"}", http.StatusBadRequest},
		{"invalid UTF-8 in an audit entry", "POST", "/api/audit/entries", "{\"entries\":[{\"event_type\":\"x\xc3\",\"severity\":\"low\"}]}", http.StatusBadRequest},
		{"deep JSON nesting", "POST", "/api/queue/enqueue", `{"type":"report_gen","payload":` + deep + `}`, http.StatusBadRequest},
		{"deep nesting in audit details", "POST", "/api/audit/entries", `{"entries":[{"event_type":"x","details":` + deep + `}]}`, http.StatusBadRequest},
		{"not JSON", "POST", "/api/growth/referral/events", `{"type":`, http.StatusBadRequest},
		{"page size beyond int32", "GET", "/api/queue/jobs?page_size=99999999999", "", http.StatusBadRequest},
		{"negative page size", "GET", "/api/growth/referrals?page_size=-1", "", http.StatusBadRequest},
		{"negative days", "GET", "/api/finops/summary?days=-3", "", http.StatusBadRequest},
		{"days beyond a year", "GET", "/api/growth/referrals?days=100000", "", http.StatusBadRequest},
		{"negative revenue", "POST", "/api/growth/referral/events", `{"referral_code":"ABCDEFGH","type":"conversion","event_id":"e1","revenue":-5}`, http.StatusBadRequest},
		{"negative minimum payout", "GET", "/api/growth/payouts/export?min_payout=-1", "", http.StatusBadRequest},
		{"negative audit offset", "GET", "/api/audit/chain?offset=-1", "", http.StatusBadRequest},
		{"unknown job priority", "POST", "/api/queue/enqueue", `{"type":"report_gen","priority":"urgent!!"}`, http.StatusBadRequest},
		{"forged page token", "GET", "/api/growth/referrals?page_token=AAAA", "", http.StatusBadRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := s.call(t, c.method, c.path, "", acme, c.body)
			if code != c.status || body["ok"] != false || (code != http.StatusRequestEntityTooLarge && errReason(body) == "") {
				t.Fatalf("%s %s = %d %v, want %d with a reason", c.method, c.path, code, body, c.status)
			}
		})
	}
	if code, body := s.call(t, "GET", "/health", "", nil, ""); code != http.StatusOK || body["status"] != "ok" {
		t.Fatalf("after the bad input: health %d %v", code, body)
	}
	if code, body := s.call(t, "POST", "/api/growth/referral/create", "", acme, `{"referrer_id":"u1"}`); code != http.StatusOK {
		t.Fatalf("after the bad input: create %d %v", code, body)
	}
}
