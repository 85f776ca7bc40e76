package gateway

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/bodystream"
	finops "github.com/echopilot/echopilot/services/finops/app"
)

const stripeSecret = "whsec_gateway_test"

// finopsGateway serves the gateway's own finops backend entry (with its
// raw webhook route) in front of the real finops service.
func finopsGateway(t *testing.T) *httptest.Server {
	t.Helper()
	return backendGateway(t, "finops", finops.Spec(), "--stripe-webhook-secret="+stripeSecret)
}

func stripeSign(body string, at time.Time) string {
	m := hmac.New(sha256.New, []byte(stripeSecret))
	fmt.Fprintf(m, "%d.%s", at.Unix(), body)
	return fmt.Sprintf("t=%d,v1=%s", at.Unix(), hex.EncodeToString(m.Sum(nil)))
}

func TestFinOpsSummarySeedShape(t *testing.T) {
	srv := finopsGateway(t)
	r := do(t, srv, "GET", "/api/finops/summary?days=7", "", "Authorization", "Bearer "+token(t, "default", "admin"))
	for _, part := range []string{
		`"ok":true`, `"period_days":7`, `"revenue":{"total_revenue":0,"payment_count":0,`,
		`"infrastructure":{"total_cost":4.2,"breakdown":{"compute":3.5,"database":0.7}`,
		`"profitability":{"profit":-4.2,"margin_pct":0,"roi":-100,"total_revenue":0,"total_costs":4.2}`,
	} {
		if r.status != http.StatusOK || !strings.Contains(r.raw, part) {
			t.Fatalf("summary %d %s\nlacks %s", r.status, r.raw, part)
		}
	}
	r = do(t, srv, "GET", "/api/finops/summary?days=400", "")
	if r.status != http.StatusBadRequest || r.errCode != "DAYS_OUT_OF_RANGE" {
		t.Fatalf("days=400: %d %s", r.status, r.raw)
	}
}

// The webhook body reaches finops byte for byte: the signature covers
// whitespace and key order that a JSON round trip would change.
func TestStripeWebhookRawBody(t *testing.T) {
	srv := finopsGateway(t)
	now := time.Now()
	body := fmt.Sprintf(`{ "type": "charge.succeeded", "id": "evt_gw_1",  "created": %d,
  "data": {"object": {"object": "charge", "id": "ch_gw_1", "amount": 1999, "amount_refunded": 0,
    "currency": "usd", "customer": "cus_gw", "created": %d, "metadata": {"tenant_id": "acme"}}}}`, now.Unix(), now.Unix())
	r := do(t, srv, "POST", "/api/finops/stripe/webhook", body, "Stripe-Signature", stripeSign(body, now), "Content-Type", "application/json")
	if r.status != http.StatusOK || r.body["outcome"] != "applied" || r.body["tenant_id"] != "acme" || r.body["event_id"] != "evt_gw_1" {
		t.Fatalf("webhook: %d %s", r.status, r.raw)
	}
	r = do(t, srv, "POST", "/api/finops/stripe/webhook", body+" ", "Stripe-Signature", stripeSign(body, now))
	if r.status != http.StatusUnauthorized || r.errCode != "STRIPE_SIGNATURE_INVALID" || r.body["ok"] != false {
		t.Fatalf("altered body: %d %s", r.status, r.raw)
	}
	r = do(t, srv, "POST", "/api/finops/stripe/webhook", body)
	if r.status != http.StatusBadRequest || r.errCode != "FIELD_REQUIRED" {
		t.Fatalf("no signature: %d %s", r.status, r.raw)
	}
	r = do(t, srv, "GET", "/api/finops/summary", "", "X-Tenant-ID", "acme")
	if rev := r.body["revenue"].(map[string]any); rev["total_revenue"] != 19.99 || rev["payment_count"] != 1.0 {
		t.Fatalf("acme's revenue after the webhook: %s", r.raw)
	}
}

// The time series is reachable through the gateway: a point a day, the
// rate card on an empty day, days checked, another tenant refused.
func TestFinOpsTimeseries(t *testing.T) {
	srv := finopsGateway(t)
	admin := "Bearer " + token(t, "default", "admin")
	r := do(t, srv, "GET", "/api/finops/timeseries?days=3", "", "Authorization", admin)
	days, _ := r.body["days"].([]any)
	if r.status != http.StatusOK || r.body["period_days"] != 3.0 || len(days) != 3 {
		t.Fatalf("timeseries: %d %s", r.status, r.raw)
	}
	if d := days[2].(map[string]any); d["date"] != time.Now().UTC().Format(time.DateOnly) || d["infrastructure_cost"] != 0.6 || d["profit"] != -0.6 {
		t.Errorf("today: %v", d)
	}
	r = do(t, srv, "GET", "/api/finops/timeseries?days=367", "", "Authorization", admin)
	if r.status != http.StatusBadRequest || r.errCode != "DAYS_OUT_OF_RANGE" {
		t.Fatalf("days=367: %d %s", r.status, r.raw)
	}
	r = do(t, srv, "GET", "/api/finops/timeseries?tenant_id=globex", "", "Authorization", "Bearer "+token(t, "acme", "user"))
	if r.status != http.StatusForbidden || r.errCode != "CROSS_TENANT_DENIED" {
		t.Fatalf("another tenant: %d %s", r.status, r.raw)
	}
}

func TestFinOpsExportCSV(t *testing.T) {
	srv := finopsGateway(t)
	resp, err := srv.Client().Get(srv.URL + "/api/finops/export?days=2")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") ||
		resp.Header.Get("Content-Disposition") != `attachment; filename="finops-costs-default.csv"` {
		t.Fatalf("export: %d %v", resp.StatusCode, resp.Header)
	}
}

// The export streams: a year of every tenant's platform rows spans two
// messages and arrives whole; a refused request is the same error envelope
// as any unary call's (request id, nosniff), not a stream error chunk nor
// a download.
func TestFinOpsExportStreams(t *testing.T) {
	srv := finopsGateway(t)
	admin := "Bearer " + token(t, "default", "admin")
	res := get(t, srv, "/api/finops/export?days=366", "Authorization", admin)
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil || res.StatusCode != http.StatusOK || len(body) <= bodystream.MaxChunk {
		t.Fatalf("export: %d, %d bytes, %v", res.StatusCode, len(body), err)
	}
	// The header, then each day's two unallocated platform rows.
	if len(rows) != 1+2*366 || rows[1][4] != "platform (unallocated)" || rows[len(rows)-1][5] != "Database" {
		t.Fatalf("export: %d rows, first %v, last %v", len(rows), rows[1], rows[len(rows)-1])
	}

	r := do(t, srv, "GET", "/api/finops/export?days=400", "")
	e, _ := r.body["error"].(map[string]any)
	if r.status != http.StatusBadRequest || r.errCode != "DAYS_OUT_OF_RANGE" || e["request_id"] != r.header.Get("X-Request-Id") ||
		r.header.Get("X-Content-Type-Options") != "nosniff" || r.header.Get("Content-Disposition") != "" {
		t.Fatalf("days=400: %d %v\n%s", r.status, r.header, r.raw)
	}
}

func TestOpenAPIListsFinOps(t *testing.T) {
	srv := finopsGateway(t)
	paths := do(t, srv, "GET", "/openapi.json", "").body["paths"].(map[string]any)
	for _, p := range []string{"/api/finops/summary", "/api/finops/tenants", "/api/finops/export", "/api/finops/stripe/webhook", "/api/finops/timeseries"} {
		if paths[p] == nil {
			t.Errorf("openapi lacks %s", p)
		}
	}
}
