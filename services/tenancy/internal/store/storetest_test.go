package store_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/tenancy/internal/domain"
	"github.com/echopilot/echopilot/services/tenancy/internal/store"
)

// TestContract runs the domain.Store contract on every backend, each case on
// a fresh database opened as the service's role.
func TestContract(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T, st domain.Store)
	}{
		{"create and get tenants", testCreateGetTenant},
		{"list tenants", testListTenants},
		{"update tenants", testUpdateTenant},
		{"decision counters", testDecisionCounters},
		{"large mixed batch", testLargeBatch},
		{"invalid batch records nothing", testInvalidBatch},
		{"prune keeps counters", testPrune},
		{"concurrent recording", testConcurrentRecording},
		{"tenant isolation", testTenantIsolation},
		{"writer marks", testWriterMarks},
		{"api keys", testAPIKeys},
		{"exports", testExports},
		{"erasures", testErasures},
	}
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					st := store.New(openDB(t, b).app)
					c.run(t, st)
				})
			}
		})
	}
}

var (
	acme   = domain.Scope{Tenant: "acme"}
	globex = domain.Scope{Tenant: "globex"}
	all    = domain.Scope{AllTenants: true}
)

func mustCreate(t *testing.T, st domain.Store, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if _, _, err := st.CreateTenant(t.Context(), domain.Tenant{ID: id, DisplayName: "Tenant " + id}); err != nil {
			t.Fatal(err)
		}
	}
}

func mustRecord(t *testing.T, st domain.Store, ds ...domain.Decision) {
	t.Helper()
	if err := st.RecordDecisions(t.Context(), ds, domain.Mark{}); err != nil {
		t.Fatal(err)
	}
}

func mustStats(t *testing.T, st domain.Store, scope domain.Scope) domain.Stats {
	t.Helper()
	s, err := st.Stats(t.Context(), scope)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func assertStats(t *testing.T, got domain.Stats, total, denied, crossDenied int64, perTenant map[string]int64) {
	t.Helper()
	if got.Total != total || got.Denied != denied || got.CrossTenantDenied != crossDenied {
		t.Errorf("stats = total %d, denied %d, cross-tenant denied %d; want %d, %d, %d",
			got.Total, got.Denied, got.CrossTenantDenied, total, denied, crossDenied)
	}
	if fmt.Sprint(got.PerTenant) != fmt.Sprint(perTenant) {
		t.Errorf("per tenant = %v, want %v", got.PerTenant, perTenant)
	}
}

func ids(ts []domain.Tenant) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.ID
	}
	return out
}

func testCreateGetTenant(t *testing.T, st domain.Store) {
	ctx := t.Context()
	created := time.Date(2030, 1, 2, 3, 4, 5, 678901234, time.FixedZone("X", -7200))
	want := domain.Tenant{ID: "acme", DisplayName: "Acme Corp", CreatedAt: created.UTC().Truncate(time.Microsecond), State: domain.StateActive}

	got, existed, err := st.CreateTenant(ctx, domain.Tenant{ID: "acme", DisplayName: "Acme Corp", CreatedAt: created})
	if err != nil || existed || got != want {
		t.Fatalf("CreateTenant = %+v, existed %v, %v; want %+v, false", got, existed, err, want)
	}
	got, existed, err = st.CreateTenant(ctx, domain.Tenant{ID: "acme", DisplayName: "Impostor", CreatedAt: time.Now()})
	if err != nil || !existed || got != want {
		t.Errorf("second CreateTenant = %+v, existed %v, %v; want the stored %+v, true", got, existed, err, want)
	}
	if got, err := st.GetTenant(ctx, "acme"); err != nil || got != want {
		t.Errorf("GetTenant = %+v, %v; want %+v", got, err, want)
	}
	for _, id := range []string{"globex", ""} {
		if _, err := st.GetTenant(ctx, id); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("GetTenant(%q) = %v, want ErrNotFound", id, err)
		}
	}
	if _, _, err := st.CreateTenant(ctx, domain.Tenant{DisplayName: "no id"}); err == nil {
		t.Error("CreateTenant without an id succeeded")
	}

	before := time.Now().Add(-time.Second)
	fresh, _, err := st.CreateTenant(ctx, domain.Tenant{ID: "initech", DisplayName: "Initech"})
	if err != nil {
		t.Fatal(err)
	}
	if fresh.CreatedAt.Before(before) || fresh.CreatedAt.Location() != time.UTC {
		t.Errorf("default CreatedAt = %v, want now in UTC", fresh.CreatedAt)
	}
}

func testListTenants(t *testing.T, st domain.Store) {
	ctx := t.Context()
	mustCreate(t, st, "t05", "t02", "t07", "t01", "t04", "t06", "t03")

	var pages [][]string
	after := ""
	for range 5 {
		page, err := st.ListTenants(ctx, all, after, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		pages = append(pages, ids(page))
		after = page[len(page)-1].ID
	}
	if want := "[[t01 t02 t03] [t04 t05 t06] [t07]]"; fmt.Sprint(pages) != want {
		t.Errorf("pages = %v, want %s", pages, want)
	}

	page, err := st.ListTenants(ctx, domain.Scope{Tenant: "t03"}, "", 10)
	if err != nil || fmt.Sprint(ids(page)) != "[t03]" {
		t.Errorf("tenant-scoped list = %v, %v; want [t03]", ids(page), err)
	}
	page, err = st.ListTenants(ctx, domain.Scope{Tenant: "t03"}, "t03", 10)
	if err != nil || len(page) != 0 {
		t.Errorf("tenant-scoped list after itself = %v, %v; want empty", ids(page), err)
	}
	page, err = st.ListTenants(ctx, domain.Scope{Tenant: "t99"}, "", 10)
	if err != nil || len(page) != 0 {
		t.Errorf("list of an unknown tenant = %v, %v; want empty", ids(page), err)
	}
	if _, err := st.ListTenants(ctx, all, "", 0); err == nil {
		t.Error("ListTenants with limit 0 succeeded")
	}
	if _, err := st.ListTenants(ctx, domain.Scope{}, "", 10); err == nil {
		t.Error("ListTenants with an empty scope succeeded")
	}
}

func testDecisionCounters(t *testing.T, st domain.Store) {
	if s := mustStats(t, st, all); s.PerTenant == nil {
		t.Error("PerTenant is nil before any decision, want an empty map")
	}
	assertStats(t, mustStats(t, st, all), 0, 0, 0, map[string]int64{})

	mustRecord(t, st,
		domain.Decision{TenantID: "acme", Subject: "alice", Method: "/m", Service: "tenancy", Allowed: true, Verified: true},
		domain.Decision{TenantID: "globex", TargetTenantID: "globex", Allowed: false, Reason: "role"},
		domain.Decision{TenantID: "acme", TargetTenantID: "globex", Allowed: false, Reason: "cross-tenant"},
		domain.Decision{TenantID: "acme", TargetTenantID: "globex", Allowed: true, Reason: "admin read"},
	)
	mustRecord(t, st,
		domain.Decision{TenantID: "acme", TargetTenantID: "acme", Allowed: false, Reason: "role"},
		domain.Decision{TenantID: "globex", TargetTenantID: "acme", Allowed: false, Reason: "cross-tenant"},
	)
	if err := st.RecordDecisions(t.Context(), nil, domain.Mark{}); err != nil {
		t.Errorf("RecordDecisions(nil) = %v", err)
	}

	assertStats(t, mustStats(t, st, all), 6, 4, 2, map[string]int64{"acme": 4, "globex": 2})
	assertStats(t, mustStats(t, st, acme), 4, 2, 1, map[string]int64{"acme": 4})
	assertStats(t, mustStats(t, st, globex), 2, 2, 1, map[string]int64{"globex": 2})
	assertStats(t, mustStats(t, st, domain.Scope{Tenant: "initech"}), 0, 0, 0, map[string]int64{})
	if _, err := st.Stats(t.Context(), domain.Scope{}); err == nil {
		t.Error("Stats with an empty scope succeeded")
	}
}

// testLargeBatch sends more rows per tenant than one INSERT carries.
func testLargeBatch(t *testing.T, st domain.Store) {
	var ds []domain.Decision
	var denied int64
	for i := range 1000 {
		d := domain.Decision{TenantID: []string{"acme", "globex", "initech"}[i%3], Allowed: i%4 != 0}
		if !d.Allowed {
			denied++
		}
		ds = append(ds, d)
	}
	mustRecord(t, st, ds...)
	assertStats(t, mustStats(t, st, all), 1000, denied, 0, map[string]int64{"acme": 334, "globex": 333, "initech": 333})
}

func testInvalidBatch(t *testing.T, st domain.Store) {
	err := st.RecordDecisions(t.Context(), []domain.Decision{{TenantID: "acme", Allowed: true}, {TenantID: ""}}, domain.Mark{})
	if err == nil {
		t.Fatal("RecordDecisions with an empty tenant succeeded")
	}
	assertStats(t, mustStats(t, st, all), 0, 0, 0, map[string]int64{})
}

func testPrune(t *testing.T, st domain.Store) {
	ctx := t.Context()
	now := time.Now()
	old, recent := now.Add(-48*time.Hour), now.Add(-time.Hour)
	var ds []domain.Decision
	// More old acme rows than one prune batch deletes.
	for range 1100 {
		ds = append(ds, domain.Decision{TenantID: "acme", Allowed: false, Time: old})
	}
	for _, tenant := range []string{"acme", "globex"} {
		ds = append(ds,
			domain.Decision{TenantID: tenant, Allowed: true, Time: recent},
			domain.Decision{TenantID: tenant, Allowed: true, Time: old},
		)
	}
	mustRecord(t, st, ds...)
	wantStats := func() {
		t.Helper()
		assertStats(t, mustStats(t, st, all), 1104, 1100, 0, map[string]int64{"acme": 1102, "globex": 2})
	}
	wantStats()

	cutoff := now.Add(-24 * time.Hour)
	for _, want := range []int64{1102, 0} {
		if n, err := st.PruneDecisions(ctx, cutoff); err != nil || n != want {
			t.Errorf("PruneDecisions = %d, %v; want %d", n, err, want)
		}
	}
	wantStats()
	// Only the two recent rows are left.
	if n, err := st.PruneDecisions(ctx, now.Add(time.Hour)); err != nil || n != 2 {
		t.Errorf("PruneDecisions of the rest = %d, %v; want 2", n, err)
	}
	wantStats()
}

// testConcurrentRecording records mixed-tenant batches from several
// goroutines: counters must be exact and PostgreSQL must not deadlock.
func testConcurrentRecording(t *testing.T, st domain.Store) {
	const workers, calls = 8, 25
	tenants := []string{"acme", "globex", "initech", "umbrella"}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for c := range calls {
				batch := make([]domain.Decision, 0, 8)
				for i := range 8 {
					// Rotate the order so batches list tenants differently.
					tenant := tenants[(w+c+i)%len(tenants)]
					batch = append(batch, domain.Decision{TenantID: tenant, TargetTenantID: "other", Allowed: i%2 == 0})
				}
				if err := st.RecordDecisions(t.Context(), batch, domain.Mark{}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	const total = workers * calls * 8
	assertStats(t, mustStats(t, st, all), total, total/2, total/2,
		map[string]int64{"acme": total / 4, "globex": total / 4, "initech": total / 4, "umbrella": total / 4})
}

// testTenantIsolation: a tenant-scoped call never returns another tenant's
// rows, on SQLite through the WHERE clauses alone.
func testTenantIsolation(t *testing.T, st domain.Store) {
	ctx := t.Context()
	mustCreate(t, st, "acme", "globex", "initech")
	mustRecord(t, st,
		domain.Decision{TenantID: "acme", Allowed: true},
		domain.Decision{TenantID: "globex", Allowed: false},
		domain.Decision{TenantID: "globex", TargetTenantID: "acme", Allowed: false},
	)
	for _, scope := range []domain.Scope{acme, globex} {
		page, err := st.ListTenants(ctx, scope, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(page); !slices.Equal(got, []string{scope.Tenant}) {
			t.Errorf("ListTenants(%s) = %v, want only itself", scope.Tenant, got)
		}
		s := mustStats(t, st, scope)
		if len(s.PerTenant) != 1 || s.PerTenant[scope.Tenant] != s.Total {
			t.Errorf("Stats(%s) = %+v, want only its own counters", scope.Tenant, s)
		}
	}
	assertStats(t, mustStats(t, st, acme), 1, 0, 0, map[string]int64{"acme": 1})
	page, err := st.ListTenants(ctx, all, "", 100)
	if err != nil || fmt.Sprint(ids(page)) != "[acme globex initech]" {
		t.Errorf("ListTenants(all) = %v, %v", ids(page), err)
	}
}

// testWriterMarks: a batch's mark is stored with it and read back from the
// same snapshot as the counters, per writer; an unmarked batch or a failed
// one leaves it as it was.
func testWriterMarks(t *testing.T, st domain.Store) {
	ctx := t.Context()
	seq := func(writer, tenant string, all bool) int64 {
		t.Helper()
		s, err := st.Stats(ctx, domain.Scope{Tenant: tenant, AllTenants: all, Writer: writer})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := s.PerTenant[""]; ok {
			t.Fatalf("the writer's row was counted as a tenant: %+v", s)
		}
		return s.WriterSeq
	}
	if got := seq("w1", "acme", false); got != 0 {
		t.Fatalf("unknown writer at batch %d", got)
	}
	for i, m := range []domain.Mark{{Writer: "w1", Seq: 1}, {Writer: "w2", Seq: 7}, {Writer: "w1", Seq: 2}, {}} {
		if err := st.RecordDecisions(ctx, []domain.Decision{{TenantID: "acme", Allowed: true}}, m); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	if err := st.RecordDecisions(ctx, []domain.Decision{{TenantID: "acme"}, {TenantID: ""}}, domain.Mark{Writer: "w1", Seq: 3}); err == nil {
		t.Fatal("a batch with an empty tenant was stored")
	}
	if w1, w2, all := seq("w1", "acme", false), seq("w2", "globex", false), seq("w1", "", true); w1 != 2 || w2 != 7 || all != 2 {
		t.Fatalf("w1 at %d, w2 at %d, w1 read across tenants at %d; want 2, 7, 2", w1, w2, all)
	}
	s, err := st.Stats(ctx, domain.Scope{Tenant: "acme", Writer: "w1"})
	if err != nil || s.Total != 4 {
		t.Fatalf("acme = %+v, %v; want the 4 stored decisions", s, err)
	}
}
