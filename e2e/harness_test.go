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
	"github.com/echopilot/echopilot/platform/store/storetest"
)

// binDir holds the binaries built once for the whole package.
var binDir string

// stripeSecret is the Stripe webhook signing secret of every stack.
const stripeSecret = "whsec_e2e_0123456789abcdef"

// complianceSecret verifies the default tenant's compliance webhooks.
const complianceSecret = "whsec_ZTJlLWNvbXBsaWFuY2UtMDEyMzQ1Njc4OWFi"

const edgeWorkerPkg = "./services/queue/cmd/edge-worker"

// envPlaintext, when set, runs the stacks without TLS; by default every
// gRPC connection of a stack is TLS, mutual between services, so the TLS
// path is what every end-to-end test goes through.
const envPlaintext = "ECHOPILOT_E2E_PLAINTEXT"

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
	pkgs := devstack.Packages(edgeWorkerPkg)
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
	out    *lockedWriter // children's output, into logs
	// ownerURL names each service's database as its owner, for tests that
	// change it behind the service's back.
	ownerURL map[string]string
	// dataDir holds the stack's files (audit's signing key among them).
	dataDir string
	// http is the client for the gateway: it checks every exchange
	// against /openapi.json (contract_test.go) and fails the test on a
	// violation.
	http *http.Client
}

// backends runs fn on a stack over SQLite and, when ECHOPILOT_TEST_POSTGRES_URL
// is set, over PostgreSQL (one database per service, services connected as
// the non-owner app role).
func backends(t *testing.T, fn func(t *testing.T, backend string)) {
	for _, b := range []string{"sqlite", "postgres"} {
		t.Run(b, func(t *testing.T) {
			if b == "postgres" && os.Getenv(storetest.EnvPostgresURL) == "" {
				t.Skip(storetest.EnvPostgresURL + " not set: skipping PostgreSQL end-to-end runs")
			}
			fn(t, b)
		})
	}
}

func startSuite(t *testing.T, authMode string) *suite { return startOn(t, authMode, "sqlite") }

// startOn starts a stack on backend ("sqlite" or "postgres"), with env
// added to every process's environment (see startWithEnv).
func startOn(t *testing.T, authMode, backend string, env ...string) *suite {
	t.Helper()
	if backend != "postgres" {
		return startWithEnv(t, authMode, nil, env...)
	}
	return startStack(t, authMode, postgresDatabases(t), 1, env...)
}

// postgresDatabases makes a fresh database per service and returns where
// each service connects (app role) and migrates (owner).
func postgresDatabases(t *testing.T) func(string) (string, string) {
	t.Helper()
	urls := map[string][2]string{}
	for _, svc := range devstack.Services() {
		migrateURL, appURL := storetest.Postgres(t)
		urls[svc.Name] = [2]string{appURL, migrateURL}
	}
	return func(svc string) (string, string) { return urls[svc][0], urls[svc][1] }
}

// startWith starts a stack whose services connect where database says (nil:
// SQLite under the test's folder).
func startWith(t *testing.T, authMode string, database func(string) (string, string)) *suite {
	t.Helper()
	return startWithEnv(t, authMode, database)
}

// startWithEnv is startWith with extra environment for every service (and
// the gateway), such as ECHOPILOT_GROWTH_MAX_CAMPAIGNS=3; it comes after
// the suite's own, so it wins.
func startWithEnv(t *testing.T, authMode string, database func(string) (string, string), env ...string) *suite {
	t.Helper()
	return startStack(t, authMode, database, 1, env...)
}

// startStack is startWithEnv with replicas processes per service
// (devstack.Options.Replicas).
func startStack(t *testing.T, authMode string, database func(string) (string, string), replicas int, env ...string) *suite {
	t.Helper()
	return startStackBinaries(t, authMode, database, replicas, nil, env...)
}

// startStackBinaries is startStack with binary naming the binary of a
// process when it is not the one built for the package
// (devstack.Options.Binary): an older commit's, for the upgrade check.
func startStackBinaries(t *testing.T, authMode string, database func(string) (string, string), replicas int, binary func(string) string, env ...string) *suite {
	t.Helper()
	dataDir := filepath.Join(t.TempDir(), "data")
	owners := map[string]string{}
	for _, svc := range devstack.Services() {
		owners[svc.Name] = "sqlite://" + filepath.Join(dataDir, svc.Name+".db")
		if database != nil {
			_, owners[svc.Name] = database(svc.Name)
		}
	}
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	secret := hex.EncodeToString(raw)
	logs := &strings.Builder{}
	out := &lockedWriter{b: logs}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := devstack.Up(ctx, devstack.Options{
		BinDir: binDir, DataDir: dataDir, AuthMode: authMode, Secret: secret,
		Out: out, Database: database, Binary: binary, TLS: os.Getenv(envPlaintext) == "", Replicas: replicas, Env: append([]string{
			"ECHOPILOT_STRIPE_WEBHOOK_SECRET=" + stripeSecret,
			"ECHOPILOT_COMPLIANCE_WEBHOOK_SECRET=" + complianceSecret,
			// Outbound webhooks retry, and a killed audit's claims expire,
			// within a test's patience.
			"ECHOPILOT_WEBHOOK_TIMEOUT=2s", "ECHOPILOT_WEBHOOK_RETRY_BASE=200ms", "ECHOPILOT_WEBHOOK_RETRY_CAP=2s",
			// No rate limits at the gateway: tests make requests as fast as
			// they can. A test of the limits sets its own (hostile_limits_test.go).
			"ECHOPILOT_RATE_LIMIT_READ=0", "ECHOPILOT_RATE_LIMIT_WRITE=0",
		}, env...),
	})
	if err != nil {
		t.Fatalf("start suite: %v\n%s", err, out.String())
	}
	s := &suite{Stack: st, secret: []byte(secret), logs: logs, out: out, ownerURL: owners, dataDir: dataDir, http: http.DefaultClient}
	t.Cleanup(func() {
		if err := st.Down(); err != nil {
			t.Errorf("stop suite: %v", err)
		}
		if t.Failed() {
			t.Logf("service logs:\n%s", out.String())
		}
	})
	// An older commit's gateway (the upgrade check) serves its own
	// document; the contract is this commit's.
	if binary == nil {
		c := newContract(t, st.GatewayURL)
		s.http = &http.Client{Transport: c}
		t.Cleanup(func() { c.report(t) })
	}
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
	resp, err := s.http.Do(req)
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
