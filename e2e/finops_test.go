package e2e

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// stripeSign is what Stripe does: HMAC-SHA256 of "<t>.<body>" with the
// endpoint secret, sent as Stripe-Signature.
func stripeSign(body []byte, at time.Time) string {
	m := hmac.New(sha256.New, []byte(stripeSecret))
	fmt.Fprintf(m, "%d.%s", at.Unix(), body)
	return fmt.Sprintf("t=%d,v1=%s", at.Unix(), hex.EncodeToString(m.Sum(nil)))
}

func stripeCharge(id, typ string, amount, refunded int64, tenant string) []byte {
	b, _ := json.Marshal(map[string]any{
		"id": id, "object": "event", "type": typ, "created": time.Now().Unix(),
		"data": map[string]any{"object": map[string]any{
			"id": "ch_e2e_1", "object": "charge", "amount": amount, "amount_refunded": refunded, "currency": "usd",
			"customer": "cus_e2e", "created": time.Now().Unix(), "metadata": map[string]string{"tenant_id": tenant},
		}},
	})
	return b
}

// post sends a raw body with headers, the way a webhook sender does.
func (s *suite) post(t *testing.T, path string, body []byte, headers map[string]string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest("POST", s.GatewayURL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("POST %s: %d, not JSON: %q", path, resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

func dig(m map[string]any, path ...string) any {
	var v any = m
	for _, p := range path {
		mm, _ := v.(map[string]any)
		v = mm[p]
	}
	return v
}

// An ai_task runs on edge-worker against an OpenAI-compatible server that
// reports usage; the queue's outbox carries it to finops, which prices it.
// A signed Stripe event then shows as revenue, and its refund removes it.
func TestFinOpsGate(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		s := startOn(t, "optional", backend)
		// echopilot-test is priced $1/Mtok in and $2/Mtok out: 120k + 30k
		// tokens cost $0.18.
		ai, _ := aiEndpointUsage(t, false, 120_000, 30_000)
		user := s.token(t, "acme", "user")

		// The seed's sample, as the platform admin sees it with no data.
		admin := s.token(t, "default", "admin")
		code, sum := s.call(t, "GET", "/api/finops/summary?days=7", admin, nil, "")
		if code != http.StatusOK || sum["ok"] != true || sum["period_days"] != 7.0 ||
			dig(sum, "costs", "infrastructure", "total_cost") != 4.2 || dig(sum, "costs", "infrastructure", "breakdown", "compute") != 3.5 ||
			dig(sum, "costs", "infrastructure", "breakdown", "database") != 0.7 || dig(sum, "profitability", "profit") != -4.2 ||
			dig(sum, "profitability", "margin_pct") != 0.0 || dig(sum, "profitability", "roi") != -100.0 ||
			dig(sum, "revenue", "total_revenue") != 0.0 || dig(sum, "revenue", "payment_count") != 0.0 {
			t.Fatalf("empty summary = %d %v", code, sum)
		}

		code, body := s.call(t, "POST", "/api/queue/enqueue", user, nil, `{"type":"ai_task","payload":{"prompt":"hello"}}`)
		if code != http.StatusOK {
			t.Fatalf("enqueue = %d %v", code, body)
		}
		w := s.worker(t, "acme", ai, "--max-jobs=1")
		w.Env = append(w.Env, "ECHOPILOT_AI_MODEL=echopilot-test")
		if out, err := w.CombinedOutput(); err != nil {
			t.Fatalf("edge-worker: %v\n%s", err, out)
		}
		waitFor(t, 20*time.Second, "the job's usage to reach finops", func() bool {
			_, sum = s.call(t, "GET", "/api/finops/summary?days=7", user, nil, "")
			return dig(sum, "costs", "ai", "job_count") == 1.0
		})
		if dig(sum, "costs", "ai", "total_cost") != 0.18 || dig(sum, "costs", "ai", "input_tokens") != 120000.0 ||
			dig(sum, "tenant_id") != "acme" || dig(sum, "costs", "ai", "unpriced", "job_count") != 0.0 {
			t.Fatalf("summary after the job = %v", sum)
		}
		// acme ran the only job: today's whole $0.60 is allocated to it.
		if dig(sum, "costs", "infrastructure", "total_cost") != 0.6 {
			t.Fatalf("acme's infrastructure = %v", dig(sum, "costs", "infrastructure"))
		}

		paid := stripeCharge("evt_e2e_1", "charge.succeeded", 5000, 0, "acme")
		code, body = s.post(t, "/api/finops/stripe/webhook", paid, map[string]string{"Stripe-Signature": stripeSign(paid, time.Now())})
		if code != http.StatusOK || body["outcome"] != "applied" || body["tenant_id"] != "acme" {
			t.Fatalf("webhook = %d %v", code, body)
		}
		code, body = s.post(t, "/api/finops/stripe/webhook", paid, map[string]string{"Stripe-Signature": stripeSign(paid, time.Now().Add(-time.Hour))})
		if code != http.StatusUnauthorized || errReason(body) != "STRIPE_SIGNATURE_STALE" || body["ok"] != false {
			t.Fatalf("stale webhook = %d %v", code, body)
		}
		_, sum = s.call(t, "GET", "/api/finops/summary?days=7", user, nil, "")
		if dig(sum, "revenue", "total_revenue") != 50.0 || dig(sum, "revenue", "payment_count") != 1.0 ||
			dig(sum, "profitability", "profit") != 49.22 || dig(sum, "profitability", "total_costs") != 0.78 {
			t.Fatalf("summary after payment = %v", sum)
		}
		refund := stripeCharge("evt_e2e_2", "charge.refunded", 5000, 5000, "acme")
		if code, body = s.post(t, "/api/finops/stripe/webhook", refund, map[string]string{"Stripe-Signature": stripeSign(refund, time.Now())}); code != http.StatusOK {
			t.Fatalf("refund webhook = %d %v", code, body)
		}
		_, sum = s.call(t, "GET", "/api/finops/summary?days=7", user, nil, "")
		if dig(sum, "revenue", "total_revenue") != 0.0 || dig(sum, "revenue", "payment_count") != 0.0 || dig(sum, "revenue", "refunded") != 50.0 {
			t.Fatalf("summary after refund = %v", sum)
		}

		// Per-tenant listing and the CSV export through the gateway.
		code, list := s.call(t, "GET", "/api/finops/tenants?days=7", admin, nil, "")
		tenants, _ := list["tenants"].([]any)
		if code != http.StatusOK || len(tenants) != 1 || dig(tenants[0].(map[string]any), "tenant_id") != "acme" {
			t.Fatalf("tenants = %d %v", code, list)
		}
		req, _ := http.NewRequest("GET", s.GatewayURL+"/api/finops/export?days=1", nil)
		req.Header.Set("Authorization", "Bearer "+user)
		resp, err := s.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		csvBody, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") ||
			!strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") ||
			!strings.HasPrefix(string(csvBody), "ChargePeriodStart,ChargePeriodEnd,BillingCurrency,SubAccountId") ||
			!strings.Contains(string(csvBody), ",acme,acme,AI Inference,AI and Machine Learning,Usage,0.18,0.18,150000,Tokens,1,0,") {
			t.Fatalf("export = %d %v\n%s", resp.StatusCode, resp.Header, csvBody)
		}

		// report_gen reads the tenant's finops summary when the worker
		// knows finops.
		code, body = s.call(t, "POST", "/api/queue/enqueue", user, nil, `{"type":"report_gen","payload":{"period_days":7}}`)
		if code != http.StatusOK {
			t.Fatalf("enqueue report = %d %v", code, body)
		}
		reportID := body["job_id"].(string)
		if out, err := s.worker(t, "acme", ai, "--max-jobs=1", "--finops-addr="+s.GRPCAddrs["finops"]).CombinedOutput(); err != nil {
			t.Fatalf("edge-worker: %v\n%s", err, out)
		}
		_, body = s.call(t, "GET", "/api/queue/jobs/"+reportID, user, nil, "")
		if got := dig(body, "job", "result", "finops", "summary", "costs", "ai", "job_count"); got != 1.0 {
			t.Fatalf("report's finops section: job_count = %v in %v", got, body)
		}
	})
}
