package store_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/echopilot/echopilot/services/tenancy/internal/domain"
)

// mustKey stores a fresh key of tenant and returns it.
func mustKey(t *testing.T, st domain.Store, tenant string) domain.APIKey {
	t.Helper()
	k := domain.APIKey{ID: ulid.Make().String(), TenantID: tenant, Name: "ci", Roles: []string{"admin"},
		CreatedBy: "u@" + tenant, CreatedAt: time.Now().UTC().Truncate(time.Microsecond), SecretHash: bytes.Repeat([]byte{1}, 32)}
	if err := st.CreateAPIKey(t.Context(), k, 10); err != nil {
		t.Fatal(err)
	}
	return k
}

func testAPIKeys(t *testing.T, st domain.Store) {
	ctx := t.Context()
	a := mustKey(t, st, "acme")
	b := mustKey(t, st, "acme")
	g := mustKey(t, st, "globex")

	got, err := st.GetAPIKey(ctx, "acme", a.ID)
	if err != nil || got.Name != "ci" || got.Roles[0] != "admin" || !got.CreatedAt.Equal(a.CreatedAt) ||
		!got.ExpiresAt.IsZero() || !got.LastUsedAt.IsZero() || got.Revoked() || !bytes.Equal(got.SecretHash, a.SecretHash) {
		t.Fatalf("get = %+v, %v", got, err)
	}
	if _, err := st.GetAPIKey(ctx, "globex", a.ID); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("globex reads acme's key: %v", err)
	}
	list, err := st.ListAPIKeys(ctx, "acme", "", 10)
	if err != nil || len(list) != 2 || list[0].ID != b.ID || list[1].ID != a.ID {
		t.Fatalf("list = %+v, %v", list, err)
	}
	if list, _ := st.ListAPIKeys(ctx, "acme", b.ID, 10); len(list) != 1 || list[0].ID != a.ID {
		t.Fatalf("second page = %+v", list)
	}

	// Lookup reads across tenants by key id alone.
	if k, err := st.LookupAPIKey(ctx, g.ID); err != nil || k.TenantID != "globex" {
		t.Fatalf("lookup = %+v, %v", k, err)
	}
	if _, err := st.LookupAPIKey(ctx, ulid.Make().String()); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("lookup of an unknown id: %v", err)
	}

	now := time.Now().UTC().Truncate(time.Microsecond)
	rot, err := st.RotateAPIKey(ctx, "acme", a.ID, func(k *domain.APIKey) error {
		k.PreviousHash, k.PreviousExpiresAt = k.SecretHash, now.Add(time.Hour)
		k.SecretHash, k.RotatedAt = bytes.Repeat([]byte{2}, 32), now
		return nil
	})
	if err != nil || rot.SecretHash[0] != 2 {
		t.Fatalf("rotate = %+v, %v", rot, err)
	}
	k, _ := st.LookupAPIKey(ctx, a.ID)
	if k.SecretHash[0] != 2 || k.PreviousHash[0] != 1 || !k.PreviousExpiresAt.Equal(now.Add(time.Hour)) || !k.RotatedAt.Equal(now) {
		t.Fatalf("after rotation = %+v", k)
	}
	if _, err := st.RotateAPIKey(ctx, "globex", a.ID, func(*domain.APIKey) error { return nil }); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("globex rotates acme's key: %v", err)
	}

	// Last use moves forward only.
	if err := st.TouchAPIKey(ctx, "acme", a.ID, now, now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := st.TouchAPIKey(ctx, "acme", a.ID, now.Add(time.Second), now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if k, _ := st.GetAPIKey(ctx, "acme", a.ID); !k.LastUsedAt.Equal(now) {
		t.Fatalf("last used %v, want %v (throttled)", k.LastUsedAt, now)
	}

	if _, err := st.RevokeAPIKey(ctx, "globex", a.ID, now); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("globex revokes acme's key: %v", err)
	}
	r1, err := st.RevokeAPIKey(ctx, "acme", a.ID, now)
	if err != nil || !r1.RevokedAt.Equal(now) {
		t.Fatalf("revoke = %+v, %v", r1, err)
	}
	if r2, _ := st.RevokeAPIKey(ctx, "acme", a.ID, now.Add(time.Hour)); !r2.RevokedAt.Equal(now) {
		t.Fatalf("second revoke moved the time to %v", r2.RevokedAt)
	}

	// The cap counts unrevoked keys: acme holds one (b), globex one.
	if err := st.CreateAPIKey(ctx, domain.APIKey{ID: ulid.Make().String(), TenantID: "acme", Name: "x", CreatedAt: now,
		SecretHash: a.SecretHash}, 1); !errors.Is(err, domain.ErrAPIKeyLimit) {
		t.Fatalf("create past the cap: %v", err)
	}
	if err := st.CreateAPIKey(ctx, domain.APIKey{ID: ulid.Make().String(), TenantID: "acme", Name: "x", CreatedAt: now,
		SecretHash: a.SecretHash}, 2); err != nil {
		t.Fatalf("create within the cap: %v", err)
	}
}
