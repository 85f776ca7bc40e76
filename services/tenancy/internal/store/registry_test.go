package store_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/echopilot/echopilot/services/tenancy/internal/domain"
)

// testUpdateTenant: limits are stored with a new tenant and read back by
// every read; an update changes only what it sets, concurrent updates of
// different fields all land, and a missing tenant is ErrNotFound.
func testUpdateTenant(t *testing.T, st domain.Store) {
	ctx := t.Context()
	limits := domain.RateLimits{ReadPerSecond: 10, ReadBurst: 20, WritePerSecond: 5, WriteBurst: 0}
	created, _, err := st.CreateTenant(ctx, domain.Tenant{ID: "acme", DisplayName: "Acme", Limits: limits})
	if err != nil || created.Limits != limits {
		t.Fatalf("CreateTenant = %+v, %v; want limits %+v", created, err, limits)
	}
	if got, err := st.GetTenant(ctx, "acme"); err != nil || got != created {
		t.Fatalf("GetTenant = %+v, %v; want %+v", got, err, created)
	}
	mustCreate(t, st, "globex")

	updated, err := st.UpdateTenant(ctx, "acme", func(tn *domain.Tenant) error {
		tn.Limits.WritePerSecond = 7
		tn.DisplayName = "Acme Corp"
		tn.ID, tn.CreatedAt = "globex", tn.CreatedAt.AddDate(1, 0, 0) // neither is stored
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := created
	want.Limits.WritePerSecond, want.DisplayName = 7, "Acme Corp"
	if got, err := st.GetTenant(ctx, "acme"); err != nil || got != want {
		t.Fatalf("after update GetTenant = %+v, %v; want %+v (update returned %+v)", got, err, want, updated)
	}
	if g, err := st.GetTenant(ctx, "globex"); err != nil || g.Limits != (domain.RateLimits{}) || g.DisplayName != "Tenant globex" {
		t.Fatalf("another tenant changed: %+v, %v", g, err)
	}

	// Each updater bumps its own field from what it read: with the row
	// locked for the read-modify-write, every increment lands.
	var wg sync.WaitGroup
	const n = 8
	for i := range n {
		wg.Go(func() {
			_, err := st.UpdateTenant(ctx, "acme", func(tn *domain.Tenant) error {
				if i%2 == 0 {
					tn.Limits.ReadPerSecond++
				} else {
					tn.Limits.ReadBurst++
				}
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, err := st.GetTenant(ctx, "acme")
	if err != nil || got.Limits.ReadPerSecond != 10+n/2 || got.Limits.ReadBurst != 20+n/2 {
		t.Fatalf("after concurrent updates %+v, %v; want read %d burst %d", got.Limits, err, 10+n/2, 20+n/2)
	}

	errStop := errors.New("stop")
	if _, err := st.UpdateTenant(ctx, "acme", func(tn *domain.Tenant) error {
		tn.Limits.ReadPerSecond = 999
		return errStop
	}); !errors.Is(err, errStop) {
		t.Fatalf("failing update = %v, want its error", err)
	}
	if g, _ := st.GetTenant(ctx, "acme"); g.Limits.ReadPerSecond == 999 {
		t.Fatal("a failed update was stored")
	}
	for _, id := range []string{"nosuch", ""} {
		if _, err := st.UpdateTenant(ctx, id, func(*domain.Tenant) error { return nil }); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("UpdateTenant(%q) = %v, want ErrNotFound", id, err)
		}
	}
	ts, err := st.ListTenants(ctx, all, "", 10)
	if err != nil || len(ts) != 2 || ts[0].Limits.ReadPerSecond != 10+n/2 {
		t.Fatalf("ListTenants = %+v, %v", ts, err)
	}
}
