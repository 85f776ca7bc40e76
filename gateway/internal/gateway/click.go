package gateway

import (
	"net/http"
	"net/url"
	"time"

	"google.golang.org/protobuf/proto"

	growthv1 "github.com/echopilot/echopilot/gen/go/echopilot/growth/v1"
)

// ClickCookie names the attribution cookie a referral link sets.
const ClickCookie = "ep_ref"

// redirectClick answers a tracked referral click: 302 to the campaign's
// landing page with ref=<code> in its query (the landing page is usually on
// another site, which cannot read our cookie), and the attribution cookie
// for the campaign's window, for sign-ups that come back through us.
func redirectClick(w http.ResponseWriter, r *http.Request, resp proto.Message) {
	click, ok := resp.(*growthv1.TrackClickResponse)
	target, err := url.Parse(click.GetLandingUrl())
	if !ok || err != nil || (target.Scheme != "http" && target.Scheme != "https") {
		// The service validates landing URLs when campaigns are set; a bad
		// one here is our bug, not the visitor's.
		http.Error(w, `{"ok":false,"error":{"reason":"LANDING_URL_INVALID","message":"campaign landing URL is not usable"}}`, http.StatusBadGateway)
		return
	}
	q := target.Query()
	q.Set("ref", click.GetReferralCode())
	target.RawQuery = q.Encode()
	http.SetCookie(w, &http.Cookie{
		Name:     ClickCookie,
		Value:    click.GetReferralCode(),
		Path:     "/",
		MaxAge:   int(click.GetAttributionWindowSeconds()),
		Expires:  time.Now().Add(time.Duration(click.GetAttributionWindowSeconds()) * time.Second),
		HttpOnly: true,
		Secure:   r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https",
		SameSite: http.SameSiteLaxMode,
	})
	w.Header().Set("Cache-Control", "no-store") // every click must reach us
	http.Redirect(w, r, target.String(), http.StatusFound)
}
