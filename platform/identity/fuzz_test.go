package identity

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/metadata"

	authv1 "github.com/echopilot/echopilot/gen/go/echopilot/auth/v1"
	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	"github.com/echopilot/echopilot/platform/apierr"
)

// The fuzz keys are fixed so that the committed corpus holds tokens that
// verify (they expire in 2100).
const fuzzSecret = "echopilot-fuzz-secret-0123456789abcdef"

func fuzzEdKey() ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
}

func FuzzVerify(f *testing.F) {
	edKey := fuzzEdKey()
	edPub := edKey.Public().(ed25519.PublicKey)
	v, err := NewVerifier(VerifierConfig{HS256Secret: []byte(fuzzSecret), PublicKeyFiles: []string{writePEM(f, edPub)}})
	if err != nil {
		f.Fatal(err)
	}
	c := claimsFor("acme", "user")
	f.Add(signToken(f, jwt.SigningMethodHS256, []byte(fuzzSecret), c))
	f.Add(signToken(f, jwt.SigningMethodEdDSA, edKey, c))
	f.Add(signToken(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, c))
	f.Add("")

	f.Fuzz(func(t *testing.T, raw string) {
		p, err := v.Verify(context.Background(), raw)
		if err != nil {
			if r := apierr.Reason(err); r != ReasonTokenInvalid && r != ReasonTokenExpired {
				t.Fatalf("reason %q for %q", r, raw)
			}
			return
		}
		checkGenuine(t, raw, []byte(fuzzSecret), edPub, p)
	})
}

// checkGenuine fails unless raw, which Verify accepted, is signed by one of
// the keys and carries what p says: an oracle built on the crypto
// primitives directly rather than on jwt.
func checkGenuine(t *testing.T, raw string, secret []byte, edPub ed25519.PublicKey, p Principal) {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("accepted %q: %d segments", raw, len(parts))
	}
	decode := func(s string) []byte {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("accepted %q: segment %q: %v", raw, s, err)
		}
		return b
	}
	var header struct{ Alg string }
	if err := json.Unmarshal(decode(parts[0]), &header); err != nil {
		t.Fatalf("accepted %q: header: %v", raw, err)
	}
	signed, sig := []byte(parts[0]+"."+parts[1]), decode(parts[2])
	switch header.Alg {
	case "HS256":
		mac := hmac.New(sha256.New, secret)
		mac.Write(signed)
		if !hmac.Equal(mac.Sum(nil), sig) {
			t.Fatalf("accepted %q: HMAC does not match", raw)
		}
	case "EdDSA":
		if !ed25519.Verify(edPub, signed, sig) {
			t.Fatalf("accepted %q: Ed25519 signature does not verify", raw)
		}
	default:
		t.Fatalf("accepted %q with alg %q", raw, header.Alg)
	}
	var claims struct {
		Sub      string   `json:"sub"`
		TenantID string   `json:"tenant_id"`
		Roles    []string `json:"roles"`
		Exp      *float64 `json:"exp"`
	}
	if err := json.Unmarshal(decode(parts[1]), &claims); err != nil {
		t.Fatalf("accepted %q: claims: %v", raw, err)
	}
	if claims.Exp == nil || *claims.Exp+leeway.Seconds() < float64(time.Now().Unix()) {
		t.Fatalf("accepted %q: exp %v is missing or past", raw, claims.Exp)
	}
	if !ValidTenant(claims.TenantID) || p.Tenant != claims.TenantID || p.Subject != claims.Sub || !slices.Equal(p.Roles, claims.Roles) {
		t.Fatalf("accepted %q as %+v; claims are %+v", raw, p, claims)
	}
}

func FuzzRequestedTenant(f *testing.F) {
	f.Add("acme", "", "", "")
	f.Add("acme", "acme", "acme", "acme")
	f.Add("acme", "", "globex", "")
	f.Add("", "", "", "globex")
	f.Add("ACME", "", "", "")
	f.Add("acme, globex", "", "", "")
	f.Add(strings.Repeat("a", 64), "", "", "")
	read := &authv1.Policy{Access: authv1.Access_ACCESS_READ}

	f.Fuzz(func(t *testing.T, header1, header2, query, field string) {
		md := metadata.MD{}
		md.Append(MDTenant, header1, header2)
		md.Append(MDTenantQuery, query)
		names := requestedTenants(md, &tenancyv1.GetTenantRequest{TenantId: field})

		distinct := map[string]bool{}
		allValid := true
		for _, n := range []string{header1, header2, query, field} {
			if n != "" {
				distinct[n] = true
				allValid = allValid && ValidTenant(n)
			}
		}
		got, e := resolveTenant(names)
		switch {
		case e == nil:
			if !allValid || len(distinct) > 1 || len(distinct) == 1 && !distinct[got] || len(distinct) == 0 && got != "" {
				t.Fatalf("resolved %q from %q", got, names)
			}
		case e.Reason == ReasonTenantInvalid:
			if allValid {
				t.Fatalf("TENANT_INVALID for valid names %q", names)
			}
		case e.Reason == ReasonTenantConflict:
			if len(distinct) < 2 {
				t.Fatalf("TENANT_CONFLICT for %q", names)
			}
		default:
			t.Fatalf("unexpected error %v", e)
		}

		// An anonymous caller acts in the one well-formed tenant named, or
		// in the default tenant.
		c, out := Decide(Input{Policy: read, Mode: ModeOptional, Requested: names})
		if (out.Denial == nil) != (e == nil) {
			t.Fatalf("Decide denial %v, resolve error %v", out.Denial, e)
		}
		if out.Denial == nil && (!ValidTenant(c.Tenant) || c.Tenant != orDefault(got) || c.Verified) {
			t.Fatalf("anonymous caller %+v from %q", c, names)
		}
	})
}

// FuzzParseAPIKey: the parser never panics, accepts only the documented
// format, and what it accepts round-trips: the id is the key's and the
// hash is the SHA-256 of the secret's canonical decoding.
func FuzzParseAPIKey(f *testing.F) {
	f.Add("ep_live_01KBXR5M2Q7S9V3W6Y8Z0A1B2C_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("ep_live_")
	f.Add("")
	f.Fuzz(func(t *testing.T, raw string) {
		k, err := ParseAPIKey(raw)
		if err != nil {
			return
		}
		if !scannerPattern.MatchString(raw) {
			t.Fatalf("accepted %q, which is not of the documented format", raw)
		}
		secret, err := base64.RawURLEncoding.DecodeString(raw[len(APIKeyPrefix)+27:])
		if err != nil || len(secret) != APIKeySecretBytes || base64.RawURLEncoding.EncodeToString(secret) != raw[len(APIKeyPrefix)+27:] {
			t.Fatalf("accepted %q with a non-canonical secret", raw)
		}
		if k.ID != raw[len(APIKeyPrefix):len(APIKeyPrefix)+26] || k.Hash != sha256.Sum256(secret) {
			t.Fatalf("parsed %q as %+v", raw, k)
		}
	})
}
