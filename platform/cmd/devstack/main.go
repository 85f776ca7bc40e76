// Command devstack is `make run`: it builds the suite, starts every service
// and the gateway on SQLite under a data folder, prints the gateway URL and a
// platform-admin dev token, and stops everything on Ctrl-C.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/echopilot/echopilot/platform/config"
	"github.com/echopilot/echopilot/platform/devstack"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/store"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	l := config.New("devstack")
	var dataDir, authMode, databaseURL string
	var port, basePort, replicas int
	var useTLS bool
	l.String(&dataDir, "data", "ECHOPILOT_DATA_DIR", ".data", "folder for databases, binaries and the dev secret")
	l.String(&authMode, "auth-mode", "ECHOPILOT_AUTH_MODE", "optional", "optional or required")
	l.Bool(&useTLS, "tls", "ECHOPILOT_DEVSTACK_TLS", false,
		"issue a local CA and certificates under <data>/tls and run every gRPC connection over TLS (mutual TLS between services); the gateway's HTTP stays plain")
	l.Int(&port, "port", "ECHOPILOT_HTTP_PORT", 8080, "gateway port")
	l.Int(&basePort, "base-port", "ECHOPILOT_BASE_PORT", 9101, "first service gRPC port (metrics at +100)")
	l.Int(&replicas, "replicas", "ECHOPILOT_DEVSTACK_REPLICAS", 1,
		"processes per service (gRPC at base-port+10*i+offset); more than 1 needs --database-url: every client balances over all of them")
	l.String(&databaseURL, "database-url", "ECHOPILOT_DATABASE_URL", "",
		"empty: SQLite under the data folder; postgres://… (a role that may create roles and databases): one database per service, created if missing")
	if err := l.Parse(args); err != nil {
		if errors.Is(err, config.ErrPrinted) {
			return nil
		}
		return err
	}
	dataDir = devstack.Abs(dataDir)
	secret, err := devSecret(filepath.Join(dataDir, "jwt-secret"), "")
	if err != nil {
		return err
	}
	// The Stripe webhook secret, unless the environment brings one (the
	// children inherit it): local senders sign test events with it.
	stripeSecret, err := envOrDevSecret("ECHOPILOT_STRIPE_WEBHOOK_SECRET", filepath.Join(dataDir, "stripe-webhook-secret"))
	if err != nil {
		return err
	}
	complianceSecret, err := envOrDevSecret("ECHOPILOT_COMPLIANCE_WEBHOOK_SECRET", filepath.Join(dataDir, "compliance-webhook-secret"))
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	binDir := filepath.Join(dataDir, "bin")
	pkgs := devstack.Packages()
	fmt.Println("building", strings.Join(pkgs, " "))
	if err := devstack.Build(ctx, ".", binDir, pkgs...); err != nil {
		return err
	}
	database, err := postgresDatabases(ctx, databaseURL, dataDir)
	if err != nil {
		return err
	}
	token, err := identity.MintHS256([]byte(secret), identity.Claims{
		Subject: "dev-admin", TenantID: identity.DefaultTenant, Roles: []string{identity.RoleAdmin},
	}, 24*time.Hour)
	if err != nil {
		return err
	}
	// The console's one-time sign-in link for the dev admin, and a session
	// key kept under the data folder so sessions survive a restart.
	_, ticketFile, signIn, err := devstack.ConsoleTicket(dataDir, token)
	if err != nil {
		return err
	}
	if _, err := devSecret(filepath.Join(dataDir, "console-session-key"), ""); err != nil {
		return err
	}
	stack, err := devstack.Up(ctx, devstack.Options{
		BinDir: binDir, DataDir: dataDir, AuthMode: authMode, Secret: secret,
		GatewayPort: port, BasePort: basePort, Out: os.Stdout, Database: database, TLS: useTLS, Replicas: replicas,
		Env: []string{
			"ECHOPILOT_STRIPE_WEBHOOK_SECRET=" + stripeSecret,
			"ECHOPILOT_COMPLIANCE_WEBHOOK_SECRET=" + complianceSecret,
			"ECHOPILOT_CONSOLE_DEV_TICKET_FILE=" + ticketFile,
			"ECHOPILOT_CONSOLE_SESSION_KEY_FILE=" + filepath.Join(dataDir, "console-session-key"),
		},
	})
	if err != nil {
		return err
	}
	transport := "plaintext gRPC on loopback"
	if stack.TLS != nil {
		transport = fmt.Sprintf("gRPC over TLS, CA %s (an edge worker: --ca-file=%s)", stack.TLS.CAFile, stack.TLS.CAFile)
	}
	if replicas > 1 {
		transport += fmt.Sprintf(", %d replicas per service", replicas)
	}
	fmt.Printf(`
EchoPilot is running (auth=%s, data in %s)
  services:  %s
  gateway:   http://localhost:%d
  console:   http://localhost:%d/console/
    sign in once as the dev admin (link valid 10 minutes, single use):
    http://localhost:%d%s
  try:       curl -s http://localhost:%d/api/tenant/info
  admin token (tenant "default", role "admin", 24h):
    %s
  more tokens: ECHOPILOT_JWT_HS256_SECRET=$(cat %s) go run ./platform/cmd/devtoken --tenant acme
  Stripe webhook secret (sign test events with it): %s
  compliance webhook secret of tenant "default": %s
  outbound webhooks reach %s
Ctrl-C stops everything.
`, authMode, dataDir, transport, port, port, port, signIn, port, token, filepath.Join(dataDir, "jwt-secret"), stripeSecret, complianceSecret, outboundReach())

	<-ctx.Done()
	fmt.Println("\nstopping…")
	return stack.Down()
}

// outboundReach says where tenants' webhook endpoints may lead. The guard
// stays on locally too; a local receiver needs ECHOPILOT_OUTBOUND_ALLOW in
// the environment, which the children inherit.
func outboundReach() string {
	if allow := os.Getenv("ECHOPILOT_OUTBOUND_ALLOW"); allow != "" {
		return "public addresses and " + allow
	}
	return "public addresses only (for a local receiver: ECHOPILOT_OUTBOUND_ALLOW=127.0.0.1/32 make run)"
}

// envOrDevSecret is the secret in the environment variable key (the
// children inherit it), or else the local one kept at path.
// postgresDatabases provisions, on the server of adminURL, a database
// echopilot_<service> and its app role per service (idempotent), and
// returns where each service connects; nil (SQLite) when adminURL is empty.
func postgresDatabases(ctx context.Context, adminURL, dataDir string) (func(string) (string, string), error) {
	if adminURL == "" {
		return nil, nil
	}
	password, err := devSecret(filepath.Join(dataDir, "postgres-app-password"), "")
	if err != nil {
		return nil, err
	}
	urls := map[string][2]string{}
	for _, s := range devstack.Services() {
		migrateURL, appURL, err := store.Provision(ctx, adminURL, "echopilot_"+s.Name, "echopilot_"+s.Name+"_app", password)
		if err != nil {
			return nil, err
		}
		urls[s.Name] = [2]string{appURL, migrateURL}
	}
	fmt.Println("PostgreSQL: one database per service, echopilot_<service>, each service connecting as echopilot_<service>_app")
	return func(svc string) (string, string) { return urls[svc][0], urls[svc][1] }, nil
}

func envOrDevSecret(key, path string) (string, error) {
	if v := os.Getenv(key); v != "" {
		return v, nil
	}
	return devSecret(path, "whsec_")
}

// devSecret returns a local secret kept at path, creating it (prefix plus
// 64 hex digits) on first run so every checkout has its own.
func devSecret(path, prefix string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read dev secret: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("generate dev secret: %w", err)
	}
	secret := prefix + hex.EncodeToString(raw)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", fmt.Errorf("data dir: %w", err)
	}
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write dev secret: %w", err)
	}
	return secret, nil
}
