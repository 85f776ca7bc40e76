package app_test

import (
	"context"
	"regexp"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	"github.com/echopilot/echopilot/platform/identity"
)

// keyFormat is the documented format, for secret scanners.
var keyFormat = regexp.MustCompile(`^ep_live_[0-9A-HJKMNP-TV-Z]{26}_[A-Za-z0-9_-]{43}$`)

// withKey presents an API key as a bearer token.
func withKey(key string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+key)
}

// createKey creates an API key in ctx's tenant and returns it whole.
func createKey(t *testing.T, c tenancyv1.TenancyServiceClient, ctx context.Context, tenant string, req *tenancyv1.CreateAPIKeyRequest) (string, *tenancyv1.APIKey) {
	t.Helper()
	req.TenantId = tenant
	if req.Name == "" {
		req.Name = "ci"
	}
	res, err := c.CreateAPIKey(ctx, req)
	if err != nil {
		t.Fatalf("create api key: %v", err)
	}
	return res.GetSecret(), res.GetApiKey()
}

// eventually polls fn until it returns nil, failing after within.
func eventually(t *testing.T, within time.Duration, fn func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := fn()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("not within %v: %v", within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Create, use, rotate, revoke: the key acts as its tenant, both secrets
// work during the grace period, and a revoked key is refused within
// identity.APIKeyCacheTTL.
func TestAPIKeyLifecycle(t *testing.T) {
	backends(t, "required", func(t *testing.T, c tenancyv1.TenancyServiceClient) {
		admin := as(t, "acme", "admin")
		key, meta := createKey(t, c, admin, "acme", &tenancyv1.CreateAPIKeyRequest{Name: "billing job"})
		if !keyFormat.MatchString(key) || meta.GetPrefix() != key[:34] || meta.GetKeyId() != key[8:34] ||
			meta.GetTenantId() != "acme" || meta.GetCreatedBy() != "u@acme" || meta.GetExpireTime() != nil {
			t.Fatalf("created %q %v", key, meta)
		}
		info, err := c.GetTenantInfo(withKey(key), &tenancyv1.GetTenantInfoRequest{})
		if err != nil || info.GetTenantId() != "acme" || !info.GetTenantVerified() {
			t.Fatalf("info with the key = %v, %v", info, err)
		}
		// X-API-Key works the same.
		if _, err := c.GetTenantInfo(metadata.AppendToOutgoingContext(context.Background(), "x-api-key", key), &tenancyv1.GetTenantInfoRequest{}); err != nil {
			t.Fatal(err)
		}
		// The prefix finds the key; its last use shows.
		got, err := c.GetAPIKey(admin, &tenancyv1.GetAPIKeyRequest{TenantId: "acme", KeyId: meta.GetKeyId()})
		if err != nil || got.GetApiKey().GetName() != "billing job" || got.GetApiKey().GetLastUsedTime() == nil {
			t.Fatalf("get = %v, %v", got, err)
		}
		list, err := c.ListAPIKeys(admin, &tenancyv1.ListAPIKeysRequest{TenantId: "acme"})
		if err != nil || len(list.GetApiKeys()) != 1 || list.GetApiKeys()[0].GetKeyId() != meta.GetKeyId() {
			t.Fatalf("list = %v, %v", list, err)
		}

		rot, err := c.RotateAPIKey(admin, &tenancyv1.RotateAPIKeyRequest{TenantId: "acme", KeyId: meta.GetKeyId(), GracePeriod: "2s"})
		if err != nil || rot.GetSecret() == key || rot.GetSecret()[:34] != key[:34] || rot.GetApiKey().GetPreviousSecretExpireTime() == nil {
			t.Fatalf("rotate = %v, %v", rot, err)
		}
		newKey := rot.GetSecret()
		for _, k := range []string{key, newKey} {
			if _, err := c.GetTenantInfo(withKey(k), &tenancyv1.GetTenantInfoRequest{}); err != nil {
				t.Fatalf("during the grace period: %v", err)
			}
		}
		eventually(t, 4*time.Second, func() error {
			_, err := c.GetTenantInfo(withKey(key), &tenancyv1.GetTenantInfoRequest{})
			if err == nil {
				return errNotYet
			}
			wantErr(t, err, codes.Unauthenticated, identity.ReasonTokenInvalid)
			return nil
		})
		if _, err := c.GetTenantInfo(withKey(newKey), &tenancyv1.GetTenantInfoRequest{}); err != nil {
			t.Fatalf("new secret after the grace period: %v", err)
		}

		rev, err := c.RevokeAPIKey(admin, &tenancyv1.RevokeAPIKeyRequest{TenantId: "acme", KeyId: meta.GetKeyId()})
		if err != nil || rev.GetApiKey().GetRevokeTime() == nil {
			t.Fatalf("revoke = %v, %v", rev, err)
		}
		took := eventually(t, identity.APIKeyCacheTTL+time.Second, func() error {
			_, err := c.GetTenantInfo(withKey(newKey), &tenancyv1.GetTenantInfoRequest{})
			if err == nil {
				return errNotYet
			}
			wantErr(t, err, codes.Unauthenticated, identity.ReasonTokenInvalid)
			return nil
		})
		t.Logf("revocation took effect after %v", took)
		_, err = c.RotateAPIKey(admin, &tenancyv1.RotateAPIKeyRequest{TenantId: "acme", KeyId: meta.GetKeyId()})
		wantErr(t, err, codes.FailedPrecondition, "API_KEY_REVOKED")
	})
}

type notYet struct{}

func (notYet) Error() string { return "not yet" }

var errNotYet error = notYet{}

// Who may make which keys, and what a key may never do.
func TestAPIKeyRules(t *testing.T) {
	backends(t, "required", func(t *testing.T, c tenancyv1.TenancyServiceClient) {
		admin := as(t, "acme", "admin", "billing")
		req := func(roles ...string) *tenancyv1.CreateAPIKeyRequest {
			return &tenancyv1.CreateAPIKeyRequest{TenantId: "acme", Name: "k", Roles: roles}
		}
		// A non-admin cannot create keys.
		_, err := c.CreateAPIKey(as(t, "acme", "user"), req())
		wantErr(t, err, codes.PermissionDenied, identity.ReasonRoleRequired)
		// A tenant admin cannot make a key of another tenant, the platform's
		// included, nor give roles it does not hold, nor role service.
		_, err = c.CreateAPIKey(admin, &tenancyv1.CreateAPIKeyRequest{TenantId: "default", Name: "k", Roles: []string{"admin"}})
		wantErr(t, err, codes.PermissionDenied, identity.ReasonCrossTenantDenied)
		_, err = c.CreateAPIKey(admin, req("auditor"))
		wantErr(t, err, codes.PermissionDenied, "API_KEY_ROLE_NOT_HELD")
		_, err = c.CreateAPIKey(as(t, "acme", "admin", "service"), req("service"))
		wantErr(t, err, codes.PermissionDenied, identity.ReasonServiceIdentityInvalid)
		_, err = c.CreateAPIKey(admin, &tenancyv1.CreateAPIKeyRequest{TenantId: "acme", Name: ""})
		wantErr(t, err, codes.InvalidArgument, "FIELD_REQUIRED")
		_, err = c.CreateAPIKey(admin, &tenancyv1.CreateAPIKeyRequest{TenantId: "acme", Name: "k", Ttl: "10s"})
		wantErr(t, err, codes.InvalidArgument, "API_KEY_TTL_INVALID")
		_, err = c.CreateAPIKey(admin, &tenancyv1.CreateAPIKeyRequest{TenantId: "acme", Name: "k", Ttl: "soon"})
		wantErr(t, err, codes.InvalidArgument, "API_KEY_TTL_INVALID")

		// A key of acme never acts for globex.
		key, meta := createKey(t, c, admin, "acme", req("admin", "billing"))
		if got := meta.GetRoles(); len(got) != 2 {
			t.Fatalf("roles %v", got)
		}
		_, err = c.GetTenantInfo(withTenant(withKey(key), "globex"), &tenancyv1.GetTenantInfoRequest{})
		wantErr(t, err, codes.PermissionDenied, identity.ReasonCrossTenantDenied)
		_, err = c.ListAPIKeys(withKey(key), &tenancyv1.ListAPIKeysRequest{TenantId: "globex"})
		wantErr(t, err, codes.PermissionDenied, identity.ReasonCrossTenantDenied)
		// A key, even an admin's, does not manage keys: a leaked key cannot
		// mint its successors.
		_, err = c.CreateAPIKey(withKey(key), req())
		wantErr(t, err, codes.PermissionDenied, "API_KEY_CANNOT_MANAGE_KEYS")
		_, err = c.RevokeAPIKey(withKey(key), &tenancyv1.RevokeAPIKeyRequest{TenantId: "acme", KeyId: meta.GetKeyId()})
		wantErr(t, err, codes.PermissionDenied, "API_KEY_CANNOT_MANAGE_KEYS")
		// A read-only key cannot write, whatever its roles.
		ro, _ := createKey(t, c, admin, "acme", &tenancyv1.CreateAPIKeyRequest{Roles: []string{"admin"}, ReadOnly: true})
		if _, err := c.ListAPIKeys(withKey(ro), &tenancyv1.ListAPIKeysRequest{TenantId: "acme"}); err != nil {
			t.Fatalf("read-only admin key reading: %v", err)
		}
		_, err = c.RevokeAPIKey(withKey(ro), &tenancyv1.RevokeAPIKeyRequest{TenantId: "acme", KeyId: meta.GetKeyId()})
		wantErr(t, err, codes.PermissionDenied, identity.ReasonReadOnlyKey)
		// Another tenant's admin neither sees nor revokes acme's keys.
		globex := as(t, "globex", "admin")
		_, err = c.GetAPIKey(globex, &tenancyv1.GetAPIKeyRequest{TenantId: "globex", KeyId: meta.GetKeyId()})
		wantErr(t, err, codes.NotFound, "API_KEY_NOT_FOUND")
		_, err = c.RevokeAPIKey(globex, &tenancyv1.RevokeAPIKeyRequest{TenantId: "globex", KeyId: meta.GetKeyId()})
		wantErr(t, err, codes.NotFound, "API_KEY_NOT_FOUND")
		_, err = c.GetAPIKey(globex, &tenancyv1.GetAPIKeyRequest{TenantId: "globex", KeyId: "nope"})
		wantErr(t, err, codes.InvalidArgument, "API_KEY_ID_INVALID")

		// A platform admin reads acme's keys and may make a platform-admin
		// key, which then acts as one.
		platform := as(t, "default", "admin")
		list, err := c.ListAPIKeys(platform, &tenancyv1.ListAPIKeysRequest{TenantId: "acme"})
		if err != nil || len(list.GetApiKeys()) != 2 {
			t.Fatalf("platform admin's list of acme = %v, %v", list, err)
		}
		found, err := c.FindAPIKey(platform, &tenancyv1.FindAPIKeyRequest{KeyId: meta.GetKeyId()})
		if err != nil || found.GetApiKey().GetTenantId() != "acme" {
			t.Fatalf("platform admin finding acme's key = %v, %v", found, err)
		}
		_, err = c.FindAPIKey(admin, &tenancyv1.FindAPIKeyRequest{KeyId: meta.GetKeyId()})
		wantErr(t, err, codes.PermissionDenied, identity.ReasonTenantNotAllowed)
		pkey, _ := createKey(t, c, platform, "default", &tenancyv1.CreateAPIKeyRequest{Roles: []string{"admin"}})
		if _, err := c.ListAPIKeys(withKey(pkey), &tenancyv1.ListAPIKeysRequest{TenantId: "acme"}); err != nil {
			t.Fatalf("platform-admin key reading acme: %v", err)
		}
	})
}

// A wrong secret with a valid prefix is refused and counted as unverified,
// never in the key's tenant.
func TestAPIKeyWrongSecret(t *testing.T) {
	backends(t, "required", func(t *testing.T, c tenancyv1.TenancyServiceClient) {
		admin := as(t, "acme", "admin")
		key, _ := createKey(t, c, admin, "acme", &tenancyv1.CreateAPIKeyRequest{})
		other, _ := createKey(t, c, admin, "acme", &tenancyv1.CreateAPIKeyRequest{})
		wrong := key[:35] + other[35:]
		platform := as(t, "default", "admin")
		before, err := c.GetTenantInfo(platform, &tenancyv1.GetTenantInfoRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for range 5 {
			_, err := c.GetTenantInfo(withTenant(withKey(wrong), "acme"), &tenancyv1.GetTenantInfoRequest{})
			wantErr(t, err, codes.Unauthenticated, identity.ReasonTokenInvalid)
		}
		// Still works for its owner after the guesses.
		if _, err := c.GetTenantInfo(withKey(key), &tenancyv1.GetTenantInfoRequest{}); err != nil {
			t.Fatal(err)
		}
		after, err := c.GetTenantInfo(platform, &tenancyv1.GetTenantInfoRequest{})
		if err != nil {
			t.Fatal(err)
		}
		b, a := before.GetStats().GetTenants(), after.GetStats().GetTenants()
		if a[identity.UnverifiedBucket]-b[identity.UnverifiedBucket] != 5 || a["acme"]-b["acme"] != 1 {
			t.Fatalf("stats before %v, after %v: want 5 more unverified and 1 more acme", b, a)
		}
	})
}
