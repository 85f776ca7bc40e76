// Package localstack starts a throwaway stack of the suite's real binaries
// for the load commands: built into a temporary folder, auth required with
// a fresh HS256 secret, on SQLite there or, when ECHOPILOT_DATABASE_URL
// names a PostgreSQL server, on new databases of its own.
package localstack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/echopilot/echopilot/platform/devstack"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/store"
)

// Gateway rate limits for Start's env: every load command says which it
// runs under.
var (
	// NoRateLimits turns the gateway's limits off, for commands that
	// measure throughput.
	NoRateLimits = []string{"ECHOPILOT_RATE_LIMIT_READ=0", "ECHOPILOT_RATE_LIMIT_WRITE=0"}
	// DefaultRateLimits are the gateway's defaults, spelled out.
	DefaultRateLimits = []string{
		"ECHOPILOT_RATE_LIMIT_READ=100", "ECHOPILOT_RATE_LIMIT_READ_BURST=200",
		"ECHOPILOT_RATE_LIMIT_WRITE=50", "ECHOPILOT_RATE_LIMIT_WRITE_BURST=100",
		"ECHOPILOT_RATE_LIMIT_REFUSAL_DELAY=250ms",
	}
)

// Stack is a running throwaway stack.
type Stack struct {
	*devstack.Stack
	Backend string // SQLite or PostgreSQL
	secret  string
	dir     string
}

// Start builds the binaries (from the workspace root, the current folder)
// and starts the stack with env added to every process's environment; env
// should name the gateway's rate limits (NoRateLimits, DefaultRateLimits).
func Start(ctx context.Context, env ...string) (*Stack, error) {
	dir, err := os.MkdirTemp("", "echopilot-load")
	if err != nil {
		return nil, err
	}
	raw := make([]byte, 32) // HS256 secrets must be 32 bytes or more
	_, _ = rand.Read(raw)
	s := &Stack{Backend: "SQLite", dir: dir, secret: hex.EncodeToString(raw)}
	bin := filepath.Join(dir, "bin")
	if err := devstack.Build(ctx, ".", bin, devstack.Packages()...); err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	opt := devstack.Options{BinDir: bin, DataDir: filepath.Join(dir, "data"), Secret: s.secret, AuthMode: "required",
		Env: append([]string{"ECHOPILOT_LOG_LEVEL=warn"}, env...)}
	if admin := os.Getenv("ECHOPILOT_DATABASE_URL"); admin != "" {
		s.Backend = "PostgreSQL"
		urls := map[string][2]string{}
		for _, svc := range devstack.Services() {
			name := "echopilot_load_" + svc.Name + "_" + s.secret[:8]
			m, a, err := store.Provision(ctx, admin, name, name, s.secret)
			if err != nil {
				return nil, errors.Join(err, os.RemoveAll(dir))
			}
			urls[svc.Name] = [2]string{a, m}
		}
		opt.Database = func(svc string) (string, string) { return urls[svc][0], urls[svc][1] }
	}
	if s.Stack, err = devstack.Up(ctx, opt); err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	return s, nil
}

// Token mints an hour's token of tenant with role.
func (s *Stack) Token(tenant, role string) (string, error) {
	return identity.MintHS256([]byte(s.secret), identity.Claims{Subject: "load-" + tenant, TenantID: tenant, Roles: []string{role}}, time.Hour)
}

// Close stops the stack and removes its folder.
func (s *Stack) Close() error { return errors.Join(s.Down(), os.RemoveAll(s.dir)) }
