package gateway

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	growthv1 "github.com/echopilot/echopilot/gen/go/echopilot/growth/v1"
)

// ClickCookie names the attribution cookie a referral link sets.
const ClickCookie = "ep_ref"

// VisitorCookie names the cookie with the visitor id the growth service
// gives a referral link's visitor, so that its repeated clicks count once.
const VisitorCookie = "ep_vid"

// trackClick sends a referral link's click to the growth service with what
// the service needs to tell visitors apart, and nothing that names the
// event: the click's id is the service's own. X-Request-Id stays a log
// correlation id (it travels as x-request-id metadata, as on every call).
// The connection's address goes as it is; X-Forwarded-For goes along as a
// header value, which the service never takes for the client's address.
func trackClick(ctx context.Context, conn *grpc.ClientConn, r RawRequest, opts ...grpc.CallOption) (proto.Message, error) {
	req := &growthv1.TrackClickRequest{
		ReferralCode:  r.Params["referral_code"],
		ClientAddress: r.RemoteAddr,
		ForwardedFor:  strings.Join(r.Header.Values("X-Forwarded-For"), ", "),
		UserAgent:     r.UserAgent(),
	}
	if c, err := r.Cookie(VisitorCookie); err == nil {
		req.VisitorId = c.Value
	}
	return growthv1.NewGrowthServiceClient(conn).TrackClick(ctx, req, opts...)
}

// redirectClick answers a tracked referral click: 302 to the campaign's
// landing page with ref=<code> in its query (the landing page is usually on
// another site, which cannot read our cookie), the attribution cookie for
// the campaign's window, for sign-ups that come back through us, and the
// visitor cookie for as long.
func redirectClick(w http.ResponseWriter, r *http.Request, resp proto.Message) {
	click, ok := resp.(*growthv1.TrackClickResponse)
	if ok && click.GetPaused() {
		pausedClick(w)
		return
	}
	target, err := url.Parse(click.GetLandingUrl())
	if !ok || err != nil || (target.Scheme != "http" && target.Scheme != "https") {
		// The service validates landing URLs when campaigns are set; a bad
		// one here is our bug, not the visitor's.
		writeError(w, r, http.StatusBadGateway, codes.Internal, "LANDING_URL_INVALID", "campaign landing URL is not usable", nil)
		return
	}
	q := target.Query()
	q.Set("ref", click.GetReferralCode())
	target.RawQuery = q.Encode()
	cookie := func(name, value string) *http.Cookie {
		return &http.Cookie{
			Name:     name,
			Value:    value,
			Path:     "/",
			MaxAge:   int(click.GetAttributionWindowSeconds()),
			Expires:  time.Now().Add(time.Duration(click.GetAttributionWindowSeconds()) * time.Second),
			HttpOnly: true,
			Secure:   r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https",
			SameSite: http.SameSiteLaxMode,
		}
	}
	http.SetCookie(w, cookie(ClickCookie, click.GetReferralCode()))
	if v := click.GetVisitorId(); v != "" {
		http.SetCookie(w, cookie(VisitorCookie, v))
	}
	w.Header().Set("Cache-Control", "no-store") // every click must reach us
	http.Redirect(w, r, target.String(), http.StatusFound)
}

// pausedPage is what a suspended tenant's referral link answers: nothing
// about the tenant or why, no cookie, no redirect.
const pausedPage = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Link unavailable</title></head>` +
	`<body><p>This link is not available right now.</p></body></html>`

// pausedClick answers the click on a suspended tenant's link with a
// neutral page (200, so a crawler or preview does not retry it as an error).
func pausedClick(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store") // the link works again once resumed
	h.Set("Content-Security-Policy", "default-src 'none'")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, pausedPage)
}
