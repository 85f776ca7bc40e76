package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"

	"github.com/echopilot/echopilot/platform/apierr"
)

func TestVerifyPublicKeyFiles(t *testing.T) {
	es1, es2 := newES256(t), newES256(t)
	edPub, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	// Two EC keys and an Ed25519 key in one file, a PKCS#1 RSA key in another.
	multi := writePEM(t, &es1.PublicKey, &es2.PublicKey, edPub)
	pkcs1 := writeFile(t, pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rsaKey.PublicKey)}))
	v, err := NewVerifier(VerifierConfig{PublicKeyFiles: []string{multi, pkcs1}})
	if err != nil {
		t.Fatal(err)
	}
	c := claimsFor("acme", "user")
	for name, tok := range map[string]string{
		"ES256 first key":  signToken(t, jwt.SigningMethodES256, es1, c),
		"ES256 second key": signToken(t, jwt.SigningMethodES256, es2, c),
		"EdDSA":            signToken(t, jwt.SigningMethodEdDSA, edKey, c),
		"RS256":            signToken(t, jwt.SigningMethodRS256, rsaKey, c),
	} {
		p, err := v.Verify(context.Background(), tok)
		want := Principal{Subject: "sub-acme", Tenant: "acme", Roles: []string{"user"}}
		if err != nil || !reflect.DeepEqual(p, want) {
			t.Errorf("%s: Verify = %+v, %v; want %+v", name, p, err, want)
		}
	}
	for name, tok := range map[string]string{
		"HS256 without a secret":  signToken(t, jwt.SigningMethodHS256, randomSecret(t), c),
		"ES256 of an unknown key": signToken(t, jwt.SigningMethodES256, newES256(t), c),
		"PS256 of a known key":    signToken(t, jwt.SigningMethodPS256, rsaKey, c),
	} {
		if _, err := v.Verify(context.Background(), tok); apierr.Reason(err) != ReasonTokenInvalid {
			t.Errorf("%s: err = %v, want %s", name, err, ReasonTokenInvalid)
		}
	}
}

func TestVerifyErrors(t *testing.T) {
	k := newTestKeys(t)
	v := k.verifier(t)
	expired := claimsFor("acme")
	expired.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-leeway - time.Second))
	skewed := claimsFor("acme")
	skewed.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-leeway / 2))
	roleString := jwt.MapClaims{"tenant_id": "acme", "roles": "admin", "exp": time.Now().Add(time.Hour).Unix(), "iss": testIssuer, "aud": testAudience}

	cases := []struct {
		name   string
		raw    string
		reason string // "" for success
	}{
		{"within leeway", k.hs(t, skewed), ""},
		{"expired", k.hs(t, expired), ReasonTokenExpired},
		// An expired token of another key is no genuine token: invalid.
		{"expired, wrong key", signToken(t, jwt.SigningMethodHS256, randomSecret(t), expired), ReasonTokenInvalid},
		{"roles not an array", signToken(t, jwt.SigningMethodHS256, k.secret, roleString), ReasonTokenInvalid},
		{"empty", "", ReasonTokenInvalid},
		{"garbage", "not.a.jwt", ReasonTokenInvalid},
		{"too long", strings.Repeat("a", maxTokenLen+1), ReasonTokenInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), tc.raw)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			e, ok := apierr.As(err)
			if !ok || e.Reason != tc.reason || e.Code != codes.Unauthenticated || e.Domain != Domain {
				t.Fatalf("err = %v, want UNAUTHENTICATED %s in %s", err, tc.reason, Domain)
			}
			// Clients see a fixed message, not the cause.
			if e.Message != errTokenInvalid().Message && e.Message != errTokenExpired().Message {
				t.Errorf("client message = %q", e.Message)
			}
		})
	}
}

func TestNewVerifierRefusesBadKeys(t *testing.T) {
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(newES256(t))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]VerifierConfig{
		"no key":          {},
		"short secret":    {HS256Secret: []byte("dev-secret")},
		"missing file":    {PublicKeyFiles: []string{t.TempDir() + "/absent.pem"}},
		"no PEM block":    {PublicKeyFiles: []string{writeFile(t, []byte("not a key"))}},
		"private key":     {PublicKeyFiles: []string{writeFile(t, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))}},
		"short RSA key":   {PublicKeyFiles: []string{writePEM(t, &rsa1024.PublicKey)}},
		"P-384 key":       {PublicKeyFiles: []string{writePEM(t, &p384.PublicKey)}},
		"JWKS URL syntax": {JWKSURL: "::not a url"},
	}
	for name, cfg := range cases {
		if v, err := NewVerifier(cfg); err == nil {
			v.Close()
			t.Errorf("%s: NewVerifier succeeded", name)
		}
	}
}

func TestMintHS256(t *testing.T) {
	secret := randomSecret(t)
	v, err := NewVerifier(VerifierConfig{HS256Secret: secret, Issuer: testIssuer, Audience: testAudience})
	if err != nil {
		t.Fatal(err)
	}
	c := Claims{Subject: "svc-finops", TenantID: DefaultTenant, Roles: []string{RoleService}, Issuer: testIssuer, Audience: []string{testAudience}}
	tok, err := MintHS256(secret, c, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Verify(context.Background(), tok)
	want := Principal{Subject: "svc-finops", Tenant: DefaultTenant, Roles: []string{RoleService}}
	if err != nil || !reflect.DeepEqual(p, want) {
		t.Fatalf("Verify = %+v, %v; want %+v", p, err, want)
	}

	for name, mint := range map[string]func() (string, error){
		"short secret": func() (string, error) { return MintHS256(secret[:31], c, time.Minute) },
		"bad tenant":   func() (string, error) { c := c; c.TenantID = "Acme"; return MintHS256(secret, c, time.Minute) },
		"no ttl":       func() (string, error) { return MintHS256(secret, c, 0) },
	} {
		if _, err := mint(); err == nil {
			t.Errorf("%s: MintHS256 succeeded", name)
		}
	}
}
