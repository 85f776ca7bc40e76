package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// The seed's PHASE 120 gate with real binaries: create a referral, track a
// click (through the referral link), a signup and a conversion, see the 20%
// commission in the stats and the row in the CSV download.
func TestGrowthGate(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		s := startOn(t, "optional", backend)
		user := s.token(t, "acme", "user")
		code, body := s.call(t, "POST", "/api/growth/referral/create", user, nil, `{"referrer_id":"user123","campaign":"spring2025"}`)
		ref, _ := body["referral_code"].(string)
		if code != http.StatusOK || body["ok"] != true || len(ref) != 8 || body["clicks"] != 0.0 || body["campaign"] != "spring2025" {
			t.Fatalf("create = %d %v", code, body)
		}
		if code, again := s.call(t, "POST", "/api/growth/referral/create", user, nil, `{"referrer_id":"user123","campaign":"spring2025"}`); code != http.StatusOK || again["referral_code"] != ref {
			t.Fatalf("create again = %d %v, want the same code %s", code, again, ref)
		}

		noFollow := &http.Client{Transport: s.http.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		res, err := noFollow.Get(s.GatewayURL + "/r/" + strings.ToLower(ref))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusFound || !strings.Contains(res.Header.Get("Location"), "ref="+ref) ||
			!strings.Contains(res.Header.Get("Set-Cookie"), "ep_ref="+ref) {
			t.Fatalf("click = %d %v", res.StatusCode, res.Header)
		}
		for _, ev := range []string{
			`{"referral_code":"` + ref + `","type":"signup","event_id":"e2e-signup-1","customer_id":"cust-1"}`,
			`{"referral_code":"` + ref + `","type":"conversion","event_id":"e2e-conv-1","customer_id":"cust-1","revenue":100}`,
			`{"referral_code":"` + ref + `","type":"conversion","event_id":"e2e-conv-1","customer_id":"cust-1","revenue":100}`, // replayed
		} {
			if code, body := s.call(t, "POST", "/api/growth/referral/events", user, nil, ev); code != http.StatusOK || body["ok"] != true {
				t.Fatalf("event = %d %v", code, body)
			}
		}
		code, body = s.call(t, "GET", "/api/growth/referrals?days=7", user, nil, "")
		refs, _ := body["referrals"].([]any)
		if code != http.StatusOK || body["total_clicks"] != 1.0 || body["total_signups"] != 1.0 || body["total_conversions"] != 1.0 ||
			body["total_revenue"] != 100.0 || body["total_payout"] != 20.0 || len(refs) != 1 {
			t.Fatalf("stats = %d %v", code, body)
		}

		req, _ := http.NewRequest(http.MethodGet, s.GatewayURL+"/api/growth/payouts/export?days=7&state=all", nil)
		req.Header.Set("Authorization", "Bearer "+user)
		res, err = s.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		csv, _ := io.ReadAll(res.Body)
		res.Body.Close()
		want := "referral_code,referrer_id,campaign,signups,conversions,revenue_usd,payout_usd\n" + ref + ",user123,spring2025,1,1,100.00,20.00\n"
		if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Disposition"), "attachment") || string(csv) != want {
			t.Fatalf("export = %d %v\n%s", res.StatusCode, res.Header, csv)
		}
		// Another tenant sees none of it.
		if code, body := s.call(t, "GET", "/api/growth/referrals?days=7", s.token(t, "globex", "user"), nil, ""); code != http.StatusOK || body["total_referrals"] != 0.0 {
			t.Fatalf("globex stats = %d %v", code, body)
		}
	})
}
