package domain_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
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

// Readers racing a writer see every decision exactly once: each read
// holds at least every decision made before it began and at most those
// made before it ended, whether batches commit, fail and go again, or are
// taken out of pending while the read runs; and the end is exact.
func TestLiveReadsNeverDoubleCount(t *testing.T) {
	st := newStore(t)
	l := domain.NewLive()
	ctx := context.Background()
	const n = 3000
	// started counts Adds begun, made Adds returned.
	var started, made atomic.Int64
	errWrite := errors.New("write failed")
	calls := 0
	// Every fifth write fails before it reaches the store; its decisions
	// stay pending and go in the next batch.
	flaky := func(ctx context.Context, ds []domain.Decision, m domain.Mark) error {
		calls++
		if calls%5 == 0 {
			return errWrite
		}
		return st.RecordDecisions(ctx, ds, m)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var batch []domain.Decision
		for i := range n {
			d := domain.Decision{TenantID: "acme", Allowed: i%3 != 0, Time: time.Now()}
			started.Add(1)
			l.Add(d)
			made.Add(1)
			batch = append(batch, d)
			if len(batch) == 50 || i == n-1 {
				for {
					err := l.Persist(ctx, flaky, batch)
					if err == nil {
						break
					}
					if !errors.Is(err, errWrite) {
						t.Error(err)
						return
					}
				}
				batch = nil
			}
		}
	}()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				before := made.Load()
				s, err := l.Stats(ctx, st, domain.Scope{Tenant: "acme"})
				after := started.Load()
				if err != nil {
					t.Error(err)
					return
				}
				if s.Total < before || s.Total > after {
					t.Errorf("read counted %d decisions; %d were made before it began and %d begun before it ended", s.Total, before, after)
					return
				}
			}
		})
	}
	wg.Wait()
	<-done
	s, err := l.Stats(ctx, st, domain.Scope{Tenant: "acme"})
	if err != nil || s.Total != n || s.Denied != n/3 {
		t.Fatalf("final stats %+v (%v), want %d decisions, %d denied", s, err, n, n/3)
	}
	stored, err := st.Stats(ctx, domain.Scope{Tenant: "acme"})
	if err != nil || stored.Total != n {
		t.Fatalf("stored %+v (%v), want all %d", stored, err, n)
	}
}
