package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	growthv1 "github.com/echopilot/echopilot/gen/go/echopilot/growth/v1"
	growth "github.com/echopilot/echopilot/services/growth/app"
)

// The seed's gate through the gateway: create a referral, click its link,
// sign up and convert; the stats show 20% commission and the CSV has the
// row.
func TestGrowthSeedGate(t *testing.T) {
	srv := backendGateway(t, "growth", growth.Spec(), "--landing-url=https://shop.example/welcome?utm=ref")
	acme := []string{"X-Tenant-ID", "acme"}

	r := do(t, srv, "POST", "/api/growth/referral/create", `{"referrer_id":"user123","campaign":"spring2025"}`, acme...)
	code, _ := r.body["referral_code"].(string)
	for _, part := range []string{`"ok":true`, `"referrer_id":"user123"`, `"campaign":"spring2025"`, `"clicks":0`, `"signups":0`, `"conversions":0`} {
		if r.status != http.StatusOK || len(code) != 8 || !strings.Contains(r.raw, part) {
			t.Fatalf("create: %d %s\nlacks %s", r.status, r.raw, part)
		}
	}
	empty := do(t, srv, "GET", "/api/growth/referrals?days=7", "", "X-Tenant-ID", "globex")
	for _, part := range []string{`"ok":true`, `"period_days":7`, `"total_referrals":0`, `"total_clicks":0`, `"total_signups":0`,
		`"total_conversions":0`, `"total_revenue":0`, `"total_payout":0`, `"referrals":[]`} {
		if empty.status != http.StatusOK || !strings.Contains(empty.raw, part) {
			t.Fatalf("empty stats: %d %s\nlacks %s", empty.status, empty.raw, part)
		}
	}

	// The click link, typed carelessly: a redirect with the code on the
	// landing URL and in the attribution cookie.
	typed := strings.ToLower(code[:4]) + "-" + code[4:]
	res := get(t, srv, "/r/"+typed)
	loc, err := url.Parse(res.Header.Get("Location"))
	if res.StatusCode != http.StatusFound || err != nil || loc.Host != "shop.example" || loc.Path != "/welcome" ||
		loc.Query().Get("ref") != code || loc.Query().Get("utm") != "ref" {
		t.Fatalf("click: %d Location %q", res.StatusCode, res.Header.Get("Location"))
	}
	cookie, visitor := cookieOf(res, ClickCookie), cookieOf(res, VisitorCookie)
	if cookie == nil || cookie.Value != code || cookie.MaxAge != 30*24*3600 || !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode {
		t.Fatalf("attribution cookie: %+v", res.Cookies())
	}
	if visitor == nil || len(visitor.Value) != 22 || visitor.MaxAge != cookie.MaxAge || !visitor.HttpOnly || visitor.SameSite != http.SameSiteLaxMode {
		t.Fatalf("visitor cookie: %+v", res.Cookies())
	}
	if res := get(t, srv, "/r/ZZZZZZZZ"); res.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown code: %d", res.StatusCode)
	}

	for _, ev := range []string{
		`{"referral_code":"` + code + `","type":"signup","event_id":"ev-1","customer_id":"cust-9"}`,
		`{"referral_code":"` + code + `","type":"conversion","event_id":"ev-2","customer_id":"cust-9","revenue":100}`,
	} {
		if r := do(t, srv, "POST", "/api/growth/referral/events", ev, acme...); r.status != http.StatusOK || r.body["ok"] != true {
			t.Fatalf("event %s: %d %s", ev, r.status, r.raw)
		}
	}
	r = do(t, srv, "GET", "/api/growth/referrals?days=7", "", acme...)
	for _, part := range []string{`"total_referrals":1`, `"total_clicks":1`, `"total_signups":1`, `"total_conversions":1`,
		`"total_revenue":100`, `"total_payout":20`, `"referral_code":"` + code + `"`} {
		if r.status != http.StatusOK || !strings.Contains(r.raw, part) {
			t.Fatalf("stats: %d %s\nlacks %s", r.status, r.raw, part)
		}
	}

	res = get(t, srv, "/api/growth/payouts/export?days=7&min_payout=10&state=all", acme...)
	body, _ := io.ReadAll(res.Body)
	want := "referral_code,referrer_id,campaign,signups,conversions,revenue_usd,payout_usd\n" +
		code + ",user123,spring2025,1,1,100.00,20.00\n"
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/csv") ||
		!strings.HasPrefix(res.Header.Get("Content-Disposition"), "attachment") || string(body) != want {
		t.Fatalf("export: %d %v\n%s", res.StatusCode, res.Header, body)
	}

	r = do(t, srv, "POST", "/api/growth/referral/events", `{"referral_code":"`+code+`","type":"conversion","event_id":"ev-3","revenue":-5}`, acme...)
	if r.status != http.StatusBadRequest || r.errCode == "" {
		t.Fatalf("negative revenue: %d %s", r.status, r.raw)
	}
}

func cookieOf(res *http.Response, name string) *http.Cookie {
	for _, c := range res.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Issue 13, finding 3, through the gateway: a visitor's click with
// X-Request-Id: order-1001 does not take the event id order-1001 (the
// request id only correlates logs), so the tenant's conversion order-1001
// is recorded and paid. Repeated clicks of one visitor count once,
// whether it keeps its visitor cookie or comes back without it; another
// browser counts.
func TestClickCannotPreclaimEventIDs(t *testing.T) {
	srv := backendGateway(t, "growth", growth.Spec())
	acme := []string{"X-Tenant-ID", "acme"}
	code, _ := do(t, srv, "POST", "/api/growth/referral/create", `{"referrer_id":"ann"}`, acme...).body["referral_code"].(string)

	res := get(t, srv, "/r/"+code, "X-Request-Id", "order-1001", "User-Agent", "Mozilla/5.0 Chrome/126")
	visitor := cookieOf(res, VisitorCookie)
	if res.StatusCode != http.StatusFound || visitor == nil || res.Header.Get("X-Request-Id") != "order-1001" {
		t.Fatalf("click: %d %v", res.StatusCode, res.Header)
	}
	r := do(t, srv, "POST", "/api/growth/referral/events",
		`{"referral_code":"`+code+`","type":"conversion","event_id":"order-1001","customer_id":"cust-9","revenue":100}`, acme...)
	if r.status != http.StatusOK || r.body["ok"] != true || r.body["duplicate"] != false {
		t.Fatalf("conversion order-1001 after a click naming it: %d %s", r.status, r.raw)
	}

	for _, headers := range [][]string{
		{"User-Agent", "Mozilla/5.0 Chrome/126", "Cookie", VisitorCookie + "=" + visitor.Value}, // with its cookie
		{"User-Agent", "Mozilla/5.0 Chrome/126"},                                                // without: same address and browser
		{"User-Agent", "Mozilla/5.0 Chrome/126", "X-Request-Id", "order-1002"},
	} {
		if res := get(t, srv, "/r/"+code, headers...); res.StatusCode != http.StatusFound {
			t.Fatalf("repeat %v: %d", headers, res.StatusCode)
		}
	}
	if res := get(t, srv, "/r/"+code, "User-Agent", "Mozilla/5.0 Firefox/127"); res.StatusCode != http.StatusFound {
		t.Fatalf("another browser: %d", res.StatusCode)
	}
	r = do(t, srv, "GET", "/api/growth/referrals?days=7", "", acme...)
	for _, part := range []string{`"total_clicks":2`, `"total_conversions":1`, `"total_revenue":100`, `"total_payout":20`} {
		if r.status != http.StatusOK || !strings.Contains(r.raw, part) {
			t.Fatalf("stats: %d %s\nlacks %s", r.status, r.raw, part)
		}
	}
	// order-1002 was a request id too: still free.
	r = do(t, srv, "POST", "/api/growth/referral/events",
		`{"referral_code":"`+code+`","type":"signup","event_id":"order-1002"}`, acme...)
	if r.status != http.StatusOK || r.body["duplicate"] != false {
		t.Fatalf("signup order-1002: %d %s", r.status, r.raw)
	}
}

// get sends a GET without following redirects; headers come in pairs.
func get(t *testing.T, srv *httptest.Server, path string, headers ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	return res
}

// A streamed export refused before its first chunk is an error like any
// other: the envelope, the status and the reason.
func TestStreamErrorEnvelope(t *testing.T) {
	srv := backendGateway(t, "growth", growth.Spec())
	r := do(t, srv, "GET", "/api/growth/payouts/export?min_payout=-1", "", "X-Tenant-ID", "acme")
	if r.status != http.StatusBadRequest || r.body["ok"] != false || r.errCode != "MIN_PAYOUT_INVALID" ||
		!strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("export with a bad minimum: %d %v %s", r.status, r.header, r.raw)
	}
}

// A landing URL the service should never have stored is answered in the
// gateway's error envelope (502, with the request id), not with a body
// written by hand.
func TestRedirectClickBadLandingURL(t *testing.T) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/r/ABC", nil)
	req.Header.Set(requestIDHeader, "req-1")
	redirectClick(rec, req, &growthv1.TrackClickResponse{LandingUrl: "javascript:alert(1)", ReferralCode: "ABC"})
	var body struct {
		OK    bool `json:"ok"`
		Error struct {
			Code      int    `json:"code"`
			Status    string `json:"status"`
			Reason    string `json:"reason"`
			RequestID string `json:"request_id"`
		} `json:"error"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != http.StatusBadGateway || body.OK ||
		body.Error.Reason != "LANDING_URL_INVALID" || body.Error.Code != 502 || body.Error.Status != "INTERNAL" ||
		body.Error.RequestID != "req-1" || rec.Header().Get("Content-Type") != "application/json; charset=utf-8" {
		t.Fatalf("%d %s %q (%v)", rec.Code, rec.Header().Get("Content-Type"), rec.Body.String(), err)
	}
}

// Commissions and payout batches through the gateway: the REST paths of
// the proto reach growth, errors keep their reasons.
func TestGrowthPayoutBatches(t *testing.T) {
	srv := backendGateway(t, "growth", growth.Spec(), "--commission-hold=0s")
	acme, globex := []string{"X-Tenant-ID", "acme"}, []string{"X-Tenant-ID", "globex"}
	r := do(t, srv, "POST", "/api/growth/referral/create", `{"referrer_id":"ann"}`, acme...)
	code, _ := r.body["referral_code"].(string)
	r = do(t, srv, "POST", "/api/growth/referral/events",
		`{"referral_code":"`+code+`","type":"conversion","event_id":"order-1","customer_id":"cust","revenue":100}`, acme...)
	if r.status != http.StatusOK {
		t.Fatalf("conversion: %d %s", r.status, r.raw)
	}
	r = do(t, srv, "GET", "/api/growth/commissions?state=approved", "", acme...)
	list, _ := r.body["commissions"].([]any)
	if r.status != http.StatusOK || len(list) != 1 || list[0].(map[string]any)["commission"] != 20.0 {
		t.Fatalf("commissions: %d %s", r.status, r.raw)
	}
	r = do(t, srv, "GET", "/api/growth/commissions?state=owed", "", acme...)
	if r.status != http.StatusBadRequest || r.errCode != "COMMISSION_STATE_INVALID" {
		t.Fatalf("bad state: %d %s", r.status, r.raw)
	}
	r = do(t, srv, "POST", "/api/growth/payouts", `{}`, acme...)
	batch, _ := r.body["batch"].(map[string]any)
	id, _ := batch["batch_id"].(string)
	if r.status != http.StatusOK || id == "" || batch["commission_count"] != 1.0 || batch["payout"] != 20.0 {
		t.Fatalf("create batch: %d %s", r.status, r.raw)
	}
	res := get(t, srv, "/api/growth/payouts/export?batch_id="+url.QueryEscape(id), acme...)
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || !strings.HasSuffix(string(body), code+",ann,default,0,1,100.00,20.00\n") {
		t.Fatalf("batch export: %d %s", res.StatusCode, body)
	}
	r = do(t, srv, "POST", "/api/growth/payouts/"+id+"/paid", `{}`, globex...)
	if r.status != http.StatusNotFound || r.errCode != "PAYOUT_BATCH_NOT_FOUND" {
		t.Fatalf("globex paying acme's batch: %d %s", r.status, r.raw)
	}
	for i, want := range []bool{true, false} {
		r = do(t, srv, "POST", "/api/growth/payouts/"+id+"/paid", `{}`, acme...)
		if r.status != http.StatusOK || r.body["changed"] != want || r.body["batch"].(map[string]any)["paid_count"] != 1.0 {
			t.Fatalf("paid, call %d: %d %s", i+1, r.status, r.raw)
		}
	}
	r = do(t, srv, "POST", "/api/growth/payouts", `{}`, acme...)
	if r.status != http.StatusBadRequest || r.errCode != "PAYOUT_EMPTY" {
		t.Fatalf("empty batch: %d %s", r.status, r.raw)
	}
}
