package app_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/encoding/protojson"

	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/service"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/platform/validate"
	"github.com/echopilot/echopilot/services/queue/app"
)

// signingKey is a worker token key pair in files, as a deployment mounts it.
type signingKey struct {
	key          ed25519.PrivateKey
	keyFile, pub string
	args         []string
}

func newSigningKey(t *testing.T) signingKey {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	k := signingKey{key: key, keyFile: filepath.Join(dir, "worker-token.key"), pub: filepath.Join(dir, "worker-token.pub")}
	if err := os.WriteFile(k.keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(k.pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	k.args = []string{"--worker-token-key-file=" + k.keyFile, "--jwt-public-keys=" + k.pub}
	return k
}

// sign forges a worker token with the queue's own key, for ids and times
// the API would never issue.
func (k signingKey) sign(t *testing.T, tenant, id string, issued, expires time.Time) string {
	t.Helper()
	tok, err := identity.SignEdDSA(k.key, identity.SignedClaims{
		Claims: identity.Claims{Subject: "worker-token:" + id, TenantID: tenant, Roles: []string{"worker"}},
		ID:     id, IssuedAt: issued, ExpiresAt: expires,
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func bearer(ctx context.Context, tok string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
}

func mint(t *testing.T, c queuev1.QueueServiceClient, ctx context.Context, name, ttl string) *queuev1.CreateWorkerTokenResponse {
	t.Helper()
	res, err := c.CreateWorkerToken(ctx, &queuev1.CreateWorkerTokenRequest{Name: name, Ttl: ttl})
	if err != nil {
		t.Fatalf("CreateWorkerToken(%q, %q): %v", name, ttl, err)
	}
	return res
}

// eventually polls fn until it returns nil or the deadline passes.
func eventually(t *testing.T, within time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %v", within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A tenant admin mints a worker token; it works as a worker of that tenant
// only, it is never listed, and only tenant admins mint, list and revoke.
func TestWorkerTokens(t *testing.T) {
	k := newSigningKey(t)
	backends(t, func(t *testing.T, c queuev1.QueueServiceClient) {
		admin, globexAdmin := as(t, "acme", "admin"), as(t, "globex", "admin")
		res := mint(t, c, admin, "edge-1", "10m")
		wt := res.GetWorkerToken()
		if res.GetToken() == "" || wt.GetName() != "edge-1" || wt.GetTenantId() != "acme" || wt.GetTtl() != "10m0s" ||
			wt.GetRevokeTime() != nil || wt.GetExpireTime().AsTime().Sub(wt.GetCreateTime().AsTime()) != 10*time.Minute {
			t.Fatalf("minted %v", res)
		}
		worker := bearer(t.Context(), res.GetToken())

		// It leases its tenant's jobs, and only those.
		mustEnqueue(t, c, as(t, "globex", "user"), &queuev1.EnqueueJobRequest{})
		id := mustEnqueue(t, c, as(t, "acme", "user"), &queuev1.EnqueueJobRequest{})
		leases := mustLease(t, c, worker, &queuev1.LeaseJobsRequest{MaxJobs: 10})
		if len(leases) != 1 || leases[0].GetJob().GetJobId() != id {
			t.Fatalf("worker token leased %v, want acme's %s only", leases, id)
		}
		if _, err := complete(c, worker, leases[0]); err != nil {
			t.Fatal(err)
		}
		_, err := c.LeaseJobs(withTenant(worker, "globex"), &queuev1.LeaseJobsRequest{WorkerId: "w1"})
		wantErr(t, err, codes.PermissionDenied, identity.ReasonCrossTenantDenied)

		// Only admins mint: not users, workers, or the worker token itself.
		for name, ctx := range map[string]context.Context{
			"user": as(t, "acme", "user"), "worker": as(t, "acme", "worker"), "worker token": worker,
		} {
			_, err := c.CreateWorkerToken(ctx, &queuev1.CreateWorkerTokenRequest{Name: "x"})
			if apierrReason(err) != identity.ReasonRoleRequired {
				t.Fatalf("%s minting: %v, want %s", name, err, identity.ReasonRoleRequired)
			}
			_, err = c.ListWorkerTokens(ctx, &queuev1.ListWorkerTokensRequest{})
			wantErr(t, err, codes.PermissionDenied, identity.ReasonRoleRequired)
		}

		// acme's admin cannot act for globex, by header or by id.
		g := mint(t, c, globexAdmin, "globex-edge", "")
		spoof := withTenant(admin, "globex")
		_, err = c.CreateWorkerToken(spoof, &queuev1.CreateWorkerTokenRequest{Name: "x"})
		wantErr(t, err, codes.PermissionDenied, identity.ReasonCrossTenantDenied)
		_, err = c.ListWorkerTokens(spoof, &queuev1.ListWorkerTokensRequest{})
		wantErr(t, err, codes.PermissionDenied, identity.ReasonCrossTenantDenied)
		_, err = c.RevokeWorkerToken(spoof, &queuev1.RevokeWorkerTokenRequest{TokenId: g.GetWorkerToken().GetTokenId()})
		wantErr(t, err, codes.PermissionDenied, identity.ReasonCrossTenantDenied)
		_, err = c.RevokeWorkerToken(admin, &queuev1.RevokeWorkerTokenRequest{TokenId: g.GetWorkerToken().GetTokenId()})
		wantErr(t, err, codes.NotFound, "WORKER_TOKEN_NOT_FOUND")
		for _, bad := range []string{"", "../x", "' OR 1=1 --", strings.Repeat("A", 500)} {
			_, err = c.RevokeWorkerToken(admin, &queuev1.RevokeWorkerTokenRequest{TokenId: bad})
			if r := apierrReason(err); r != "WORKER_TOKEN_NOT_FOUND" && r != validate.ReasonFieldRequired {
				t.Fatalf("revoke %q: %v", bad, err)
			}
		}
		// A platform admin reads across tenants, but never mints for one.
		platform := withTenant(as(t, identity.DefaultTenant, "admin"), "acme")
		if l, err := c.ListWorkerTokens(platform, &queuev1.ListWorkerTokensRequest{}); err != nil || len(l.GetWorkerTokens()) != 1 {
			t.Fatalf("platform admin listing acme = %v, %v", l, err)
		}
		_, err = c.CreateWorkerToken(platform, &queuev1.CreateWorkerTokenRequest{Name: "x"})
		wantErr(t, err, codes.PermissionDenied, identity.ReasonCrossTenantDenied)

		// The list pages newest first and never holds a token.
		second := mint(t, c, admin, "edge-2", "1h")
		l, err := c.ListWorkerTokens(admin, &queuev1.ListWorkerTokensRequest{PageSize: 1})
		if err != nil || len(l.GetWorkerTokens()) != 1 || l.GetWorkerTokens()[0].GetTokenId() != second.GetWorkerToken().GetTokenId() || l.GetNextPageToken() == "" {
			t.Fatalf("page 1 = %v, %v", l, err)
		}
		l2, err := c.ListWorkerTokens(admin, &queuev1.ListWorkerTokensRequest{PageSize: 1, PageToken: l.GetNextPageToken()})
		if err != nil || len(l2.GetWorkerTokens()) != 1 || l2.GetWorkerTokens()[0].GetTokenId() != wt.GetTokenId() || l2.GetNextPageToken() != "" {
			t.Fatalf("page 2 = %v, %v", l2, err)
		}
		all, err := c.ListWorkerTokens(admin, &queuev1.ListWorkerTokensRequest{})
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := protojson.Marshal(all)
		for _, tok := range []string{res.GetToken(), second.GetToken()} {
			sig := tok[strings.LastIndexByte(tok, '.')+1:]
			if strings.Contains(string(raw), sig) {
				t.Fatalf("the list shows a token: %s", raw)
			}
		}

		// Bounds have stable reasons.
		for _, ttl := range []string{"30s", "25h", "1d", "-1h", "forever"} {
			_, err := c.CreateWorkerToken(admin, &queuev1.CreateWorkerTokenRequest{Name: "x", Ttl: ttl})
			wantErr(t, err, codes.InvalidArgument, "WORKER_TOKEN_TTL_INVALID")
		}
		for _, name := range []string{"bad\x00name", "tab\tname", strings.Repeat("n", 65)} {
			_, err := c.CreateWorkerToken(admin, &queuev1.CreateWorkerTokenRequest{Name: name})
			wantErr(t, err, codes.InvalidArgument, "WORKER_TOKEN_NAME_INVALID")
		}
		_, err = c.CreateWorkerToken(admin, &queuev1.CreateWorkerTokenRequest{})
		wantErr(t, err, codes.InvalidArgument, validate.ReasonFieldRequired)
	}, k.args...)
}

// Forged worker tokens, signed with the queue's key but for ids it never
// minted in the token's tenant, and expired ones, are refused.
func TestWorkerTokensForgedAndExpired(t *testing.T) {
	k := newSigningKey(t)
	backends(t, func(t *testing.T, c queuev1.QueueServiceClient) {
		now := time.Now()
		g := mint(t, c, as(t, "globex", "admin"), "g", "")
		for name, tok := range map[string]string{
			"never minted":        k.sign(t, "acme", ulid.Make().String(), now, now.Add(time.Hour)),
			"not a ulid":          k.sign(t, "acme", "../../x", now, now.Add(time.Hour)),
			"globex's id in acme": k.sign(t, "acme", g.GetWorkerToken().GetTokenId(), now, now.Add(time.Hour)),
		} {
			_, err := c.LeaseJobs(bearer(t.Context(), tok), &queuev1.LeaseJobsRequest{WorkerId: "w1"})
			if apierrReason(err) != "WORKER_TOKEN_UNKNOWN" || statusCode(err) != codes.Unauthenticated {
				t.Fatalf("%s: %v, want UNAUTHENTICATED WORKER_TOKEN_UNKNOWN", name, err)
			}
		}
		expired := k.sign(t, "globex", g.GetWorkerToken().GetTokenId(), now.Add(-2*time.Hour), now.Add(-time.Hour))
		_, err := c.LeaseJobs(bearer(t.Context(), expired), &queuev1.LeaseJobsRequest{WorkerId: "w1"})
		wantErr(t, err, codes.Unauthenticated, identity.ReasonTokenExpired)
		// A token of another kind does not refresh.
		_, err = c.RefreshWorkerToken(as(t, "acme", "worker"), &queuev1.RefreshWorkerTokenRequest{})
		wantErr(t, err, codes.PermissionDenied, "WORKER_TOKEN_REQUIRED")
	}, k.args...)
}

// A revoked token is refused at once by the replica that revoked it and
// within the sync interval by another replica on the same database, its
// refresh included.
func TestWorkerTokenRevocationAcrossReplicas(t *testing.T) {
	k := newSigningKey(t)
	args := append([]string{"--worker-token-sync-interval=100ms"}, k.args...)
	run := func(t *testing.T, opt servicetest.Options) {
		opt.Args = args
		if opt.DatabaseURL == "" {
			// Both replicas share one SQLite file.
			opt.DatabaseURL = "sqlite://" + filepath.Join(t.TempDir(), "shared.db")
		}
		a, b := start(t, opt), start(t, opt)
		admin := as(t, "acme", "admin")
		res := mint(t, a, admin, "edge", "")
		worker := bearer(t.Context(), res.GetToken())
		// Minted on a, known to b at once (b looks it up).
		for _, c := range []queuev1.QueueServiceClient{a, b} {
			if _, err := c.LeaseJobs(worker, &queuev1.LeaseJobsRequest{WorkerId: "w1"}); err != nil {
				t.Fatalf("lease before revocation: %v", err)
			}
		}
		if _, err := a.RevokeWorkerToken(admin, &queuev1.RevokeWorkerTokenRequest{TokenId: res.GetWorkerToken().GetTokenId()}); err != nil {
			t.Fatal(err)
		}
		_, err := a.LeaseJobs(worker, &queuev1.LeaseJobsRequest{WorkerId: "w1"})
		wantErr(t, err, codes.Unauthenticated, "TOKEN_REVOKED")
		eventually(t, 5*time.Second, func() error {
			_, err := b.LeaseJobs(worker, &queuev1.LeaseJobsRequest{WorkerId: "w1"})
			if apierrReason(err) != "TOKEN_REVOKED" {
				return errString("replica b still accepts the revoked token: " + errText(err))
			}
			return nil
		})
		_, err = b.RefreshWorkerToken(worker, &queuev1.RefreshWorkerTokenRequest{})
		wantErr(t, err, codes.Unauthenticated, "TOKEN_REVOKED")
		l, err := b.ListWorkerTokens(admin, &queuev1.ListWorkerTokensRequest{})
		if err != nil || len(l.GetWorkerTokens()) != 1 || l.GetWorkerTokens()[0].GetRevokeTime() == nil {
			t.Fatalf("list after revocation = %v, %v", l, err)
		}
	}
	t.Run("sqlite", func(t *testing.T) { run(t, servicetest.Options{}) })
	t.Run("postgres", func(t *testing.T) {
		migrateURL, appURL := storetest.Postgres(t)
		run(t, servicetest.Options{DatabaseURL: appURL, MigrateURL: migrateURL})
	})
}

// Refresh trades a valid worker token for a new one of the same id, never
// past the max lifetime; past it the token cannot be refreshed.
func TestWorkerTokenRefresh(t *testing.T) {
	k := newSigningKey(t)
	const maxLife = 3 * time.Second
	c := start(t, servicetest.Options{Args: append([]string{"--worker-token-max-lifetime=" + maxLife.String()}, k.args...)})
	res := mint(t, c, as(t, "acme", "admin"), "edge", "1m")
	created := res.GetWorkerToken().GetCreateTime().AsTime()
	if exp := res.GetWorkerToken().GetExpireTime().AsTime(); !exp.Equal(created.Add(maxLife)) {
		t.Fatalf("expiry %v, want the max lifetime %v", exp, created.Add(maxLife))
	}
	worker := bearer(t.Context(), res.GetToken())
	r, err := c.RefreshWorkerToken(worker, &queuev1.RefreshWorkerTokenRequest{})
	if err != nil || r.GetToken() == "" || r.GetExpireTime().AsTime().After(created.Add(maxLife)) {
		t.Fatalf("refresh = %v, %v", r, err)
	}
	fresh := bearer(t.Context(), r.GetToken())
	if _, err := c.LeaseJobs(fresh, &queuev1.LeaseJobsRequest{WorkerId: "w1"}); err != nil {
		t.Fatalf("refreshed token: %v", err)
	}
	// The JWT leeway keeps the token itself valid a little past its expiry:
	// the max lifetime still stops refreshes.
	time.Sleep(time.Until(created.Add(maxLife)))
	_, err = c.RefreshWorkerToken(fresh, &queuev1.RefreshWorkerTokenRequest{})
	wantErr(t, err, codes.FailedPrecondition, "WORKER_TOKEN_MAX_LIFETIME")
}

// Without a signing key the queue refuses to mint; with a key whose public
// half it does not trust, it refuses to start.
func TestWorkerTokensNeedTrustedKey(t *testing.T) {
	c := start(t, servicetest.Options{})
	_, err := c.CreateWorkerToken(as(t, "acme", "admin"), &queuev1.CreateWorkerTokenRequest{Name: "x"})
	wantErr(t, err, codes.FailedPrecondition, "WORKER_TOKENS_DISABLED")

	k, other := newSigningKey(t), newSigningKey(t)
	err = servicetestRunErr(t, "--worker-token-key-file="+k.keyFile, "--jwt-public-keys="+other.pub)
	if err == nil || !strings.Contains(err.Error(), "ECHOPILOT_JWT_PUBLIC_KEYS") {
		t.Fatalf("start with an untrusted key: %v", err)
	}
}

// servicetestRunErr runs the queue with args until it fails to start (or,
// wrongly, starts and runs until the timeout).
func servicetestRunErr(t *testing.T, args ...string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	lis := bufconn.Listen(1 << 10)
	defer lis.Close()
	return service.RunContext(ctx, append([]string{
		"--auth-mode=required", "--database-url=sqlite://" + filepath.Join(t.TempDir(), "q.db"),
		"--jwt-hs256-secret=" + servicetest.Secret, "--metrics-addr=", "--allow-unbound-tokens",
	}, args...), app.Spec(), service.Overrides{Listener: lis, Log: zaptest.NewLogger(t),
		Decisions: func(context.Context, []identity.Decision) error { return nil }})
}

func apierrReason(err error) string { return apierr.Reason(err) }

func statusCode(err error) codes.Code { return status.Code(err) }

type errString string

func (e errString) Error() string { return string(e) }

func errText(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}
