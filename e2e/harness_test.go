// Package e2e starts the real binaries, the same way `make run` does, and
// checks the seed's gates through the gateway.
package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/devstack"
	"github.com/echopilot/echopilot/platform/identity"
)

// binDir holds the binaries built once for the whole package.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: skipped in -short mode")
		return 0
	}
	dir, err := os.MkdirTemp("", "echopilot-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	pkgs := []string{devstack.GatewayPkg}
	for _, s := range devstack.Services() {
		pkgs = append(pkgs, s.Pkg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	if err := devstack.Build(ctx, "..", dir, pkgs...); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	binDir = dir
	return m.Run()
}

// suite is one running stack for a test.
type suite struct {
	*devstack.Stack
	secret []byte
	logs   *strings.Builder
}

func startSuite(t *testing.T, authMode string) *suite {
	t.Helper()
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	secret := hex.EncodeToString(raw)
	logs := &strings.Builder{}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := devstack.Up(ctx, devstack.Options{
		BinDir: binDir, DataDir: filepath.Join(t.TempDir(), "data"), AuthMode: authMode, Secret: secret,
		Out: &lockedWriter{b: logs},
	})
	if err != nil {
		t.Fatalf("start suite: %v\n%s", err, logs)
	}
	s := &suite{Stack: st, secret: []byte(secret), logs: logs}
	t.Cleanup(func() {
		if err := st.Down(); err != nil {
			t.Errorf("stop suite: %v", err)
		}
		if t.Failed() {
			t.Logf("service logs:\n%s", logs)
		}
	})
	return s
}

func (s *suite) token(t *testing.T, tenant string, roles ...string) string {
	t.Helper()
	tok, err := identity.MintHS256(s.secret, identity.Claims{Subject: "e2e-" + tenant, TenantID: tenant, Roles: roles}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// call sends a request to the gateway and decodes a JSON answer.
func (s *suite) call(t *testing.T, method, path, token string, headers map[string]string, body string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.GatewayURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: status %d, body is not JSON: %q", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}
