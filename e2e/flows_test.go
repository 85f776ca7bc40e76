package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// The suite as its users meet it, across services: a referred customer
// converts and pays (growth credits the referrer, finops counts the Stripe
// payment), and a critical compliance event reaches the tenant's receiver.
// (The other cross-service flows have their own tests: an ai_task's cost in
// finops, TestFinOpsGate; a cross-tenant attempt in tenancy's stats and the
// tenant's audit log, TestTenancyAuditDenials.)
func TestCrossServiceFlows(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		s := startOn(t, "optional", backend, allowLoopbackReceivers)
		acme := map[string]string{"X-Tenant-ID": "acme"}

		// A referred customer: click, sign-up, conversion in growth, and
		// the same customer's payment through Stripe into finops.
		code, body := s.call(t, "POST", "/api/growth/referral/create", "", acme, `{"referrer_id":"partner-7","campaign":"launch"}`)
		ref, _ := body["referral_code"].(string)
		if code != http.StatusOK || ref == "" {
			t.Fatalf("create = %d %v", code, body)
		}
		for _, ev := range []string{
			`{"referral_code":"` + ref + `","type":"signup","event_id":"flow-signup","customer_id":"cus_flow"}`,
			`{"referral_code":"` + ref + `","type":"conversion","event_id":"flow-order","customer_id":"cus_flow","revenue":49.99}`,
		} {
			if code, body := s.call(t, "POST", "/api/growth/referral/events", "", acme, ev); code != http.StatusOK {
				t.Fatalf("event = %d %v", code, body)
			}
		}
		now := time.Now()
		payment, _ := json.Marshal(map[string]any{
			"id": "evt_flow_1", "object": "event", "type": "charge.succeeded", "created": now.Unix(),
			"data": map[string]any{"object": map[string]any{
				"id": "ch_flow_1", "object": "charge", "amount": 4999, "amount_refunded": 0, "currency": "usd",
				"customer": "cus_flow", "created": now.Unix(), "metadata": map[string]string{"tenant_id": "acme"},
			}},
		})
		if code, body := s.post(t, "/api/finops/stripe/webhook", payment, map[string]string{"Stripe-Signature": stripeSign(payment, now)}); code != http.StatusOK {
			t.Fatalf("stripe = %d %v", code, body)
		}
		_, stats := s.call(t, "GET", "/api/growth/referrals?days=1", "", acme, "")
		if stats["total_revenue"] != 49.99 || stats["total_payout"] != 9.99 {
			t.Fatalf("growth stats = %v, want 49.99 revenue and 9.99 commission (20%%, rounded down)", stats)
		}
		_, sum := s.call(t, "GET", "/api/finops/summary?days=1", "", acme, "")
		if dig(sum, "revenue", "total_revenue") != 49.99 || dig(sum, "revenue", "payment_count") != 1.0 {
			t.Fatalf("finops revenue = %v", sum["revenue"])
		}

		// A critical compliance event, signed with the default tenant's
		// secret, reaches the endpoint the tenant registered.
		var mu sync.Mutex
		var got []map[string]any
		rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			var m map[string]any
			_ = json.Unmarshal(b, &m)
			mu.Lock()
			got = append(got, m)
			mu.Unlock()
		}))
		defer rcv.Close()
		def := map[string]string{"X-Tenant-ID": "default"}
		if code, body := s.call(t, "POST", "/api/audit/endpoints", "", def, `{"url":"`+rcv.URL+`/hook"}`); code != http.StatusOK {
			t.Fatalf("endpoint = %d %v", code, body)
		}
		event := []byte(`{"event_type":"dlp.violation","user":"mallory","action":"exfiltrate","resource":"crm","severity":"critical"}`)
		if code, body := s.post(t, "/api/compliance/webhook", event, map[string]string{
			"X-Tenant-ID": "default", "X-EchoPilot-Signature": complianceSign(event, time.Now()),
		}); code != http.StatusOK {
			t.Fatalf("compliance webhook = %d %v", code, body)
		}
		waitFor(t, 20*time.Second, "the critical event at the receiver", func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, m := range got {
				if dig(m, "entry", "event_type") == "dlp.violation" && dig(m, "entry", "severity") == "critical" {
					return true
				}
			}
			return false
		})
	})
}
