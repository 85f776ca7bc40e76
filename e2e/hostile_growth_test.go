package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Hostile visitors and tenants against growth, with the real binaries
// (issue 13, finding 3 and part of finding 5).

// click follows a referral link without following the redirect; headers
// come in pairs. It returns the response with its body read.
func (s *suite) click(t *testing.T, code string, headers ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.GatewayURL+"/r/"+code, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	noFollow := &http.Client{Transport: s.http.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusFound {
		t.Fatalf("click %s %v: %d", code, headers, res.StatusCode)
	}
	return res
}

func cookieValue(res *http.Response, name string) string {
	for _, c := range res.Cookies() {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// A visitor clicks a referral link with X-Request-Id: order-1001, the id
// of the tenant's next order. The click gets an id of the service's own
// (the request id only correlates logs), so the tenant's conversion
// order-1001 is accepted and earns its commission, in the stats and in the
// payout CSV. Repeated clicks of the visitor count once, with its visitor
// cookie or without; another browser counts.
func TestHostileGrowthClicks(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		s := startOn(t, "optional", backend)
		user := s.token(t, "acme", "user")
		status, body := s.call(t, "POST", "/api/growth/referral/create", user, nil, `{"referrer_id":"ann","campaign":"spring"}`)
		code, _ := body["referral_code"].(string)
		if status != http.StatusOK || len(code) != 8 {
			t.Fatalf("create = %d %v", status, body)
		}

		t.Run("preclaimed event id", func(t *testing.T) {
			res := s.click(t, code, "X-Request-Id", "order-1001", "User-Agent", "hostile/1.0")
			if res.Header.Get("X-Request-Id") != "order-1001" {
				t.Fatalf("request id not echoed: %v", res.Header)
			}
			status, body := s.call(t, "POST", "/api/growth/referral/events", user, nil,
				`{"referral_code":"`+code+`","type":"conversion","event_id":"order-1001","customer_id":"cust-9","revenue":100}`)
			if status != http.StatusOK || body["ok"] != true || body["duplicate"] != false || body["referral_code"] != code {
				t.Fatalf("conversion order-1001 = %d %v", status, body)
			}
			status, body = s.call(t, "GET", "/api/growth/referrals?days=7", user, nil, "")
			if status != http.StatusOK || body["total_clicks"] != 1.0 || body["total_conversions"] != 1.0 || body["total_payout"] != 20.0 {
				t.Fatalf("stats = %d %v", status, body)
			}
			req, _ := http.NewRequest(http.MethodGet, s.GatewayURL+"/api/growth/payouts/export?days=7&state=all", nil)
			req.Header.Set("Authorization", "Bearer "+user)
			res, err := s.http.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			csv, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if want := code + ",ann,spring,0,1,100.00,20.00\n"; res.StatusCode != http.StatusOK || !strings.HasSuffix(string(csv), want) {
				t.Fatalf("export = %d\n%s\nwant the row %s", res.StatusCode, csv, want)
			}
		})

		t.Run("repeated click counts once", func(t *testing.T) {
			ua := "Mozilla/5.0 (X11; Linux x86_64) Chrome/126"
			first := s.click(t, code, "User-Agent", ua)
			visitor := cookieValue(first, "ep_vid")
			if visitor == "" || cookieValue(first, "ep_ref") != code {
				t.Fatalf("cookies = %v", first.Cookies())
			}
			for range 3 {
				s.click(t, code, "User-Agent", ua, "Cookie", "ep_vid="+visitor)
			}
			s.click(t, code, "User-Agent", ua)                                                 // cookie dropped
			s.click(t, code, "User-Agent", ua, "Cookie", "ep_vid=forged", "X-Request-Id", "x") // made-up cookie
			status, body := s.call(t, "GET", "/api/growth/referrals?days=7", user, nil, "")
			if status != http.StatusOK || body["total_clicks"] != 2.0 { // the hostile visitor's and this one's
				t.Fatalf("after one visitor's repeats: %d %v", status, body)
			}
			s.click(t, code, "User-Agent", "Mozilla/5.0 Firefox/127")
			if _, body := s.call(t, "GET", "/api/growth/referrals?days=7", user, nil, ""); body["total_clicks"] != 3.0 {
				t.Fatalf("another browser: %v", body)
			}
		})
	})
}

// A tenant cannot create campaigns without end: with a cap of 3 the
// fourth new campaign is refused (429, CAMPAIGN_LIMIT, the cap in the
// message), an existing one can still be changed, and the listing pages.
func TestHostileGrowthCampaignCap(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		s := startOn(t, "optional", backend, "ECHOPILOT_GROWTH_MAX_CAMPAIGNS=3")
		user := s.token(t, "acme", "user")
		for i := range 3 {
			if status, body := s.call(t, "PUT", fmt.Sprintf("/api/growth/campaigns/c%d", i), user, nil, `{"commission_rate":0.25}`); status != http.StatusOK {
				t.Fatalf("campaign %d = %d %v", i, status, body)
			}
		}
		status, body := s.call(t, "PUT", "/api/growth/campaigns/c3", user, nil, `{"commission_rate":0.25}`)
		e, _ := body["error"].(map[string]any)
		if status != http.StatusTooManyRequests || body["ok"] != false || e["reason"] != "CAMPAIGN_LIMIT" ||
			!strings.Contains(fmt.Sprint(e["message"]), "at most 3 campaigns") {
			t.Fatalf("fourth campaign = %d %v", status, body)
		}
		if status, body := s.call(t, "PUT", "/api/growth/campaigns/c0", user, nil, `{"commission_rate":0.3}`); status != http.StatusOK {
			t.Fatalf("changing a campaign at the cap = %d %v", status, body)
		}
		if status, body := s.call(t, "PUT", "/api/growth/campaigns/c3", s.token(t, "globex", "user"), nil, `{}`); status != http.StatusOK {
			t.Fatalf("another tenant's campaign = %d %v", status, body)
		}
		status, body = s.call(t, "GET", "/api/growth/campaigns?page_size=2", user, nil, "")
		page, _ := body["campaigns"].([]any)
		token, _ := body["next_page_token"].(string)
		if status != http.StatusOK || len(page) != 2 || token == "" {
			t.Fatalf("page 1 = %d %v", status, body)
		}
		status, body = s.call(t, "GET", "/api/growth/campaigns?page_size=2&page_token="+url.QueryEscape(token), user, nil, "")
		page, _ = body["campaigns"].([]any)
		if status != http.StatusOK || len(page) != 1 || body["next_page_token"] != "" {
			t.Fatalf("page 2 = %d %v", status, body)
		}
	})
}
