package store_test

import (
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/queue/internal/domain"
)

func (f fixture) see(t testing.TB, tenant, worker string, info domain.WorkerInfo, now time.Time) {
	t.Helper()
	err := f.st.SeeWorker(t.Context(), domain.WorkerSeen{TenantID: tenant, WorkerID: worker, Info: info, Now: now, Limit: 100})
	if err != nil {
		t.Fatalf("SeeWorker(%s, %s): %v", tenant, worker, err)
	}
}

func (f fixture) workers(t testing.TB, tenant, after string, limit int) []domain.Worker {
	t.Helper()
	ws, err := f.st.ListWorkers(t.Context(), domain.WorkerFilter{TenantID: tenant, AfterID: after, Limit: limit})
	if err != nil {
		t.Fatalf("ListWorkers(%s): %v", tenant, err)
	}
	return ws
}

// testWorkerRegistry: a worker's first call registers it, later ones
// replace its info and last_seen but keep first_seen; pages go by id; each
// worker's leases are counted from its processing jobs.
func testWorkerRegistry(t *testing.T, f fixture) {
	v1 := domain.WorkerInfo{Version: "v1", Host: "edge-a", Concurrency: 4}
	f.see(t, "acme", "w2", v1, f.t0)
	f.see(t, "acme", "w1", domain.WorkerInfo{}, f.t0)
	later := f.t0.Add(time.Minute)
	v2 := domain.WorkerInfo{Version: "v2", Host: "edge-b", Concurrency: 8}
	f.see(t, "acme", "w2", v2, later)
	f.see(t, "acme", "w3", v1, f.t0)

	for range 3 {
		f.enqueue(t, "acme")
	}
	f.claim(t, "acme", 2, f.t0, func(c *domain.Claim) { c.WorkerID = "w2" })
	done := f.claim(t, "acme", 1, f.t0, func(c *domain.Claim) { c.WorkerID = "w3" })
	if _, err := f.st.Complete(t.Context(), ref(done[0]), domain.Completion{Now: f.t0}); err != nil {
		t.Fatal(err)
	}

	got := f.workers(t, "acme", "", 10)
	want := []domain.Worker{
		{TenantID: "acme", ID: "w1", FirstSeen: f.t0, LastSeen: f.t0},
		{TenantID: "acme", ID: "w2", Info: v2, FirstSeen: f.t0, LastSeen: later, LeasesHeld: 2},
		{TenantID: "acme", ID: "w3", Info: v1, FirstSeen: f.t0, LastSeen: f.t0},
	}
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Fatalf("workers\n got %+v\nwant %+v", got, want)
	}
	if page := f.workers(t, "acme", "w1", 1); len(page) != 1 || page[0].ID != "w2" {
		t.Errorf("page after w1 = %+v, want w2", page)
	}
	if page := f.workers(t, "acme", "w3", 10); len(page) != 0 {
		t.Errorf("page after the last = %+v", page)
	}
	if _, err := f.st.ListWorkers(t.Context(), domain.WorkerFilter{TenantID: "acme"}); err == nil {
		t.Error("ListWorkers without a limit succeeded")
	}
}

// testWorkerLimit: a tenant at its limit registers no new worker but still
// refreshes the ones it has; another tenant is not affected.
func testWorkerLimit(t *testing.T, f fixture) {
	ctx := t.Context()
	seen := func(tenant, worker string, now time.Time) error {
		return f.st.SeeWorker(ctx, domain.WorkerSeen{TenantID: tenant, WorkerID: worker, Now: now, Limit: 2})
	}
	for _, w := range []string{"a", "b"} {
		if err := seen("acme", w, f.t0); err != nil {
			t.Fatal(err)
		}
	}
	if err := seen("acme", "c", f.t0); !errors.Is(err, domain.ErrWorkerLimit) {
		t.Errorf("third worker: %v, want ErrWorkerLimit", err)
	}
	if err := seen("acme", "a", f.t0.Add(time.Second)); err != nil {
		t.Errorf("refreshing a registered worker at the limit: %v", err)
	}
	if err := seen("globex", "c", f.t0); err != nil {
		t.Errorf("globex's first worker: %v", err)
	}
	if ws := f.workers(t, "acme", "", 10); len(ws) != 2 || !ws[0].LastSeen.Equal(f.t0.Add(time.Second)) {
		t.Errorf("acme's workers = %+v", ws)
	}
}

// testWorkerIsolation: a tenant never lists, counts against its limit or
// overwrites another tenant's workers, nor sees its leases.
func testWorkerIsolation(t *testing.T, f fixture) {
	f.see(t, "acme", "shared", domain.WorkerInfo{Version: "acme"}, f.t0)
	f.enqueue(t, "acme")
	f.claim(t, "acme", 1, f.t0, func(c *domain.Claim) { c.WorkerID = "shared" })
	if ws := f.workers(t, "globex", "", 10); len(ws) != 0 {
		t.Fatalf("globex lists %+v", ws)
	}
	if err := f.st.SeeWorker(t.Context(), domain.WorkerSeen{TenantID: "globex", WorkerID: "shared", Now: f.t0, Limit: 1}); err != nil {
		t.Fatalf("globex's worker of the same name: %v", err)
	}
	g := f.workers(t, "globex", "", 10)
	if len(g) != 1 || g[0].TenantID != "globex" || g[0].Info.Version != "" || g[0].LeasesHeld != 0 {
		t.Errorf("globex's workers = %+v, want its own without acme's lease", g)
	}
	if a := f.workers(t, "acme", "", 10); len(a) != 1 || a[0].Info.Version != "acme" || a[0].LeasesHeld != 1 {
		t.Errorf("acme's workers = %+v", a)
	}
}

// testWorkerRetention: counting and deleting by last_seen, across tenants.
func testWorkerRetention(t *testing.T, f fixture) {
	ctx := t.Context()
	old := f.t0.Add(-8 * 24 * time.Hour)
	f.see(t, "acme", "gone", domain.WorkerInfo{}, old)
	f.see(t, "globex", "gone", domain.WorkerInfo{}, old)
	f.see(t, "acme", "quiet", domain.WorkerInfo{}, f.t0.Add(-time.Hour))
	f.see(t, "acme", "busy", domain.WorkerInfo{}, f.t0)
	c, err := f.st.CountWorkers(ctx, f.t0.Add(-time.Minute))
	if err != nil || c != (domain.WorkerCounts{Fresh: 1, Stale: 3}) {
		t.Fatalf("CountWorkers = %+v, %v; want 1 fresh, 3 stale", c, err)
	}
	n, err := f.st.DeleteWorkers(ctx, f.t0.Add(-7*24*time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("DeleteWorkers = %d, %v; want 2", n, err)
	}
	if ws := f.workers(t, "acme", "", 10); len(ws) != 2 || ws[0].ID != "busy" || ws[1].ID != "quiet" {
		t.Errorf("acme's workers left: %+v", ws)
	}
	if ws := f.workers(t, "globex", "", 10); len(ws) != 0 {
		t.Errorf("globex's workers left: %+v", ws)
	}
	if c, err := f.st.CountWorkers(ctx, f.t0.Add(-time.Minute)); err != nil || c != (domain.WorkerCounts{Fresh: 1, Stale: 1}) {
		t.Errorf("CountWorkers after = %+v, %v", c, err)
	}
}

// TestRLSWorkers: under row-level security the app role sees and changes
// only the workers of the tenant its transaction is scoped to.
func TestRLSWorkers(t *testing.T) {
	f := newFixture(t, storetest.Backends()[1])
	f.see(t, "acme", "a1", domain.WorkerInfo{}, f.t0)
	f.see(t, "globex", "g1", domain.WorkerInfo{}, f.t0)
	count := func(q queryer) int {
		var n int
		if err := q.QueryRowContext(t.Context(), "SELECT count(*) FROM workers").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(f.db); n != 0 {
		t.Errorf("app role outside a transaction counts %d workers, want 0", n)
	}
	err := f.db.InTenantReadTx(t.Context(), "acme", func(tx *sql.Tx) error {
		if n := count(tx); n != 1 {
			t.Errorf("acme's transaction counts %d workers (no WHERE), want 1", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	storetest.RLSRefusesWrites(t, f.db, "acme", map[string]string{
		"insert for another tenant":         `INSERT INTO workers (tenant_id, worker_id, first_seen, last_seen) VALUES ('globex', 'x', now(), now())`,
		"move own worker to another tenant": "UPDATE workers SET tenant_id = 'globex' WHERE tenant_id = 'acme'",
	})
	storetest.RLSHidesForeignRows(t, f.db, "acme", []string{
		"UPDATE workers SET host = 'owned' WHERE tenant_id = 'globex'",
		"DELETE FROM workers WHERE tenant_id <> 'acme'",
	})
	storetest.RLSAllTenantsReadCannotWrite(t, f.db, "UPDATE workers SET host = 'owned'")
	if n := count(f.owner); n != 2 {
		t.Errorf("owner counts %d workers, want 2", n)
	}
}
