package tenantdata_test

import (
	"context"
	"database/sql"
	"encoding/base64"
	"maps"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	tenantdatav1 "github.com/echopilot/echopilot/gen/go/echopilot/tenantdata/v1"
	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/outbox"
	"github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/platform/tenantdata"
	"github.com/echopilot/echopilot/platform/tenantdata/tenantdatatest"
)

const (
	tenantA  = "acme"
	tenantB  = "beta"
	nItems   = 1200
	blobSize = 2000
)

// testRules are the test schema's exceptions; owner stands for a database
// function that alone may delete counters (the app role has no DELETE on
// it on PostgreSQL, like queue's job counters).
func testRules(owner *store.DB) tenantdata.Rules {
	return tenantdata.Rules{
		Redact: map[string][]string{"items": {"secret"}},
		Skip:   map[string]string{"skipped": "derivable", "not_yet_created": "a table a later release adds"},
		Keep: map[string]tenantdata.Rule{
			"registry": {Action: tenantdata.ActionKeep, Reason: "the record that the tenant existed"},
			"ledger": {Action: tenantdata.ActionPseudonymise, Reason: "the law keeps paid records",
				Where: "paid_at IS NOT NULL", Blank: []string{"payer"}},
			"not_yet_created": {Action: tenantdata.ActionKeep, Reason: "absent tables are fine"},
		},
		Erase: map[string]tenantdata.EraseFunc{"counters": func(ctx context.Context, tenant string, _ int) (int64, int64, error) {
			res, err := owner.ExecContext(ctx, owner.Rebind("DELETE FROM counters WHERE tenant_id = ?"), tenant)
			if err != nil {
				return 0, 0, err
			}
			n, err := res.RowsAffected()
			return n, 0, err
		}},
	}
}

func TestTenantData(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			for _, tc := range []struct {
				name string
				fn   func(*testing.T, *store.DB, tenantdatav1.TenantDataServiceClient)
			}{
				{"export", testExport},
				{"export resumes", testExportResume},
				{"erase", testErase},
				{"bad requests", testBadRequests},
			} {
				t.Run(tc.name, func(t *testing.T) {
					db, owner := open(t, b)
					seed(t, db)
					tc.fn(t, db, serve(t, db, testRules(owner)))
				})
			}
		})
	}
}

func open(t *testing.T, b storetest.Backend) (app, owner *store.DB) {
	migrateURL, appURL := b.NewDB(t)
	owner = storetest.Open(t, migrateURL)
	for _, m := range []store.Migrations{{SQLite: os.DirFS("testdata/sqlite"), Postgres: os.DirFS("testdata/postgres")}, outbox.Migrations} {
		if err := owner.Migrate(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	return storetest.Open(t, appURL), owner
}

func serve(t *testing.T, db *store.DB, rules tenantdata.Rules) tenantdatav1.TenantDataServiceClient {
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	tenantdatav1.RegisterTenantDataServiceServer(srv, tenantdata.New(db, rules))
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///bufconn", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return tenantdatav1.NewTenantDataServiceClient(conn)
}

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)

func seed(t *testing.T, db *store.DB) {
	ctx := t.Context()
	blob := make([]byte, blobSize)
	for i := range blob {
		blob[i] = byte(i)
	}
	write := func(tenant string, stmts ...[]any) {
		t.Helper()
		err := db.InTenantTx(ctx, tenant, func(tx *sql.Tx) error {
			for _, s := range stmts {
				if _, err := tx.ExecContext(ctx, db.Rebind(s[0].(string)), s[1:]...); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var items [][]any
	for i := 1; i <= nItems; i++ {
		var name, at any = "item", epoch.Add(time.Duration(i) * time.Second)
		if i%7 == 0 {
			name, at = nil, nil
		}
		items = append(items, []any{"INSERT INTO items (tenant_id, id, name, data, at, secret) VALUES (?, ?, ?, ?, ?, ?)",
			tenantA, int64(i), name, blob, at, "hash-of-secret"})
	}
	write(tenantA, items...)
	write(tenantA,
		[]any{"INSERT INTO links VALUES (?, 'x', 'y', ?)", tenantA, tenantA},
		[]any{"INSERT INTO links VALUES (?, 'x', 'z', ?)", tenantA, tenantB},
		[]any{"INSERT INTO ledger VALUES (?, 'p1', 'Alice', ?)", tenantA, epoch},
		[]any{"INSERT INTO ledger VALUES (?, 'p2', 'Bob', ?)", tenantA, epoch},
		[]any{"INSERT INTO ledger VALUES (?, 'p3', 'Carol', NULL)", tenantA},
		[]any{"INSERT INTO registry VALUES (?, 'Acme')", tenantA},
		[]any{"INSERT INTO skipped VALUES (?, 's1')", tenantA},
		[]any{"INSERT INTO counters VALUES (?, 7)", tenantA},
		[]any{"INSERT INTO plain VALUES ('k1', 'not a tenant')"},
	)
	write(tenantB,
		[]any{"INSERT INTO items (tenant_id, id, name) VALUES (?, 1, 'b')", tenantB},
		[]any{"INSERT INTO links VALUES (?, 'x', 'y', ?)", tenantB, tenantA},
		[]any{"INSERT INTO links VALUES (?, 'x', 'z', ?)", tenantB, tenantA},
		[]any{"INSERT INTO links VALUES (?, 'x', 'w', ?)", tenantB, tenantB},
		[]any{"INSERT INTO ledger VALUES (?, 'p1', 'Dave', ?)", tenantB, epoch},
		[]any{"INSERT INTO registry VALUES (?, 'Beta')", tenantB},
		[]any{"INSERT INTO counters VALUES (?, 3)", tenantB},
	)
	ob := "INSERT INTO outbox (id, topic, event_key, tenant_id, payload, created_at, next_attempt_at, delivered_at) VALUES (?, 't', 'k', ?, ?, ?, ?, ?)"
	write(tenantA,
		[]any{ob, "e1", tenantA, []byte("{}"), epoch, epoch, epoch},
		[]any{ob, "e2", tenantA, []byte("{}"), epoch, epoch, nil},
		[]any{ob, "e3", tenantB, []byte("{}"), epoch, epoch, nil},
	)
}

func testExport(t *testing.T, _ *store.DB, c tenantdatav1.TenantDataServiceClient) {
	resps := tenantdatatest.Export(t, t.Context(), c, tenantA, "", "")
	for _, r := range resps {
		if len(r.GetLines()) > 1<<20 {
			t.Errorf("kind %s: response of %d bytes", r.GetKind(), len(r.GetLines()))
		}
	}
	got := tenantdatatest.Lines(t, resps)
	want := map[string]int{"items": nItems, "links": 2, "ledger": 3, "registry": 1, "outbox": 2, "counters": 1}
	for kind, n := range want {
		if len(got[kind]) != n {
			t.Errorf("kind %s: %d rows, want %d", kind, len(got[kind]), n)
		}
	}
	if len(got) != len(want) {
		t.Errorf("kinds %v, want %v (skipped and non-tenant tables left out)", keys(got), want)
	}
	var kinds []string
	for _, r := range resps {
		if len(kinds) == 0 || kinds[len(kinds)-1] != r.GetKind() {
			kinds = append(kinds, r.GetKind())
		}
	}
	if strings.Join(kinds, ",") != "counters,items,ledger,links,outbox,registry" {
		t.Errorf("kind order %v", kinds)
	}
	if resps[1].GetKind() != "items" || strings.Join(resps[1].GetRedactedColumns(), ",") != "secret" {
		t.Errorf("items redacted %v, want [secret]", resps[1].GetRedactedColumns())
	}
	for i, row := range got["items"] {
		id := i + 1
		if row["tenant_id"] != tenantA || row["id"] != float64(id) {
			t.Fatalf("items row %d: %v", i, row["id"])
		}
		if _, ok := row["secret"]; ok {
			t.Fatalf("items row %d carries the redacted secret", id)
		}
		if id%7 == 0 {
			if row["name"] != nil || row["at"] != nil {
				t.Fatalf("items row %d: NULLs as %v, %v", id, row["name"], row["at"])
			}
			continue
		}
		if at := epoch.Add(time.Duration(id) * time.Second).Format(time.RFC3339Nano); row["at"] != at {
			t.Fatalf("items row %d: at %v, want %s", id, row["at"], at)
		}
		if b, err := base64.StdEncoding.DecodeString(row["data"].(string)); err != nil || len(b) != blobSize || b[5] != 5 {
			t.Fatalf("items row %d: data %v", id, err)
		}
	}
	if n := len(resps); n < 4 {
		t.Errorf("items of ~%d MiB came in %d responses: want chunks of at most 1 MiB", nItems*blobSize*4/3>>20, n)
	}
	for _, row := range got["links"] {
		if row["tenant_id"] != tenantA {
			t.Errorf("links: another tenant's row %v", row)
		}
	}
	for _, tenant := range []string{tenantB} {
		if n := len(tenantdatatest.Lines(t, tenantdatatest.Export(t, t.Context(), c, tenant, "", ""))["items"]); n != 1 {
			t.Errorf("tenant %s: %d items", tenant, n)
		}
	}
}

func testExportResume(t *testing.T, _ *store.DB, c tenantdatav1.TenantDataServiceClient) {
	all := tenantdatatest.Export(t, t.Context(), c, tenantA, "", "")
	mid := all[2] // counters, then items
	if mid.GetKind() != "items" || mid.GetKindDone() {
		t.Fatalf("second response: kind %s done %v, want a middle one of items", mid.GetKind(), mid.GetKindDone())
	}
	before := tenantdatatest.Lines(t, all[:3])["items"]
	rest := tenantdatatest.Export(t, t.Context(), c, tenantA, mid.GetKind(), mid.GetCursor())
	after := tenantdatatest.Lines(t, rest)
	if got := len(before) + len(after["items"]); got != nItems {
		t.Errorf("resumed: %d + %d items, want %d in all", len(before), len(after["items"]), nItems)
	}
	if first := after["items"][0]["id"]; first != before[len(before)-1]["id"].(float64)+1 {
		t.Errorf("resumed at id %v after %v", first, before[len(before)-1]["id"])
	}
	if len(after["registry"]) != 1 {
		t.Errorf("resume did not go on to the later kinds: %v", keys(after))
	}
}

func testErase(t *testing.T, db *store.DB, c tenantdatav1.TenantDataServiceClient) {
	ctx := t.Context()
	req := &tenantdatav1.EraseTenantDataRequest{TenantId: tenantA, BatchSize: 100, Pseudonym: "erased-1a2b", ErasureId: "er-1"}
	first, err := c.EraseTenantData(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	progress := map[string]*tenantdatav1.KindProgress{}
	for _, k := range first.GetKinds() {
		progress[k.GetKind()] = k
	}
	if p := progress["items"]; p.GetChanged() != 100 || p.GetRemaining() != nItems-100 || p.GetRule() != "delete" {
		t.Errorf("items after one batch: %v", p)
	}
	if p := progress["registry"]; p.GetRule() != "keep" || p.GetRemaining() != 0 || p.GetReason() == "" {
		t.Errorf("registry: %v", p)
	}
	if p := progress["counters"]; p.GetRule() != "delete" || p.GetChanged() != 1 {
		t.Errorf("counters (the service's own eraser): %v", p)
	}
	if p := progress["skipped"]; p.GetRule() != "delete" || p.GetChanged() != 1 {
		t.Errorf("skipped (exported never, erased still): %v", p)
	}
	if p := progress["links"]; p.GetChanged() != 4 || p.GetRemaining() != 0 {
		t.Errorf("links (own rows and another tenant's naming it): %v", p)
	}
	// The pending outbox event holds the erasure until the relay delivers it.
	for range 15 {
		r, err := c.EraseTenantData(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if r.GetDone() {
			t.Fatal("done with an outbox event of the tenant pending")
		}
	}
	if res := tenantdatatest.Residue(t, db, tenantA); res["outbox"] != 1 || res["items"] != 0 {
		t.Fatalf("with the outbox pending: residue %v", res)
	}
	if _, err := db.ExecContext(ctx, db.Rebind("UPDATE outbox SET delivered_at = ? WHERE id = 'e2'"), epoch); err != nil {
		t.Fatal(err)
	}
	tenantdatatest.EraseAll(t, ctx, c, req, 3)

	if res := tenantdatatest.Residue(t, db, tenantA); len(res) != 1 || res["registry"] != 1 {
		t.Errorf("after erasure the tenant id is left in %v, want only the kept registry row", res)
	}
	if res := tenantdatatest.Residue(t, db, "erased-1a2b"); len(res) != 1 || res["ledger"] != 2 {
		t.Errorf("pseudonym in %v, want the 2 paid ledger rows", res)
	}
	for _, name := range []string{"Alice", "Bob", "Carol"} {
		if res := tenantdatatest.Residue(t, db, name); len(res) != 0 {
			t.Errorf("payer %s left in %v", name, res)
		}
	}
	for value, want := range map[string]map[string]int{
		tenantB: {"items": 1, "links": 1, "ledger": 1, "registry": 1, "outbox": 1, "counters": 1},
		"Dave":  {"ledger": 1},
	} {
		if res := tenantdatatest.Residue(t, db, value); !maps.Equal(res, want) {
			t.Errorf("%s's rows after erasing %s: %v, want %v", value, tenantA, res, want)
		}
	}
	// A re-run changes nothing and is done.
	again, err := c.EraseTenantData(ctx, req)
	if err != nil || !again.GetDone() {
		t.Fatalf("re-run: %v, %v", again, err)
	}
	for _, k := range again.GetKinds() {
		if k.GetChanged() != 0 || k.GetRemaining() != 0 {
			t.Errorf("re-run: %v", k)
		}
	}
	if n := len(tenantdatatest.Lines(t, tenantdatatest.Export(t, ctx, c, tenantA, "", ""))["registry"]); n != 1 {
		t.Errorf("export after erasure: %d registry rows, want the kept one", n)
	}
}

func testBadRequests(t *testing.T, _ *store.DB, c tenantdatav1.TenantDataServiceClient) {
	ctx := t.Context()
	ok := tenantdatav1.EraseTenantDataRequest{TenantId: tenantA, Pseudonym: "erased-x", ErasureId: "e"}
	for reason, mut := range map[string][]func(*tenantdatav1.EraseTenantDataRequest){
		"TENANT_ID_INVALID":  {func(r *tenantdatav1.EraseTenantDataRequest) { r.TenantId = "" }, func(r *tenantdatav1.EraseTenantDataRequest) { r.TenantId = "Acme!" }},
		"BATCH_SIZE_INVALID": {func(r *tenantdatav1.EraseTenantDataRequest) { r.BatchSize = -1 }, func(r *tenantdatav1.EraseTenantDataRequest) { r.BatchSize = 10001 }},
		"PSEUDONYM_INVALID": {
			func(r *tenantdatav1.EraseTenantDataRequest) { r.Pseudonym = "" },
			func(r *tenantdatav1.EraseTenantDataRequest) { r.Pseudonym = "erased-" },
			func(r *tenantdatav1.EraseTenantDataRequest) { r.Pseudonym = "erased-ABC" },
			func(r *tenantdatav1.EraseTenantDataRequest) { r.Pseudonym = "erased-" + strings.Repeat("a", 41) },
			func(r *tenantdatav1.EraseTenantDataRequest) { r.Pseudonym = tenantB },
		},
		"ERASURE_ID_INVALID": {func(r *tenantdatav1.EraseTenantDataRequest) { r.ErasureId = "" }, func(r *tenantdatav1.EraseTenantDataRequest) { r.ErasureId = strings.Repeat("e", 65) }},
	} {
		for _, m := range mut {
			req := &tenantdatav1.EraseTenantDataRequest{TenantId: ok.TenantId, Pseudonym: ok.Pseudonym, ErasureId: ok.ErasureId}
			m(req)
			if _, err := c.EraseTenantData(ctx, req); apierr.Reason(err) != reason {
				t.Errorf("%v: %v, want %s", req, err, reason)
			}
		}
	}
	for reason, req := range map[string]*tenantdatav1.ExportTenantDataRequest{
		"TENANT_ID_INVALID": {TenantId: ""},
		"KIND_INVALID":      {TenantId: tenantA, Kind: "skipped"},
		"CURSOR_INVALID":    {TenantId: tenantA, Kind: "items", Cursor: "bm90IGEgY3Vyc29y"},
	} {
		stream, err := c.ExportTenantData(ctx, req)
		if err == nil {
			_, err = stream.Recv()
		}
		if apierr.Reason(err) != reason {
			t.Errorf("%v: %v, want %s", req, err, reason)
		}
	}
	// Nothing was touched.
	if n := len(tenantdatatest.Lines(t, tenantdatatest.Export(t, ctx, c, tenantA, "", ""))["items"]); n != nItems {
		t.Errorf("%d items after refused requests", n)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
