package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/services/queue/app"
)

// keyArgs writes an Ed25519 worker token key pair and returns the queue's
// flags for it.
func keyArgs(t *testing.T) []string {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	pubDER, _ := x509.MarshalPKIXPublicKey(pub)
	dir := t.TempDir()
	keyFile, pubFile := filepath.Join(dir, "k.pem"), filepath.Join(dir, "k.pub")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"--worker-token-key-file=" + keyFile, "--jwt-public-keys=" + pubFile}
}

// A worker token from a file is refreshed once half its life has passed:
// calls carry the new token, and the file holds it.
func TestTokenFileRefresh(t *testing.T) {
	// A 4s max lifetime makes the token's whole life 4s (its ttl is 1m).
	conn := servicetest.Start(t, app.Spec(), servicetest.Options{AuthMode: "required",
		Args: append([]string{"--worker-token-max-lifetime=4s"}, keyArgs(t)...)})
	queue := queuev1.NewQueueServiceClient(conn)
	res, err := queue.CreateWorkerToken(servicetest.As(t, "acme", "admin"), &queuev1.CreateWorkerTokenRequest{Name: "edge", Ttl: "1m"})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(res.GetToken()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := newCredentials(Config{Mode: "worker", TokenFile: file})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := queuev1.NewQueueServiceClient(credsConn{conn, b})
	go b.keepFresh(ctx, client, zap.NewNop())

	deadline := time.Now().Add(10 * time.Second)
	for {
		tok, err := b.token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := os.ReadFile(file)
		if tok != res.GetToken() && strings.TrimSpace(string(raw)) == tok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the token was not refreshed within 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := client.LeaseJobs(ctx, &queuev1.LeaseJobsRequest{WorkerId: "w1"}); err != nil {
		t.Fatalf("lease with the refreshed token: %v", err)
	}
	if got, _ := b.GetRequestMetadata(ctx); got["authorization"] == "Bearer "+res.GetToken() {
		t.Fatal("calls still carry the first token")
	}
}

func b64url(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestTokenFlagsContradict(t *testing.T) {
	if _, err := newCredentials(Config{Mode: "worker", Token: "t", TokenFile: "f"}); err == nil {
		t.Fatal("--token with --token-file accepted")
	}
	if _, err := newCredentials(Config{Mode: "worker", TokenFile: filepath.Join(t.TempDir(), "missing")}); err == nil {
		t.Fatal("a missing token file accepted")
	}
}

func TestUnverifiedClaims(t *testing.T) {
	for _, bad := range []string{"", "a.b", "a.!!!.c", "a." + b64url(`{"sub":"x","iat":10,"exp":5}`) + ".c"} {
		if _, ok := unverifiedClaims(bad); ok {
			t.Errorf("unverifiedClaims(%q) ok", bad)
		}
	}
	c, ok := unverifiedClaims("a." + b64url(`{"sub":"worker-token:x","iat":10,"exp":70}`) + ".c")
	if !ok || c.Subject != "worker-token:x" || c.expires.Sub(c.issued) != time.Minute {
		t.Fatalf("claims = %+v, %v", c, ok)
	}
}
