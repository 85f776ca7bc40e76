package store_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/echopilot/echopilot/services/tenancy/internal/domain"
)

// testExports: exports are the tenant's own, list newest first, count
// their finished files, and a file's chunks come back in order, appended
// and reset as the worker stores them.
func testExports(t *testing.T, st domain.Store) {
	ctx := t.Context()
	mustCreate(t, st, "acme", "globex")
	now := time.Now().UTC().Truncate(time.Microsecond)
	a := domain.Export{ID: ulid.Make().String(), TenantID: "acme", State: domain.ExportQueued, RequestedBy: "u@acme", CreatedAt: now}
	b := domain.Export{ID: ulid.Make().String(), TenantID: "acme", State: domain.ExportQueued, RequestedBy: "u@acme", CreatedAt: now}
	g := domain.Export{ID: ulid.Make().String(), TenantID: "globex", State: domain.ExportQueued, RequestedBy: "u@globex", CreatedAt: now}
	for _, e := range []domain.Export{a, b, g} {
		if err := st.CreateExport(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := st.GetExport(ctx, "acme", a.ID); err != nil || got.State != domain.ExportQueued || !got.CreatedAt.Equal(now) ||
		got.RequestedBy != "u@acme" || got.Files != 0 || !got.FinishedAt.IsZero() {
		t.Fatalf("get = %+v, %v", got, err)
	}
	if _, err := st.GetExport(ctx, "globex", a.ID); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("globex reads acme's export: %v", err)
	}
	if got, err := st.FindExport(ctx, g.ID); err != nil || got.TenantID != "globex" {
		t.Fatalf("find = %+v, %v", got, err)
	}
	if list, err := st.ListExports(ctx, "acme", "", 10); err != nil || len(list) != 2 || list[0].ID != b.ID || list[1].ID != a.ID {
		t.Fatalf("list = %+v, %v", list, err)
	}
	if list, _ := st.ListExports(ctx, "acme", b.ID, 10); len(list) != 1 || list[0].ID != a.ID {
		t.Fatalf("second page = %+v", list)
	}

	big := bytes.Repeat([]byte("x"), domain.MaxChunk)
	f := domain.ExportFile{Seq: 0, Name: "queue/jobs.jsonl", Size: int64(len(big)) + 3, Rows: 2, HashState: []byte{1}, Cursor: "c1"}
	if err := st.PutExportFile(ctx, "acme", a.ID, f, [][]byte{big, []byte("ab\n")}, false); err != nil {
		t.Fatal(err)
	}
	f.Size, f.Done, f.SHA256, f.Cursor = f.Size+2, true, "00ff", "c2"
	if err := st.PutExportFile(ctx, "acme", a.ID, f, [][]byte{[]byte("c\n")}, false); err != nil {
		t.Fatal(err)
	}
	half := domain.ExportFile{Seq: 1, Name: "finops/costs.csv", Size: 4, HashState: []byte{2}}
	if err := st.PutExportFile(ctx, "acme", a.ID, half, [][]byte{[]byte("cut!")}, false); err != nil {
		t.Fatal(err)
	}
	// A chunk over the limit is refused, with nothing of the call stored.
	if err := st.PutExportFile(ctx, "acme", a.ID, domain.ExportFile{Seq: 2, Name: "n", Size: int64(len(big)) + 1, HashState: []byte{}},
		[][]byte{append(big, 'y')}, false); err == nil || errors.Is(err, domain.ErrExportFileChanged) {
		t.Fatalf("a chunk over MaxChunk: %v", err)
	}
	// Chunks that do not continue the stored bytes (a second writer) are
	// refused.
	stale := f
	stale.Size = f.Size + 2
	if err := st.PutExportFile(ctx, "acme", a.ID, stale, [][]byte{[]byte("z")}, false); !errors.Is(err, domain.ErrExportFileChanged) {
		t.Fatalf("stale writer: %v", err)
	}
	stale.Size = f.Size + 1
	if err := st.PutExportFile(ctx, "acme", a.ID, stale, nil, false); !errors.Is(err, domain.ErrExportFileChanged) {
		t.Fatalf("stale writer without data: %v", err)
	}
	// A restarted body file starts over.
	half.Size, half.Done, half.SHA256 = 3, true, "aa"
	if err := st.PutExportFile(ctx, "acme", a.ID, half, [][]byte{[]byte("ok\n")}, true); err != nil {
		t.Fatal(err)
	}
	files, err := st.ExportFiles(ctx, "acme", a.ID)
	if err != nil || len(files) != 2 || files[0].Name != "queue/jobs.jsonl" || files[0].Cursor != "c2" || !files[0].Done ||
		files[0].Rows != 2 || !bytes.Equal(files[0].HashState, []byte{1}) || files[1].Size != 3 || files[1].SHA256 != "aa" {
		t.Fatalf("files = %+v, %v", files, err)
	}
	read := func(seq int) []byte {
		var out []byte
		n := 0
		if err := st.ReadExportFile(ctx, "acme", a.ID, seq, func(b []byte) error { out = append(out, b...); n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got := read(0); !bytes.Equal(got, append(append(big, "ab\n"...), "c\n"...)) {
		t.Fatalf("file 0 reads %d bytes", len(got))
	}
	if got := read(1); string(got) != "ok\n" {
		t.Fatalf("file 1 = %q", got)
	}
	if err := st.ReadExportFile(ctx, "globex", a.ID, 0, func([]byte) error { t.Fatal("globex reads acme's chunks"); return nil }); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.GetExport(ctx, "acme", a.ID); got.Files != 2 || got.SizeBytes != int64(len(big))+5+3 {
		t.Fatalf("progress = %d files, %d bytes", got.Files, got.SizeBytes)
	}

	cur, msg, sum := "finops/costs.csv", "boom", "ab12"
	if err := st.UpdateExport(ctx, "acme", a.ID, domain.ExportUpdate{State: domain.ExportRunning, CurrentFile: &cur}); err != nil {
		t.Fatal(err)
	}
	if err := st.UpdateExport(ctx, "acme", a.ID, domain.ExportUpdate{ManifestSHA256: &sum}); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.GetExport(ctx, "acme", a.ID); got.State != domain.ExportRunning || got.CurrentFile != cur || got.ManifestSHA256 != sum {
		t.Fatalf("after updates = %+v", got)
	}
	if err := st.UpdateExport(ctx, "acme", a.ID, domain.ExportUpdate{State: domain.ExportFailed, Error: &msg, FinishedAt: now}); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.GetExport(ctx, "acme", a.ID); got.State != domain.ExportFailed || got.Error != msg || !got.FinishedAt.Equal(now) || got.CurrentFile != cur {
		t.Fatalf("failed = %+v", got)
	}
	// Another tenant's scope changes nothing.
	if err := st.UpdateExport(ctx, "globex", a.ID, domain.ExportUpdate{State: domain.ExportSucceeded}); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.GetExport(ctx, "acme", a.ID); got.State != domain.ExportFailed {
		t.Fatalf("globex changed acme's export: %+v", got)
	}
}

// testErasures: offboarding changes the state and stores the erasure with
// its events in one transaction; progress and the end are stored.
func testErasures(t *testing.T, st domain.Store) {
	ctx := t.Context()
	mustCreate(t, st, "acme")
	now := time.Now().UTC().Truncate(time.Microsecond)
	e := domain.Erasure{ID: ulid.Make().String(), TenantID: "acme", State: domain.ErasureRunning, Reason: "left", RequestedBy: "u@default",
		ExportSkipped: true, Pseudonym: "erased-x", CreatedAt: now}
	if _, err := st.GetErasure(ctx, "acme"); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("erasure before offboarding: %v", err)
	}
	events := func(before, after domain.Tenant) ([]domain.Event, error) {
		return []domain.Event{{Topic: domain.TopicTenantState, Key: ulid.Make().String(), TenantID: "acme", Payload: json.RawMessage(`{}`)}}, nil
	}
	tn, err := st.Offboard(ctx, e, domain.StateChange{To: domain.StateOffboarding, Reason: "left", By: "u@default", At: now, Events: events})
	if err != nil || tn.State != domain.StateOffboarding {
		t.Fatalf("offboard = %+v, %v", tn, err)
	}
	if n, err := st.PendingEvents(ctx, "acme"); err != nil || n != 1 {
		t.Fatalf("pending = %d, %v", n, err)
	}
	if n, _ := st.PendingEvents(ctx, "globex"); n != 0 {
		t.Fatalf("globex pending = %d", n)
	}
	got, err := st.GetErasure(ctx, "acme")
	if err != nil || got.ID != e.ID || got.State != domain.ErasureRunning || !got.ExportSkipped || got.Pseudonym != "erased-x" || !got.CreatedAt.Equal(now) {
		t.Fatalf("get = %+v, %v", got, err)
	}
	// A refused change stores nothing.
	refuse := func(domain.Tenant, domain.Tenant) ([]domain.Event, error) { return nil, errors.New("refused") }
	mustCreate(t, st, "globex")
	e2 := e
	e2.ID, e2.TenantID = ulid.Make().String(), "globex"
	if _, err := st.Offboard(ctx, e2, domain.StateChange{To: domain.StateOffboarding, At: now, Events: refuse}); err == nil {
		t.Fatal("refused offboarding succeeded")
	}
	if _, err := st.GetErasure(ctx, "globex"); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("refused offboarding stored an erasure: %v", err)
	}

	got.Services = []domain.ServiceErasure{{Service: "queue", Done: true, UpdatedAt: now,
		Kinds: []domain.KindProgress{{Kind: "jobs", Rule: "delete", Changed: 3}}}}
	if err := st.SaveErasureProgress(ctx, got); err != nil {
		t.Fatal(err)
	}
	found, err := st.FindErasure(ctx, e.ID)
	if err != nil || len(found.Services) != 1 || found.Services[0].Kinds[0].Changed != 3 || !found.Services[0].UpdatedAt.Equal(now) {
		t.Fatalf("find = %+v, %v", found, err)
	}
	tn, err = st.FinishErasure(ctx, found, now, domain.StateChange{To: domain.StateDeleted, At: now, Events: events})
	if err != nil || tn.State != domain.StateDeleted {
		t.Fatalf("finish = %+v, %v", tn, err)
	}
	if done, _ := st.GetErasure(ctx, "acme"); done.State != domain.ErasureDone || !done.FinishedAt.Equal(now) {
		t.Fatalf("done = %+v", done)
	}

	if set, err := st.ErasedTenants(ctx); err != nil || len(set) != 1 || set["acme"] != "erased-x" {
		t.Fatalf("erased tenants = %v, %v", set, err)
	}

	// Other tenants' decisions naming acme get the pseudonym; acme's own
	// and other targets stay.
	mustRecord(t, st,
		domain.Decision{TenantID: "default", TargetTenantID: "acme", Allowed: true},
		domain.Decision{TenantID: "globex", TargetTenantID: "acme"},
		domain.Decision{TenantID: "globex", TargetTenantID: "globex", Allowed: true})
	if n, err := st.PseudonymiseTargets(ctx, "acme", "erased-x"); err != nil || n != 2 {
		t.Fatalf("pseudonymised %d, %v; want 2", n, err)
	}
	if n, err := st.PseudonymiseTargets(ctx, "acme", "erased-x"); err != nil || n != 0 {
		t.Fatalf("again: %d, %v", n, err)
	}
}

// mustExport stores an export of tenant with one file of one chunk, and
// the tenant's erasure.
func mustExport(t *testing.T, st domain.Store, tenant string) {
	t.Helper()
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Microsecond)
	id := ulid.Make().String()
	if err := st.CreateExport(ctx, domain.Export{ID: id, TenantID: tenant, State: domain.ExportQueued, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	f := domain.ExportFile{Name: domain.ManifestName, Size: 2, Done: true, HashState: []byte{1}}
	if err := st.PutExportFile(ctx, tenant, id, f, [][]byte{[]byte("{}")}, false); err != nil {
		t.Fatal(err)
	}
	none := func(domain.Tenant, domain.Tenant) ([]domain.Event, error) { return nil, nil }
	e := domain.Erasure{ID: ulid.Make().String(), TenantID: tenant, State: domain.ErasureRunning, Reason: "r", Pseudonym: "erased-x", CreatedAt: now}
	if _, err := st.Offboard(ctx, e, domain.StateChange{To: domain.StateOffboarding, At: now, Events: none}); err != nil {
		t.Fatal(err)
	}
}
