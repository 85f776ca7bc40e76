package console

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"

	"github.com/echopilot/echopilot/gateway/internal/backendtest"
	"github.com/echopilot/echopilot/platform/store/storetest"
)

// fakeIdP is a small OpenID provider on loopback: discovery, JWKS, an
// authorize endpoint that approves at once (the person "signs in"), and a
// token endpoint that checks the PKCE verifier.
type fakeIdP struct {
	srv      *httptest.Server
	key      *rsa.PrivateKey
	clientID string
	mu       sync.Mutex
	codes    map[string]grant
	// badNonce makes the ID token carry another nonce.
	badNonce atomic.Bool
}

type grant struct{ nonce, challenge, redirect string }

func newFakeIdP(t *testing.T) *fakeIdP {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	idp := &fakeIdP{key: key, clientID: "echopilot-console", codes: map[string]grant{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		u := idp.srv.URL
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": u, "authorization_endpoint": u + "/authorize", "token_endpoint": u + "/token", "jwks_uri": u + "/jwks",
			"id_token_signing_alg_values_supported": []string{"RS256"}, "response_types_supported": []string{"code"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256",
			"n": base64.RawURLEncoding.EncodeToString(key.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(key.E)).Bytes()),
		}}})
	})
	mux.HandleFunc("GET /authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("response_type") != "code" || q.Get("client_id") != idp.clientID || q.Get("code_challenge_method") != "S256" || q.Get("nonce") == "" {
			http.Error(w, "bad authorize request: "+r.URL.RawQuery, http.StatusBadRequest)
			return
		}
		code := randomToken()
		idp.mu.Lock()
		idp.codes[code] = grant{nonce: q.Get("nonce"), challenge: q.Get("code_challenge"), redirect: q.Get("redirect_uri")}
		idp.mu.Unlock()
		http.Redirect(w, r, q.Get("redirect_uri")+"?code="+code+"&state="+url.QueryEscape(q.Get("state")), http.StatusFound)
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		idp.mu.Lock()
		g, ok := idp.codes[r.PostForm.Get("code")]
		delete(idp.codes, r.PostForm.Get("code"))
		idp.mu.Unlock()
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if !ok || base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge || r.PostForm.Get("redirect_uri") != g.redirect {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid_grant"}`))
			return
		}
		nonce := g.nonce
		if idp.badNonce.Load() {
			nonce = "another-nonce"
		}
		claims := jwt.MapClaims{"iss": idp.srv.URL, "sub": "carol@acme", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
			"tenant_id": "acme", "roles": []string{"viewer"}}
		access := idp.sign(t, claims)
		claims["aud"], claims["nonce"] = idp.clientID, nonce
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": access, "id_token": idp.sign(t, claims), "token_type": "Bearer", "expires_in": 3600})
	})
	idp.srv = httptest.NewServer(mux)
	t.Cleanup(idp.srv.Close)
	return idp
}

func (idp *fakeIdP) sign(t *testing.T, c jwt.MapClaims) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(idp.key)
	if err != nil {
		t.Error(err)
	}
	return s
}

// TestOIDCSignIn: with an issuer configured, the sign-in page offers the
// provider; the code flow (state, nonce, PKCE) ends in a session carrying
// the provider's token, which the services verify through its JWKS.
func TestOIDCSignIn(t *testing.T) {
	idp := newFakeIdP(t)
	conns := map[string]grpc.ClientConnInterface{}
	for name, c := range backendtest.Start(t, storetest.Backends()[0], "--jwks-url="+idp.srv.URL+"/jwks") {
		conns[name] = c
	}
	// The console's redirect URL names the server it is served on.
	var served atomic.Pointer[Console]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served.Load().ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	con, err := New(Config{OIDC: &OIDC{Issuer: idp.srv.URL, ClientID: idp.clientID, RedirectURL: srv.URL + "/console/oidc/callback"}},
		Deps{Conns: conns, Health: func(context.Context) map[string]string { return nil }, Traffic: func() Traffic { return Traffic{} }},
		zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	served.Store(con)
	st := &stack{srv: srv, con: con, conns: conns}

	b := st.browser(t)
	want(t, b.get("/console/login?next=/console/queue"), http.StatusOK, "Sign in with your identity provider", "/console/oidc/start?next=%2Fconsole%2Fqueue")
	follow := func(b *browser, path string) page {
		t.Helper()
		b.c.CheckRedirect = nil // a browser follows the provider's redirects
		defer func() {
			b.c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		}()
		return b.get(path)
	}
	p := follow(b, "/console/oidc/start?next=/console/queue")
	want(t, p, http.StatusOK, "Queue", "carol@acme · acme")

	t.Run("a callback without its flow is refused", func(t *testing.T) {
		want(t, st.browser(t).get("/console/oidc/callback?code=x&state=y"), http.StatusUnauthorized, "start again")
	})
	t.Run("a forged state is refused", func(t *testing.T) {
		b := st.browser(t)
		p := b.get("/console/oidc/start")
		loc, _ := url.Parse(p.header.Get("Location"))
		if p.status != http.StatusFound || !strings.HasPrefix(loc.String(), idp.srv.URL+"/authorize") {
			t.Fatalf("start: %d %q", p.status, loc)
		}
		want(t, b.get("/console/oidc/callback?code=x&state=forged"), http.StatusUnauthorized, "does not belong")
	})
	t.Run("a wrong nonce is refused", func(t *testing.T) {
		idp.badNonce.Store(true)
		defer idp.badNonce.Store(false)
		want(t, follow(st.browser(t), "/console/oidc/start"), http.StatusUnauthorized, "nonce")
	})
	t.Run("configuration is checked", func(t *testing.T) {
		for _, o := range []OIDC{{Issuer: idp.srv.URL}, {Issuer: idp.srv.URL, ClientID: "x", RedirectURL: "y", Forward: "cookie"}} {
			if _, err := New(Config{OIDC: &o}, Deps{Conns: conns, Health: func(context.Context) map[string]string { return nil }, Traffic: func() Traffic { return Traffic{} }}, zaptest.NewLogger(t)); err == nil {
				t.Fatalf("OIDC %+v accepted", o)
			}
		}
	})
}
