package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/echopilot/echopilot/services/queue/internal/domain"
)

func (f fixture) mintRecord(t *testing.T, tenant, name string, created time.Time) domain.WorkerToken {
	t.Helper()
	wt := domain.WorkerToken{
		TenantID: tenant, ID: ulid.Make().String(), Name: name, TTL: time.Hour,
		Created: created, Expires: created.Add(time.Hour), MaxExpires: created.Add(24 * time.Hour),
	}
	if err := f.st.CreateWorkerToken(t.Context(), wt); err != nil {
		t.Fatalf("CreateWorkerToken: %v", err)
	}
	return wt
}

// testWorkerTokens: records round-trip, list newest first by keyset and per
// tenant, revocation keeps its first time, a revoked token is not extended,
// states cover every tenant's unexpired tokens, retention deletes the old.
func testWorkerTokens(t *testing.T, f fixture) {
	ctx := t.Context()
	a1 := f.mintRecord(t, "acme", "edge-1", f.t0)
	a2 := f.mintRecord(t, "acme", "edge-2", f.t0)
	b1 := f.mintRecord(t, "globex", "edge-b", f.t0)

	got, err := f.st.GetWorkerToken(ctx, "acme", a1.ID)
	if err != nil || got.Name != "edge-1" || got.TTL != time.Hour || !got.Created.Equal(f.t0) ||
		!got.MaxExpires.Equal(f.t0.Add(24*time.Hour)) || got.Revoked() {
		t.Fatalf("get = %+v, %v", got, err)
	}
	// Another tenant's id is not found, in either direction.
	if _, err := f.st.GetWorkerToken(ctx, "acme", b1.ID); !errors.Is(err, domain.ErrTokenNotFound) {
		t.Fatalf("acme reading globex's token: %v", err)
	}
	if _, err := f.st.RevokeWorkerToken(ctx, "acme", b1.ID, f.t0); !errors.Is(err, domain.ErrTokenNotFound) {
		t.Fatalf("acme revoking globex's token: %v", err)
	}

	page1, err := f.st.ListWorkerTokens(ctx, domain.TokenFilter{TenantID: "acme", Limit: 1})
	if err != nil || len(page1) != 1 || page1[0].ID != a2.ID {
		t.Fatalf("page 1 = %+v, %v", page1, err)
	}
	page2, err := f.st.ListWorkerTokens(ctx, domain.TokenFilter{TenantID: "acme", BeforeID: a2.ID, Limit: 5})
	if err != nil || len(page2) != 1 || page2[0].ID != a1.ID {
		t.Fatalf("page 2 = %+v, %v", page2, err)
	}

	r1, err := f.st.RevokeWorkerToken(ctx, "acme", a1.ID, f.t0.Add(time.Minute))
	if err != nil || !r1.RevokedAt.Equal(f.t0.Add(time.Minute)) {
		t.Fatalf("revoke = %+v, %v", r1, err)
	}
	r2, err := f.st.RevokeWorkerToken(ctx, "acme", a1.ID, f.t0.Add(time.Hour))
	if err != nil || !r2.RevokedAt.Equal(r1.RevokedAt) {
		t.Fatalf("revoke again = %+v, %v: want the first revocation time kept", r2, err)
	}
	ext, err := f.st.ExtendWorkerToken(ctx, "acme", a1.ID, f.t0.Add(2*time.Hour))
	if err != nil || !ext.Expires.Equal(a1.Expires) || !ext.Revoked() {
		t.Fatalf("extend revoked = %+v, %v: want unchanged and revoked", ext, err)
	}
	ext, err = f.st.ExtendWorkerToken(ctx, "acme", a2.ID, f.t0.Add(2*time.Hour))
	if err != nil || !ext.Expires.Equal(f.t0.Add(2*time.Hour)) {
		t.Fatalf("extend = %+v, %v", ext, err)
	}

	states, err := f.st.WorkerTokenStates(ctx, f.t0)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]domain.TokenState{
		a1.ID: {TenantID: "acme", ID: a1.ID, Revoked: true},
		a2.ID: {TenantID: "acme", ID: a2.ID},
		b1.ID: {TenantID: "globex", ID: b1.ID},
	}
	if len(states) != len(want) {
		t.Fatalf("states = %+v", states)
	}
	for _, st := range states {
		if want[st.ID] != st {
			t.Fatalf("state %+v, want %+v", st, want[st.ID])
		}
	}
	if states, err := f.st.WorkerTokenStates(ctx, f.t0.Add(25*time.Hour)); err != nil || len(states) != 0 {
		t.Fatalf("states past max expiry = %+v, %v", states, err)
	}

	n, err := f.st.DeleteWorkerTokens(ctx, f.t0.Add(25*time.Hour))
	if err != nil || n != 3 {
		t.Fatalf("delete = %d, %v", n, err)
	}
}
