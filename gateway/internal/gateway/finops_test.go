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

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	finopsv1 "github.com/echopilot/echopilot/gen/go/echopilot/finops/v1"
	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	"github.com/echopilot/echopilot/platform/bodystream"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/platform/store/storetest"
	finops "github.com/echopilot/echopilot/services/finops/app"
	"github.com/echopilot/echopilot/services/tenancy/app"
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
		`"infrastructure":{"total_cost":4.2,"breakdown":{"compute":3.5,"database":0.7,`,
		`"profitability":{"profit":-4.2,"margin_pct":0,"roi":-100,"total_revenue":0,"total_costs":4.2,`,
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
	for _, p := range []string{"/api/finops/summary", "/api/finops/tenants", "/api/finops/export", "/api/finops/stripe/webhook", "/api/finops/timeseries",
		"/api/finops/stripe/held-events", "/api/finops/stripe/customers/{customer_id}/assign"} {
		if paths[p] == nil {
			t.Errorf("openapi lacks %s", p)
		}
	}
}

// finopsGatewayOn serves the finops backend entry in front of the real
// service on backend b, required auth, and returns the service's
// connection too (RecordUsage has no REST mapping: the queue calls it).
func finopsGatewayOn(t *testing.T, b storetest.Backend, args ...string) (*httptest.Server, *grpc.ClientConn) {
	t.Helper()
	migrateURL, appURL := b.NewDB(t)
	conn := servicetest.Start(t, finops.Spec(), servicetest.Options{AuthMode: "required", MigrateURL: migrateURL, DatabaseURL: appURL,
		Args: append([]string{"--stripe-webhook-secret=" + stripeSecret}, args...)})
	for _, be := range Backends() {
		if be.Name == "finops" {
			be.Conn = conn
			return serve(t, []Backend{be}), conn
		}
	}
	t.Fatal("no finops backend")
	return nil, nil
}

// The case over REST: three gpt-4o-mini jobs of 1,000 input and
// 500 output tokens cost $0.00135, which the JSON shows to the
// micro-dollar beside the exact integer, in the summary and in every
// total that includes it.
func TestFinOpsSubCentJSON(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			srv, conn := finopsGatewayOn(t, b)
			var recs []*finopsv1.UsageRecord
			for _, id := range []string{"m1", "m2", "m3"} {
				recs = append(recs, &finopsv1.UsageRecord{JobId: id, JobType: "ai_task", Model: "gpt-4o-mini",
					InputTokens: 1000, OutputTokens: 500, CompletedAt: timestamppb.Now()})
			}
			if _, err := finopsv1.NewFinOpsServiceClient(conn).RecordUsage(servicetest.AsService(t, "queue", "acme"),
				&finopsv1.RecordUsageRequest{Records: recs}); err != nil {
				t.Fatal(err)
			}
			admin := "Bearer " + token(t, "default", "admin")
			r := do(t, srv, "GET", "/api/finops/summary?days=7", "", "Authorization", admin)
			for _, part := range []string{
				`"ok":true`, `"period_days":7`,
				`"ai":{"total_cost":0.00135,"job_count":3,"input_tokens":3000,"output_tokens":1500,`,
				`"total_cost_micros":1350}`,
				`"infrastructure":{"total_cost":4.2,"breakdown":{"compute":3.5,"database":0.7,"compute_micros":3500000,"database_micros":700000}`,
				`"profitability":{"profit":-4.20135,"margin_pct":0,"roi":-100,"total_revenue":0,"total_costs":4.20135,` +
					`"profit_micros":-4201350,"total_revenue_micros":0,"total_costs_micros":4201350}`,
			} {
				if r.status != http.StatusOK || !strings.Contains(r.raw, part) {
					t.Fatalf("summary %d %s\nlacks %s", r.status, r.raw, part)
				}
			}
			r = do(t, srv, "GET", "/api/finops/tenants?days=7", "", "Authorization", admin)
			row := r.body["tenants"].([]any)[0].(map[string]any)
			if row["ai_cost"] != 0.00135 || row["ai_cost_micros"] != 1350.0 || row["total_costs"] != 0.60135 || row["profit_micros"] != -601350.0 {
				t.Errorf("tenant row %v", row)
			}
			r = do(t, srv, "GET", "/api/finops/timeseries?days=1", "", "Authorization", "Bearer "+token(t, "acme", "user"))
			day := r.body["days"].([]any)[0].(map[string]any)
			if day["ai_cost"] != 0.00135 || day["ai_cost_micros"] != 1350.0 || day["total_costs_micros"] != 601350.0 {
				t.Errorf("today %v", day)
			}
			res := get(t, srv, "/api/finops/export?days=1", "Authorization", "Bearer "+token(t, "acme", "user"))
			body, _ := io.ReadAll(res.Body)
			if !strings.Contains(string(body), ",acme,acme,AI Inference,AI and Machine Learning,Usage,0.00135,0.00135,4500,Tokens,") {
				t.Errorf("export:\n%s", body)
			}
		})
	}
}

// The held-event admin paths over REST: a platform admin lists and
// assigns; a tenant's admin gets 403; bad ids get their reasons.
func TestFinOpsHeldEventsREST(t *testing.T) {
	tenancy := servicetest.Start(t, app.Spec(), servicetest.Options{AuthMode: "required", TCP: true})
	adminCtx := servicetest.As(t, "default", "admin")
	if _, err := tenancyv1.NewTenancyServiceClient(tenancy).CreateTenant(adminCtx,
		&tenancyv1.CreateTenantRequest{Tenant: &tenancyv1.Tenant{TenantId: "acme"}}); err != nil {
		t.Fatal(err)
	}
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			srv, _ := finopsGatewayOn(t, b, "--tenancy-addr="+tenancy.Target())
			now := time.Now()
			body := fmt.Sprintf(`{"type": "charge.succeeded", "id": "evt_held_1", "created": %d,
  "data": {"object": {"object": "charge", "id": "ch_held_1", "amount": 1250, "amount_refunded": 0,
    "currency": "usd", "customer": "cus_orphan", "created": %d, "metadata": {}}}}`, now.Unix(), now.Unix())
			r := do(t, srv, "POST", "/api/finops/stripe/webhook", body, "Stripe-Signature", stripeSign(body, now))
			if r.status != http.StatusOK || r.body["outcome"] != "held" {
				t.Fatalf("webhook: %d %s", r.status, r.raw)
			}
			admin := "Bearer " + token(t, "default", "admin")
			tenantAdmin := "Bearer " + token(t, "acme", "admin")
			r = do(t, srv, "GET", "/api/finops/stripe/held-events?page_size=10", "", "Authorization", admin)
			evs, _ := r.body["events"].([]any)
			if r.status != http.StatusOK || len(evs) != 1 {
				t.Fatalf("held: %d %s", r.status, r.raw)
			}
			if e := evs[0].(map[string]any); e["customer_id"] != "cus_orphan" || e["type"] != "charge.succeeded" ||
				e["amount"] != 12.5 || e["amount_micros"] != 12500000.0 || e["received_at"] == "" {
				t.Errorf("held event %v", e)
			}
			r = do(t, srv, "GET", "/api/finops/stripe/held-events", "", "Authorization", tenantAdmin)
			if r.status != http.StatusForbidden {
				t.Errorf("a tenant's admin listing: %d %s", r.status, r.raw)
			}
			assign := func(auth, customer, tenant string) reply {
				return do(t, srv, "POST", "/api/finops/stripe/customers/"+customer+"/assign",
					`{"target_tenant_id":"`+tenant+`"}`, "Authorization", auth, "Content-Type", "application/json")
			}
			if r := assign(tenantAdmin, "cus_orphan", "acme"); r.status != http.StatusForbidden {
				t.Errorf("a tenant's admin assigning: %d %s", r.status, r.raw)
			}
			if r := assign(admin, "cus_orphan", "nosuch"); r.status != http.StatusNotFound || r.errCode != "TENANT_NOT_FOUND" {
				t.Errorf("unknown tenant: %d %s", r.status, r.raw)
			}
			if r := assign(admin, "cus_orphan", "Not%20A%20Tenant"); r.status != http.StatusBadRequest || r.errCode != "TENANT_ID_INVALID" {
				t.Errorf("malformed tenant: %d %s", r.status, r.raw)
			}
			if r := assign(admin, "cus%20orphan", "acme"); r.status != http.StatusBadRequest || r.errCode != "CUSTOMER_ID_INVALID" {
				t.Errorf("malformed customer: %d %s", r.status, r.raw)
			}
			for i, want := range []float64{1, 0} {
				r := assign(admin, "cus_orphan", "acme")
				if r.status != http.StatusOK || r.body["released_events"] != want || r.body["tenant_id"] != "acme" {
					t.Errorf("assign %d: %d %s", i, r.status, r.raw)
				}
			}
			r = do(t, srv, "GET", "/api/finops/summary", "", "Authorization", "Bearer "+token(t, "acme", "user"))
			if rev := r.body["revenue"].(map[string]any); rev["total_revenue"] != 12.5 || rev["payment_count"] != 1.0 {
				t.Errorf("acme's revenue: %s", r.raw)
			}
		})
	}
}
