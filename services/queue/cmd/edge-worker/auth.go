package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/svcauth"
)

// roleWorker is the role the queue's worker API requires.
const roleWorker = "worker"

// workerTokenPrefix starts the subject of a worker token the queue minted
// (CreateWorkerToken); only those refresh.
const workerTokenPrefix = "worker-token:"

// Refresh retries after a failure at this pace, until the token expires.
const refreshRetry = 5 * time.Second

// bearer attaches credentials to every call (grpc credentials.PerRPCCredentials):
// a fixed token, a token file re-read when it changes, a worker token
// minted from the local HS256 secret (cached and renewed before it expires,
// so a worker runs for days on it), or, with none, just the tenant, which a
// queue in auth=optional mode accepts (unverified) for enqueue and status.
// A queue-minted worker token is refreshed by keepFresh.
type bearer struct {
	static string
	source svcauth.TokenSource // --token-file, or minted; nil otherwise
	file   string              // --token-file, rewritten after a refresh
	tenant string
	// secure makes gRPC refuse to send the token over plaintext: set when
	// every connection it rides on is TLS.
	secure bool

	mu sync.Mutex
	// refreshed replaces the configured token while that is still
	// refreshedFrom: a new token in the file wins over it.
	refreshed, refreshedFrom string
}

func newCredentials(cfg Config) (*bearer, error) {
	b := &bearer{static: cfg.Token, tenant: cfg.Tenant}
	switch {
	case cfg.Token != "" && cfg.TokenFile != "":
		return nil, errors.New("--token and --token-file contradict each other: set one")
	case cfg.Token != "":
	case cfg.TokenFile != "":
		b.source, b.file = svcauth.File(cfg.TokenFile), cfg.TokenFile
	case cfg.Secret != "":
		b.source = svcauth.MintedClaims([]byte(cfg.Secret),
			identity.Claims{Subject: "edge-worker:" + cfg.WorkerID, TenantID: cfg.Tenant, Roles: []string{roleWorker}})
	case cfg.Mode == "worker":
		return nil, errors.New("no credentials: set --token-file (ECHOPILOT_TOKEN_FILE) or --token (ECHOPILOT_TOKEN), " +
			"or ECHOPILOT_JWT_HS256_SECRET and --tenant for a local worker token")
	}
	if b.source != nil {
		// Fail now, not on the first call, when the file, secret or tenant is bad.
		if _, err := b.token(context.Background()); err != nil {
			return nil, err
		}
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

// configured is the token as configured, before any refresh.
func (b *bearer) configured(ctx context.Context) (string, error) {
	if b.source == nil {
		return b.static, nil
	}
	return b.source(ctx)
}

func (b *bearer) token(ctx context.Context) (string, error) {
	tok, err := b.configured(ctx)
	if err != nil {
		return "", err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.refreshed != "" && tok == b.refreshedFrom {
		return b.refreshed, nil
	}
	return tok, nil
}

// keepFresh refreshes a queue-minted worker token once half its lifetime
// has passed, until ctx ends; other tokens are left alone (a token file
// may turn into a worker token later, so it keeps looking).
func (b *bearer) keepFresh(ctx context.Context, queue queuev1.QueueServiceClient, log *zap.Logger) {
	// final is a token whose refresh reached its max lifetime: refreshing
	// it again would gain nothing.
	var final string
	for {
		wait := time.Minute
		tok, err := b.token(ctx)
		c, ok := unverifiedClaims(tok)
		if err == nil && ok && tok != final && strings.HasPrefix(c.Subject, workerTokenPrefix) {
			wait = time.Until(c.issued.Add(c.expires.Sub(c.issued) / 2))
		}
		if wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			continue
		}
		res, err := queue.RefreshWorkerToken(ctx, &queuev1.RefreshWorkerTokenRequest{})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn("refresh worker token", zap.Error(err))
			select {
			case <-ctx.Done():
				return
			case <-time.After(refreshRetry):
			}
			continue
		}
		if res.GetExpireTime().AsTime().Unix() <= c.expires.Unix() { // JWT times are whole seconds
			final = res.GetToken()
		}
		b.replace(ctx, res.GetToken(), log)
		log.Info("refreshed worker token", zap.Time("expires", res.GetExpireTime().AsTime()))
	}
}

// replace makes tok the token of every call from now on and, when the
// token came from a writable file, writes it there too (atomically), so a
// restarted worker starts with it.
func (b *bearer) replace(ctx context.Context, tok string, log *zap.Logger) {
	from, err := b.configured(ctx)
	if err != nil {
		return
	}
	b.mu.Lock()
	b.refreshed, b.refreshedFrom = tok, from
	b.mu.Unlock()
	if b.file == "" {
		return
	}
	if err := writeFileAtomic(b.file, tok); err != nil {
		log.Debug("token file not rewritten (the refreshed token stays in memory)", zap.Error(err))
	}
}

func writeFileAtomic(path, content string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".token-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(content + "\n"); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

type jwtTimes struct {
	Subject string `json:"sub"`
	Iat     int64  `json:"iat"`
	Exp     int64  `json:"exp"`
	issued  time.Time
	expires time.Time
}

// unverifiedClaims reads a JWT's subject and times without checking its
// signature: the worker only schedules its refresh by them, the queue
// verifies the token.
func unverifiedClaims(tok string) (jwtTimes, bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return jwtTimes{}, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return jwtTimes{}, false
	}
	var c jwtTimes
	if err := json.Unmarshal(raw, &c); err != nil || c.Exp <= c.Iat || c.Iat <= 0 {
		return jwtTimes{}, false
	}
	c.issued, c.expires = time.Unix(c.Iat, 0), time.Unix(c.Exp, 0)
	return c, true
}
