package app

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"time"

	"github.com/echopilot/echopilot/platform/config"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/service"
	"github.com/echopilot/echopilot/services/queue/internal/domain"
)

// workerTokenSigner signs worker tokens with the Ed25519 key in keyFile,
// nil without one. The tokens carry the configured issuer and audience, so
// every service that lists the public key accepts them; a probe token is
// verified at start against the service's own public key files, so a key
// the queue itself would refuse fails the start, not every worker.
func workerTokenSigner(cfg service.Config, keyFile string) (domain.Signer, error) {
	if keyFile == "" {
		return nil, nil
	}
	key, err := loadEd25519(keyFile)
	if err != nil {
		return nil, fmt.Errorf("worker token key: %w", err)
	}
	var aud []string
	if cfg.Audience != "" {
		aud = []string{cfg.Audience}
	}
	sign := func(tenant, id string, issued, expires time.Time) (string, error) {
		return identity.SignEdDSA(key, identity.SignedClaims{
			Claims: identity.Claims{
				Subject: domain.WorkerTokenSubjectPrefix + id, TenantID: tenant, Roles: []string{domain.RoleWorker},
				Issuer: cfg.Issuer, Audience: aud,
			},
			ID: id, IssuedAt: issued, ExpiresAt: expires,
		})
	}
	v, err := identity.NewVerifier(identity.VerifierConfig{
		PublicKeyFiles: config.List(cfg.PublicKeyFiles), Issuer: cfg.Issuer, Audience: cfg.Audience, TokenCacheSize: -1,
	})
	if err != nil {
		return nil, fmt.Errorf("worker token key: its public key must be in ECHOPILOT_JWT_PUBLIC_KEYS: %w", err)
	}
	defer v.Close()
	now := time.Now()
	probe, err := sign(identity.DefaultTenant, "probe", now, now.Add(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("worker token key: %w", err)
	}
	if _, err := v.Verify(context.Background(), probe); err != nil {
		return nil, fmt.Errorf("worker token key: its public key must be in ECHOPILOT_JWT_PUBLIC_KEYS: %w", err)
	}
	return sign, nil
}

func loadEd25519(path string) (ed25519.PrivateKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: no PEM \"PRIVATE KEY\" block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ed, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: key is %T, want Ed25519", path, k)
	}
	return ed, nil
}
