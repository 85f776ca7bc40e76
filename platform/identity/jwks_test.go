package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/echopilot/echopilot/platform/apierr"
)

// jwksServer serves a replaceable JWK Set and counts its fetches.
type jwksServer struct {
	*httptest.Server
	hits atomic.Int64
	mu   sync.Mutex
	keys []map[string]string
}

func newJWKSServer(t *testing.T, keys ...map[string]string) *jwksServer {
	s := &jwksServer{keys: keys}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": s.keys})
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) serve(keys ...map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = keys
}

func (s *jwksServer) verifier(t *testing.T, cfg VerifierConfig) *Verifier {
	t.Helper()
	cfg.JWKSURL, cfg.HTTPClient = s.URL, s.Client()
	v, err := NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func ecJWK(t *testing.T, kid string, k *ecdsa.PrivateKey) map[string]string {
	t.Helper()
	p, err := k.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{"kty": "EC", "crv": "P-256", "x": b64(p[1:33]), "y": b64(p[33:]), "kid": kid, "alg": "ES256", "use": "sig"}
}

func edJWK(kid string, pub ed25519.PublicKey) map[string]string {
	return map[string]string{"kty": "OKP", "crv": "Ed25519", "x": b64(pub), "kid": kid, "alg": "EdDSA", "use": "sig"}
}

// signKID signs c with key under header kid.
func signKID(t *testing.T, m jwt.SigningMethod, key any, kid string, c jwt.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestJWKSRotation(t *testing.T) {
	k1 := newES256(t)
	edPub, k2, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srv := newJWKSServer(t, ecJWK(t, "k1", k1))
	// Without the verified-token cache a withdrawn key fails at once; with
	// it, within tokenCacheMaxAge (TestTokenCache).
	v := srv.verifier(t, VerifierConfig{TokenCacheSize: -1})
	if got := srv.hits.Load(); got != 1 {
		t.Fatalf("fetches at start = %d, want 1", got)
	}
	c := claimsFor("acme", "user")
	tok1 := signKID(t, jwt.SigningMethodES256, k1, "k1", c)
	tok2 := signKID(t, jwt.SigningMethodEdDSA, k2, "k2", c)
	verify := func(tok string) error {
		_, err := v.Verify(context.Background(), tok)
		return err
	}

	if err := verify(tok1); err != nil {
		t.Fatalf("k1 token: %v", err)
	}
	srv.serve(edJWK("k2", edPub)) // the provider rotates k1 out, k2 in
	if err := verify(tok2); err != nil {
		t.Fatalf("k2 token after rotation: %v", err)
	}
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("fetches after rotation = %d, want 2", got)
	}
	if err := verify(tok1); apierr.Reason(err) != ReasonTokenInvalid {
		t.Fatalf("k1 token after k1 was withdrawn: %v, want %s", err, ReasonTokenInvalid)
	}
	if err := verify(tok2); err != nil {
		t.Fatalf("k2 token again: %v", err)
	}
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("fetches = %d, want still 2: the refresh budget was spent on k2", got)
	}
}

func TestJWKSUnknownKIDFloodIsRateLimited(t *testing.T) {
	known := newES256(t)
	srv := newJWKSServer(t, ecJWK(t, "known", known))
	v := srv.verifier(t, VerifierConfig{})

	c := claimsFor("acme", "user")
	attacker := newES256(t)
	var wg sync.WaitGroup
	var accepted atomic.Int64
	for i := range 200 {
		tok := signKID(t, jwt.SigningMethodES256, attacker, fmt.Sprintf("unknown-%d", i), c)
		wg.Go(func() {
			if _, err := v.Verify(context.Background(), tok); err == nil {
				accepted.Add(1)
			}
		})
	}
	wg.Wait()
	if n := accepted.Load(); n != 0 {
		t.Fatalf("%d tokens of unknown keys accepted", n)
	}
	// The start-up fetch plus one refresh; the limiter refuses the rest.
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("JWKS fetched %d times under the flood, want 2", got)
	}
	if _, err := v.Verify(context.Background(), signKID(t, jwt.SigningMethodES256, known, "known", c)); err != nil {
		t.Fatalf("known key after the flood: %v", err)
	}
}

func TestJWKSNeverVerifiesHS256(t *testing.T) {
	// A JWKS may publish symmetric keys; they are public there, so HS256
	// must never be checked against them, with or without a local secret.
	leaked := randomSecret(t)
	srv := newJWKSServer(t, map[string]string{"kty": "oct", "k": b64(leaked), "kid": "sym", "alg": "HS256"})
	tok := signKID(t, jwt.SigningMethodHS256, leaked, "sym", claimsFor(DefaultTenant, RoleAdmin))
	for name, cfg := range map[string]VerifierConfig{
		"JWKS only":         {},
		"JWKS and a secret": {HS256Secret: randomSecret(t)},
	} {
		v := srv.verifier(t, cfg)
		if _, err := v.Verify(context.Background(), tok); apierr.Reason(err) != ReasonTokenInvalid {
			t.Errorf("%s: err = %v, want %s", name, err, ReasonTokenInvalid)
		}
	}
}

func rsaJWK(kid string, k *rsa.PublicKey) map[string]string {
	return map[string]string{"kty": "RSA", "n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes()), "kid": kid, "alg": "RS256", "use": "sig"}
}

// Keys unfit for signatures are refused even when the signature checks out:
// an encryption key, and an RSA key below 2048 bits (factorable at 1024).
func TestJWKSRefusesKeysUnfitForSignatures(t *testing.T) {
	es := newES256(t)
	encJWK := ecJWK(t, "enc", es)
	encJWK["use"] = "enc"
	noUse := ecJWK(t, "nouse", es)
	delete(noUse, "use")
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	strong, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	srv := newJWKSServer(t, encJWK, noUse, rsaJWK("weak", &weak.PublicKey), rsaJWK("strong", &strong.PublicKey))
	v := srv.verifier(t, VerifierConfig{TokenCacheSize: -1})
	c := claimsFor("acme", "user")
	for _, tc := range []struct {
		kid, want string
		tok       string
	}{
		{"enc", ReasonTokenInvalid, signKID(t, jwt.SigningMethodES256, es, "enc", c)},
		{"weak", ReasonTokenInvalid, signKID(t, jwt.SigningMethodRS256, weak, "weak", c)},
		{"nouse", "", signKID(t, jwt.SigningMethodES256, es, "nouse", c)},
		{"strong", "", signKID(t, jwt.SigningMethodRS256, strong, "strong", c)},
	} {
		_, err := v.Verify(context.Background(), tc.tok)
		if got := apierr.Reason(err); got != tc.want {
			t.Errorf("key %s: reason %q (%v), want %q", tc.kid, got, err, tc.want)
		}
	}
}
