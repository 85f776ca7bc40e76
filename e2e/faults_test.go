package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// faultCase is one service under kill -9: a write through the gateway that
// the service acknowledges, and how many of them it holds afterwards.
type faultCase struct {
	service string
	write   func(t *testing.T, s *suite, i int) (int, map[string]any)
	count   func(t *testing.T, s *suite) float64
}

func faultCases() []faultCase {
	acme := map[string]string{"X-Tenant-ID": "acme"}
	return []faultCase{
		{"tenancy", func(t *testing.T, s *suite, i int) (int, map[string]any) {
			// A verified cross-tenant probe: denied, and counted.
			return s.call(t, "GET", "/api/tenant/test-access?target_tenant_id=globex", s.token(t, "acme", "user"), nil, "")
		}, func(t *testing.T, s *suite) float64 {
			_, body := s.call(t, "GET", "/api/tenant/info", s.token(t, "acme", "user"), nil, "")
			v, _ := dig(body, "stats", "cross_tenant_denied").(float64)
			return v
		}},
		{"finops", func(t *testing.T, s *suite, i int) (int, map[string]any) {
			now := time.Now()
			body, _ := json.Marshal(map[string]any{
				"id": fmt.Sprintf("evt_fault_%d", i), "object": "event", "type": "charge.succeeded", "created": now.Unix(),
				"data": map[string]any{"object": map[string]any{
					"id": fmt.Sprintf("ch_fault_%d", i), "object": "charge", "amount": 100, "amount_refunded": 0, "currency": "usd",
					"customer": "cus_fault", "created": now.Unix(), "metadata": map[string]string{"tenant_id": "acme"},
				}},
			})
			return s.post(t, "/api/finops/stripe/webhook", body, map[string]string{"Stripe-Signature": stripeSign(body, now)})
		}, func(t *testing.T, s *suite) float64 {
			_, body := s.call(t, "GET", "/api/finops/summary", "", acme, "")
			v, _ := dig(body, "revenue", "payment_count").(float64)
			return v
		}},
		{"audit", func(t *testing.T, s *suite, i int) (int, map[string]any) {
			return s.call(t, "POST", "/api/audit/entries", "", acme,
				fmt.Sprintf(`{"entries":[{"event_type":"fault.test","resource":"r-%d","severity":"low"}]}`, i))
		}, func(t *testing.T, s *suite) float64 {
			_, body := s.call(t, "GET", "/api/audit/chain?limit=1", "", acme, "")
			if dig(body, "verification", "valid") != true {
				t.Errorf("audit chain after the kill: %v", body["verification"])
			}
			v, _ := body["total"].(float64)
			return v
		}},
		{"queue", func(t *testing.T, s *suite, i int) (int, map[string]any) {
			return s.call(t, "POST", "/api/queue/enqueue", "", acme,
				fmt.Sprintf(`{"type":"report_gen","idempotency_key":"fault-%d"}`, i))
		}, func(t *testing.T, s *suite) float64 {
			_, body := s.call(t, "GET", "/api/queue/status", "", acme, "")
			v, _ := body["total_jobs"].(float64)
			return v
		}},
		{"growth", func(t *testing.T, s *suite, i int) (int, map[string]any) {
			return s.call(t, "POST", "/api/growth/referral/create", "", acme,
				fmt.Sprintf(`{"referrer_id":"fault-%d","campaign":"faults"}`, i))
		}, func(t *testing.T, s *suite) float64 {
			_, body := s.call(t, "GET", "/api/growth/referrals?campaign=faults&page_size=1", "", acme, "")
			v, _ := body["total_referrals"].(float64)
			return v
		}},
	}
}

// kill -9 each service in turn while writes go through the gateway: while
// it is down every call answers at once with 503 BACKEND_UNAVAILABLE (no
// hang, no 500); after a restart writes succeed again, and every write
// that was acknowledged is there.
func TestKillAnyServiceDuringTraffic(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		s := startOn(t, "optional", backend)
		for _, c := range faultCases() {
			t.Run(c.service, func(t *testing.T) {
				before := c.count(t, s)
				acked, attempted := 0, 0
				write := func(i int) {
					attempted++
					start := time.Now()
					code, body := c.write(t, s, i)
					took := time.Since(start)
					switch {
					case code == http.StatusOK:
						acked++
					case code == http.StatusServiceUnavailable && errReason(body) == "BACKEND_UNAVAILABLE":
					default:
						t.Fatalf("write %d: %d %v", i, code, body)
					}
					if took > 5*time.Second {
						t.Fatalf("write %d took %v: the gateway must not hang on a dead backend", i, took)
					}
				}
				for i := range 20 {
					write(i)
				}
				s.Procs[c.service].Kill()
				down := 0
				for i := 20; i < 30; i++ {
					before := acked
					write(i)
					if acked == before {
						down++
					}
				}
				if down == 0 {
					t.Fatalf("no write failed while %s was killed", c.service)
				}
				if err := s.Restart(t.Context(), c.service); err != nil {
					t.Fatal(err)
				}
				for i := 30; i < 50; i++ {
					write(i)
				}
				if acked < 40 {
					t.Fatalf("only %d of %d writes acknowledged around the kill", acked, attempted)
				}
				// Nothing acknowledged is lost; a write whose answer the kill
				// cut off may or may not be there.
				got := c.count(t, s) - before
				if got < float64(acked) || got > float64(attempted) {
					t.Fatalf("%s holds %v new writes; %d were acknowledged of %d attempted", c.service, got, acked, attempted)
				}
			})
		}
	})
}
