package domain_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/outbox"
	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/tenancy/internal/domain"
	"github.com/echopilot/echopilot/services/tenancy/internal/store"
)

func newStore(t *testing.T) domain.Store {
	t.Helper()
	db := storetest.Open(t, storetest.SQLite(t))
	for _, m := range []pstore.Migrations{store.Migrations, outbox.Migrations} {
		if err := db.Migrate(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	return store.New(db)
}

func TestLivePendingThenPersisted(t *testing.T) {
	st := newStore(t)
	l := domain.NewLive()
	ctx := context.Background()
	denied := domain.Decision{TenantID: "acme", TargetTenantID: "globex", Time: time.Now()}
	allowed := domain.Decision{TenantID: "acme", Allowed: true, Time: time.Now()}
	other := domain.Decision{TenantID: "globex", Allowed: true, Time: time.Now()}
	for _, d := range []domain.Decision{denied, allowed, other} {
		l.Add(d)
	}
	check := func(when string) {
		t.Helper()
		s, err := l.Stats(ctx, st, domain.Scope{Tenant: "acme"})
		if err != nil {
			t.Fatal(err)
		}
		if s.Total != 2 || s.Denied != 1 || s.CrossTenantDenied != 1 || len(s.PerTenant) != 1 || s.PerTenant["acme"] != 2 {
			t.Fatalf("%s: acme stats = %+v", when, s)
		}
	}
	check("pending")

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := l.Persist(canceled, st.RecordDecisions, []domain.Decision{denied, allowed}); err == nil {
		t.Fatal("persist error swallowed")
	}
	check("after a failed write") // still pending: neither lost nor doubled

	if err := l.Persist(ctx, st.RecordDecisions, []domain.Decision{denied, allowed}); err != nil {
		t.Fatal(err)
	}
	check("stored")

	all, _ := l.Stats(ctx, st, domain.Scope{AllTenants: true})
	if all.Total != 3 || all.PerTenant["globex"] != 1 {
		t.Fatalf("all tenants = %+v", all)
	}
	l.Drop([]domain.Decision{other})
	all, _ = l.Stats(ctx, st, domain.Scope{AllTenants: true})
	if all.Total != 2 || all.PerTenant["globex"] != 0 {
		t.Fatalf("dropped decision still counted: %+v", all)
	}
}

// Readers racing a writer see every decision exactly once: totals never go
// backwards or past what was made, and end exact.
func TestLiveReadsNeverDoubleCount(t *testing.T) {
	st := newStore(t)
	l := domain.NewLive()
	ctx := context.Background()
	const n = 1000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		batch := make([]domain.Decision, 0, 50)
		for i := 0; i < n; i++ {
			d := domain.Decision{TenantID: "acme", Allowed: true, Time: time.Now()}
			l.Add(d)
			batch = append(batch, d)
			if len(batch) == cap(batch) {
				if err := l.Persist(ctx, st.RecordDecisions, batch); err != nil {
					t.Error(err)
				}
				batch = batch[:0]
			}
		}
	}()
	var last int64
	for i := 0; i < 300; i++ {
		s, err := l.Stats(ctx, st, domain.Scope{Tenant: "acme"})
		if err != nil {
			t.Fatal(err)
		}
		if s.Total < last || s.Total > n {
			t.Fatalf("total went from %d to %d", last, s.Total)
		}
		last = s.Total
	}
	wg.Wait()
	if s, _ := l.Stats(ctx, st, domain.Scope{Tenant: "acme"}); s.Total != n {
		t.Fatalf("final total %d, want %d", s.Total, n)
	}
}
