package main

import (
	"context"
	"errors"

	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/svcauth"
)

// roleWorker is the role the queue's worker API requires.
const roleWorker = "worker"

// bearer attaches credentials to every call (grpc credentials.PerRPCCredentials):
// a fixed token, a worker token minted from the local HS256 secret (cached
// and renewed before it expires, so a worker runs for days on it), or, with
// neither, just the tenant, which a queue in auth=optional mode accepts
// (unverified) for enqueue and status.
type bearer struct {
	static string
	mint   svcauth.TokenSource // nil without a secret
	tenant string
	// secure makes gRPC refuse to send the token over plaintext: set when
	// every connection it rides on is TLS.
	secure bool
}

func newCredentials(cfg Config) (*bearer, error) {
	b := &bearer{static: cfg.Token, tenant: cfg.Tenant}
	switch {
	case cfg.Token != "":
	case cfg.Secret != "":
		b.mint = svcauth.MintedClaims([]byte(cfg.Secret),
			identity.Claims{Subject: "edge-worker:" + cfg.WorkerID, TenantID: cfg.Tenant, Roles: []string{roleWorker}})
		// Fail now, not on the first call, when the secret or tenant is bad.
		if _, err := b.token(context.Background()); err != nil {
			return nil, err
		}
	case cfg.Mode == "worker":
		return nil, errors.New("no credentials: set --token (ECHOPILOT_TOKEN), or ECHOPILOT_JWT_HS256_SECRET and --tenant for a local worker token")
	}
	return b, nil
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (b *bearer) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	tok, err := b.token(ctx)
	if err != nil {
		return nil, err
	}
	if tok == "" {
		return map[string]string{identity.MDTenant: b.tenant}, nil
	}
	return map[string]string{identity.MDAuthorization: "Bearer " + tok}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials. It is
// false over plaintext (loopback, or --insecure) so that local runs work.
func (b *bearer) RequireTransportSecurity() bool { return b.secure }

func (b *bearer) token(ctx context.Context) (string, error) {
	if b.mint == nil {
		return b.static, nil
	}
	return b.mint(ctx)
}
