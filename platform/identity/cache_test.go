package identity

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/echopilot/echopilot/platform/apierr"
)

func TestTokenCache(t *testing.T) {
	k := newTestKeys(t)
	v := k.verifier(t)
	ctx := context.Background()

	// A cached token still expires with its exp: leeway aside, no later.
	c := claimsFor("acme", "user")
	c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(1500 * time.Millisecond))
	tok := k.hs(t, c)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if _, ok := v.cache.get(sha256.Sum256([]byte(tok)), time.Now()); !ok {
		t.Fatal("verified token not cached")
	}
	if _, ok := v.cache.get(sha256.Sum256([]byte(tok)), c.ExpiresAt.Time); ok {
		t.Fatal("cache serves a token at its exp")
	}

	// A token that fails is never cached, so a fix to the key set or a
	// tampered byte cannot be masked.
	bad := tok[:len(tok)-2] + "xx"
	for i := 0; i < 2; i++ {
		if _, err := v.Verify(ctx, bad); apierr.Reason(err) != ReasonTokenInvalid {
			t.Fatalf("tampered token: %v", err)
		}
	}
	if _, ok := v.cache.get(sha256.Sum256([]byte(bad)), time.Now()); ok {
		t.Fatal("a refused token was cached")
	}

	// Entries live at most tokenCacheMaxAge even for long-lived tokens.
	long := claimsFor("acme", "user")
	long.ExpiresAt = jwt.NewNumericDate(time.Now().Add(24 * time.Hour))
	ltok := k.hs(t, long)
	if _, err := v.Verify(ctx, ltok); err != nil {
		t.Fatal(err)
	}
	if _, ok := v.cache.get(sha256.Sum256([]byte(ltok)), time.Now().Add(tokenCacheMaxAge+time.Second)); ok {
		t.Fatal("entry outlived tokenCacheMaxAge")
	}
}

func TestTokenCacheIsBounded(t *testing.T) {
	c := newTokenCache(100, time.Minute)
	now := time.Now()
	for i := 0; i < 1000; i++ {
		c.put(sha256.Sum256([]byte{byte(i), byte(i >> 8)}), Principal{Tenant: "acme"}, now.Add(time.Hour), now)
	}
	if n := len(c.entries); n > 100 {
		t.Fatalf("cache holds %d entries, bound is 100", n)
	}
}
