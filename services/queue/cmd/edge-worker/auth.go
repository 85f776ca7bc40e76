package main

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/echopilot/echopilot/platform/identity"
)

// Minted tokens live briefly and are renewed well before they expire, so a
// worker can run for days on the local secret.
const (
	mintedTTL   = 10 * time.Minute
	renewBefore = 2 * time.Minute
)

// roleWorker is the role the queue's worker API requires.
const roleWorker = "worker"

// bearer attaches credentials to every call (grpc credentials.PerRPCCredentials):
// a fixed token, a worker token minted from the local HS256 secret, or, with
// neither, just the tenant, which a queue in auth=optional mode accepts
// (unverified) for enqueue and status.
type bearer struct {
	static string
	secret []byte
	claims identity.Claims
	tenant string
	secure bool
	now    func() time.Time

	mu      sync.Mutex
	minted  string
	expires time.Time
}

func newCredentials(cfg Config) (*bearer, error) {
	b := &bearer{static: cfg.Token, tenant: cfg.Tenant, secure: cfg.QueueTLS, now: time.Now}
	switch {
	case cfg.Token != "":
	case cfg.Secret != "":
		b.secret = []byte(cfg.Secret)
		b.claims = identity.Claims{Subject: "edge-worker:" + cfg.WorkerID, TenantID: cfg.Tenant, Roles: []string{roleWorker}}
		// Fail now, not on the first call, when the secret or tenant is bad.
		if _, err := b.token(); err != nil {
			return nil, err
		}
	case cfg.Mode == "worker":
		return nil, errors.New("no credentials: set --token (ECHOPILOT_TOKEN), or ECHOPILOT_JWT_HS256_SECRET and --tenant for a local worker token")
	}
	return b, nil
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (b *bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	tok, err := b.token()
	if err != nil {
		return nil, err
	}
	if tok == "" {
		return map[string]string{identity.MDTenant: b.tenant}, nil
	}
	return map[string]string{identity.MDAuthorization: "Bearer " + tok}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials. It is
// false without --queue-tls so that local runs over plain gRPC work.
func (b *bearer) RequireTransportSecurity() bool { return b.secure }

func (b *bearer) token() (string, error) {
	if b.static != "" || b.secret == nil {
		return b.static, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if b.minted != "" && now.Before(b.expires.Add(-renewBefore)) {
		return b.minted, nil
	}
	tok, err := identity.MintHS256(b.secret, b.claims, mintedTTL)
	if err != nil {
		return "", err
	}
	b.minted, b.expires = tok, now.Add(mintedTTL)
	return tok, nil
}
