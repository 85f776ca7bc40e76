package identity

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/echopilot/echopilot/platform/apierr"
)

func newEd25519(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func signedClaims(tenant string) SignedClaims {
	now := time.Now()
	return SignedClaims{
		Claims: Claims{Subject: "worker-token:abc", TenantID: tenant, Roles: []string{"worker"}, Issuer: testIssuer, Audience: []string{testAudience}},
		ID:     "abc", IssuedAt: now, ExpiresAt: now.Add(time.Hour),
	}
}

// A token signed with a key in PublicKeyFiles verifies by its kid, also
// when a JWKS is configured (which does not know the kid), and with the
// configured issuer and audience checked.
func TestSignEdDSAVerifiesByKID(t *testing.T) {
	key, other := newEd25519(t), newEd25519(t)
	file := writePEM(t, other.Public(), key.Public())
	jwks := newJWKSServer(t)
	for name, v := range map[string]*Verifier{
		"files":          mustVerifier(t, VerifierConfig{PublicKeyFiles: []string{file}, Issuer: testIssuer, Audience: testAudience}),
		"files and jwks": jwks.verifier(t, VerifierConfig{PublicKeyFiles: []string{file}, Issuer: testIssuer, Audience: testAudience}),
	} {
		t.Run(name, func(t *testing.T) {
			tok, err := SignEdDSA(key, signedClaims("acme"))
			if err != nil {
				t.Fatal(err)
			}
			p, err := v.Verify(context.Background(), tok)
			if err != nil || p.Tenant != "acme" || p.Subject != "worker-token:abc" || len(p.Roles) != 1 || p.Roles[0] != "worker" {
				t.Fatalf("verify = %+v, %v", p, err)
			}
			// Signed by a key the verifier does not hold: refused.
			stranger, err := SignEdDSA(newEd25519(t), signedClaims("acme"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := v.Verify(context.Background(), stranger); apierr.Reason(err) != ReasonTokenInvalid {
				t.Fatalf("stranger's token: %v, want %s", err, ReasonTokenInvalid)
			}
		})
	}
}

// A kid names a key and its algorithm: a token cannot have an ES256 key
// used as an HMAC secret or any other way.
func TestKIDPinsAlgorithm(t *testing.T) {
	es := newES256(t)
	v := mustVerifier(t, VerifierConfig{PublicKeyFiles: []string{writePEM(t, &es.PublicKey)}, HS256Secret: randomSecret(t)})
	kid, err := KeyID(&es.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	c := claimsFor("acme", "worker")
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	tok.Header["kid"] = kid
	raw, err := tok.SignedString([]byte("not the key but the verifier must not even try"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), raw); apierr.Reason(err) != ReasonTokenInvalid {
		t.Fatalf("HS256 token naming an ES256 kid: %v, want %s", err, ReasonTokenInvalid)
	}
	// The kid's own algorithm verifies.
	good := signKID(t, jwt.SigningMethodES256, es, kid, c)
	if _, err := v.Verify(context.Background(), good); err != nil {
		t.Fatalf("ES256 token with its kid: %v", err)
	}
}

func TestSignEdDSARefusesBadClaims(t *testing.T) {
	key := newEd25519(t)
	c := signedClaims("Not A Tenant")
	if _, err := SignEdDSA(key, c); err == nil {
		t.Fatal("bad tenant signed")
	}
	c = signedClaims("acme")
	c.ExpiresAt = c.IssuedAt
	if _, err := SignEdDSA(key, c); err == nil {
		t.Fatal("token expiring at issue signed")
	}
}

func mustVerifier(t *testing.T, cfg VerifierConfig) *Verifier {
	t.Helper()
	v, err := NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}
