package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"go.uber.org/zap"
	"golang.org/x/oauth2"
)

// OIDC signs people in through an OpenID Connect provider (authorization
// code flow with PKCE, state and nonce) instead of a pasted token. The
// token the console then carries to the backends is the provider's
// (Forward), so the services must trust the provider's keys
// (ECHOPILOT_JWKS_URL) and find tenant_id and roles in its claims.
type OIDC struct {
	Issuer       string
	ClientID     string
	ClientSecret string
	// RedirectURL is this console's /console/oidc/callback as the
	// browser reaches it (registered with the provider).
	RedirectURL string
	Scopes      []string // default: openid profile email
	// Forward is the token carried to the backends: "access_token"
	// (default) or "id_token".
	Forward string
	// HTTPClient talks to the provider; nil is http.DefaultClient.
	HTTPClient *http.Client
}

const (
	oidcCookie = "echopilot_console_oidc"
	oidcTTL    = 10 * time.Minute
)

// oidcFlow is one sign-in in progress, sealed in a cookie for its
// callback.
type oidcFlow struct {
	State, Nonce, Verifier, Next string
	Expires                      time.Time
}

// oidcClient discovers the provider on first use (so a gateway starts
// while the provider is down) and keeps it.
type oidcClient struct {
	cfg      OIDC
	mu       sync.Mutex
	provider *oidc.Provider
}

func (o *oidcClient) get(ctx context.Context) (*oidc.Provider, oauth2.Config, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.cfg.HTTPClient != nil {
		ctx = oidc.ClientContext(ctx, o.cfg.HTTPClient)
	}
	if o.provider == nil {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		p, err := oidc.NewProvider(dctx, o.cfg.Issuer)
		if err != nil {
			return nil, oauth2.Config{}, fmt.Errorf("identity provider %s: %w", o.cfg.Issuer, err)
		}
		o.provider = p
	}
	scopes := o.cfg.Scopes
	if len(scopes) == 0 {
		scopes = []string{oidc.ScopeOpenID, "profile", "email"}
	}
	return o.provider, oauth2.Config{ClientID: o.cfg.ClientID, ClientSecret: o.cfg.ClientSecret, RedirectURL: o.cfg.RedirectURL,
		Endpoint: o.provider.Endpoint(), Scopes: scopes}, nil
}

// oidcStart sends the browser to the provider.
func (c *Console) oidcStart(w http.ResponseWriter, r *http.Request) {
	_, oc, err := c.oidc.get(r.Context())
	if err != nil {
		c.log.Warn("console: OIDC discovery failed", zap.Error(err))
		c.showLogin(w, r, http.StatusServiceUnavailable, "The identity provider cannot be reached: "+err.Error())
		return
	}
	f := oidcFlow{State: randomToken(), Nonce: randomToken(), Verifier: oauth2.GenerateVerifier(),
		Next: safeNext(r.URL.Query().Get("next")), Expires: c.now().Add(oidcTTL)}
	v, err := c.seal.sealValue(oidcAD, f)
	if err != nil {
		http.Error(w, "could not start the sign-in", http.StatusInternalServerError)
		return
	}
	setCookie(w, r, oidcCookie, v, f.Expires)
	http.Redirect(w, r, oc.AuthCodeURL(f.State, oidc.Nonce(f.Nonce), oauth2.S256ChallengeOption(f.Verifier)), http.StatusFound)
}

// oidcCallback finishes the flow: state and the sealed flow must match,
// the code is exchanged with the PKCE verifier, the ID token must verify
// (issuer, audience, expiry, nonce), and the forwarded token must then be
// accepted by the platform, as a pasted one is.
func (c *Console) oidcCallback(w http.ResponseWriter, r *http.Request) {
	fail := func(msg string) { c.showLogin(w, r, http.StatusUnauthorized, msg) }
	ck, err := r.Cookie(oidcCookie)
	if err != nil {
		fail("The sign-in took too long or was started elsewhere: start again.")
		return
	}
	setCookie(w, r, oidcCookie, "", time.Time{})
	var f oidcFlow
	if err := c.seal.openValue(oidcAD, ck.Value, &f); err != nil || !c.now().Before(f.Expires) ||
		!sameToken(r.URL.Query().Get("state"), f.State) {
		fail("The sign-in answer does not belong to this browser's sign-in: start again.")
		return
	}
	if e := r.URL.Query().Get("error"); e != "" {
		fail("The identity provider refused: " + e + " " + r.URL.Query().Get("error_description"))
		return
	}
	provider, oc, err := c.oidc.get(r.Context())
	if err != nil {
		fail(err.Error())
		return
	}
	ctx := r.Context()
	if c.oidc.cfg.HTTPClient != nil {
		ctx = oidc.ClientContext(ctx, c.oidc.cfg.HTTPClient)
	}
	tok, err := oc.Exchange(ctx, r.URL.Query().Get("code"), oauth2.VerifierOption(f.Verifier))
	if err != nil {
		fail("The sign-in code was refused by the identity provider.")
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := provider.Verifier(&oidc.Config{ClientID: c.oidc.cfg.ClientID, Now: c.now}).Verify(ctx, raw)
	if err != nil {
		fail("The identity provider's ID token does not verify: " + err.Error())
		return
	}
	if !sameToken(idt.Nonce, f.Nonce) {
		fail("The ID token's nonce does not match this sign-in.")
		return
	}
	forward := tok.AccessToken
	if c.oidc.cfg.Forward == "id_token" {
		forward = raw
	}
	if err := c.startSession(w, r, forward); err != nil {
		fail(err.Error())
		return
	}
	http.Redirect(w, r, f.Next, http.StatusSeeOther)
}

// oidcAD binds a sealed sign-in flow to its purpose, apart from sessions.
var oidcAD = []byte("echopilot-console-oidc-v1")

var errNoOIDC = errors.New("console: OIDC needs an issuer, a client id and a redirect URL")

func (o OIDC) check() error {
	if o.Issuer == "" || o.ClientID == "" || o.RedirectURL == "" {
		return errNoOIDC
	}
	if o.Forward != "" && o.Forward != "access_token" && o.Forward != "id_token" {
		return fmt.Errorf("console: OIDC forward %q: want access_token or id_token", o.Forward)
	}
	return nil
}
