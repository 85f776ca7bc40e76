package svcauth

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/identity"
)

const secret = "0123456789abcdef0123456789abcdef"

func verifier(t *testing.T) *identity.Verifier {
	t.Helper()
	v, err := identity.NewVerifier(identity.VerifierConfig{HS256Secret: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

func TestMintedIsTheServiceIdentityAndCached(t *testing.T) {
	src := Minted([]byte(secret), "queue")
	a, err := src(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := src(t.Context())
	if a != b {
		t.Error("a second call minted a new token instead of reusing the first")
	}
	p, err := verifier(t).Verify(t.Context(), a)
	if err != nil {
		t.Fatal(err)
	}
	if p.ServiceName() != "queue" || p.Tenant != identity.DefaultTenant {
		t.Fatalf("principal %+v is not service queue of the default tenant", p)
	}
}

func TestMintedIsRenewedBeforeItExpires(t *testing.T) {
	now := time.Now()
	mints := 0
	src := cached(func() time.Time { return now }, func() (string, error) { mints++; return fmt.Sprint("tok-", mints), nil })
	if tok, err := src(t.Context()); err != nil || tok != "tok-1" {
		t.Fatalf("first token = %q, %v", tok, err)
	}
	now = now.Add(mintTTL - renewBefore - time.Second)
	if tok, _ := src(t.Context()); tok != "tok-1" {
		t.Fatalf("a token still fresh was replaced by %q", tok)
	}
	now = now.Add(2 * time.Second) // within renewBefore of its expiry
	if tok, _ := src(t.Context()); tok != "tok-2" {
		t.Fatalf("a token near its expiry was not renewed: %q", tok)
	}
}

func TestMintedRefusesAShortSecret(t *testing.T) {
	if _, err := Minted([]byte("short"), "queue")(t.Context()); err == nil {
		t.Fatal("a 5-byte secret minted a token")
	}
}

func TestFileIsReReadWhenRotated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("first\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	src := file(path, func() time.Time { return now })
	if got, err := src(t.Context()); err != nil || got != "first" {
		t.Fatalf("token = %q, %v; want first (trimmed)", got, err)
	}
	if err := os.WriteFile(path, []byte("second-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, now.Add(time.Minute), now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, _ := src(t.Context()); got != "first" {
		t.Fatalf("token = %q re-read before the recheck interval", got)
	}
	now = now.Add(fileRecheck)
	if got, _ := src(t.Context()); got != "second-token" {
		t.Fatalf("token = %q after rotation, want second-token", got)
	}
	// Caught midway through a rotation: keep the last good token.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	now = now.Add(fileRecheck)
	if got, err := src(t.Context()); err != nil || got != "second-token" {
		t.Fatalf("token = %q, %v while the file is missing; want the last good one", got, err)
	}
}

func TestFileMustBeReadableAtFirst(t *testing.T) {
	dir := t.TempDir()
	if _, err := File(filepath.Join(dir, "missing"))(t.Context()); err == nil {
		t.Error("a missing file gave a token")
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := File(empty)(t.Context()); err == nil {
		t.Error("an empty file gave a token")
	}
}

func TestCredentialsAttachTheBearerToken(t *testing.T) {
	md, err := Credentials(func(context.Context) (string, error) { return "tok", nil }).GetRequestMetadata(t.Context())
	if err != nil || md[identity.MDAuthorization] != "Bearer tok" || len(md) != 1 {
		t.Fatalf("metadata = %v, %v", md, err)
	}
	if _, err := Credentials(Unavailable("no credential configured")).GetRequestMetadata(t.Context()); err == nil {
		t.Fatal("an unavailable source attached nothing and no error")
	}
}
