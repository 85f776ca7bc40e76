package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/echopilot/echopilot/gateway/internal/gateway"
	"github.com/echopilot/echopilot/platform/config"
)

// TestPrintConfigDeclaresBackends: --print-config names every backend and
// lists the variable each one's address comes from, and run stops there.
func TestPrintConfigDeclaresBackends(t *testing.T) {
	var s settings
	l, _ := loader(&s)
	var out strings.Builder
	l.Stdout = &out
	if err := l.Parse([]string{"--print-config"}); !errors.Is(err, config.ErrPrinted) {
		t.Fatalf("Parse = %v, want ErrPrinted", err)
	}
	var desc struct {
		Settings []config.Setting `json:"settings"`
		Facts    struct {
			Backends []string `json:"backends"`
		} `json:"facts"`
	}
	if err := json.Unmarshal([]byte(out.String()), &desc); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, b := range gateway.Backends() {
		want = append(want, b.Name)
	}
	if !slices.Equal(desc.Facts.Backends, want) {
		t.Fatalf("backends = %q, want %q", desc.Facts.Backends, want)
	}
	for _, b := range want {
		key := "ECHOPILOT_" + strings.ToUpper(b) + "_ADDR"
		if !slices.ContainsFunc(desc.Settings, func(s config.Setting) bool { return s.Env == key && s.Flag == b+"-addr" }) {
			t.Errorf("no setting %s (--%s-addr)", key, b)
		}
	}
	if err := run([]string{"--print-config"}); err != nil {
		t.Fatalf("run(--print-config) = %v, want a clean exit", err)
	}
}

// TestConsoleConfig: the console's files are read at start, and a short
// session key is refused rather than used.
func TestConsoleConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if cfg, err := consoleConfig(settings{console: false}); cfg != nil || err != nil {
		t.Fatalf("console off: %v %v", cfg, err)
	}
	if _, err := consoleConfig(settings{console: true, consoleSessionKeyFile: write("short", "tooshort\n")}); err == nil {
		t.Fatal("a short session key was accepted")
	}
	if _, err := consoleConfig(settings{console: true, consoleSessionKeyFile: filepath.Join(dir, "missing")}); err == nil {
		t.Fatal("a missing session key file was accepted")
	}
	cfg, err := consoleConfig(settings{console: true, consoleSessionKeyFile: write("key", strings.Repeat("k", 40)+"\n"),
		oidcIssuer: "https://idp.example", oidcClientID: "console", oidcSecretFile: write("oidc", "s3cret\n")})
	if err != nil || string(cfg.SessionKey) != strings.Repeat("k", 40) || cfg.OIDC.ClientSecret != "s3cret" || cfg.DevTicket != nil {
		t.Fatalf("config %+v, %v", cfg, err)
	}
	if _, err := consoleConfig(settings{console: true, consoleDevTicketFile: write("ticket", "{}")}); err == nil {
		t.Fatal("an empty dev ticket was accepted")
	}
}
