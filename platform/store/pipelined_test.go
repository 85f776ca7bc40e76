package store_test

import (
	"database/sql"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/platform/store/storetest"
)

// ReadScoped sees exactly its scope's rows, leaves no setting behind on the
// connection, and refuses writes, on both databases.
func TestReadScoped(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := t.Context()
			db := b.Open(t, testMigrations())
			db.SetMaxOpenConns(1) // a setting left behind would be seen next
			for _, tenant := range []string{"acme", "globex"} {
				if err := db.InTenantTx(ctx, tenant, func(tx *sql.Tx) error {
					return insertItem(ctx, db, tx, tenant, "x-"+tenant)
				}); err != nil {
					t.Fatal(err)
				}
			}
			stmts := store.NewStmts(db)
			t.Cleanup(func() { _ = stmts.Close() })
			read := func(tenant string, all bool, where string, args ...any) []string {
				t.Helper()
				var names []string
				err := stmts.ReadScoped(ctx, tenant, all, "SELECT name FROM items WHERE "+where+" ORDER BY name", args,
					func(rows store.Rows) error {
						for rows.Next() {
							var n string
							if err := rows.Scan(&n); err != nil {
								return err
							}
							names = append(names, n)
						}
						return nil
					})
				if err != nil {
					t.Fatal(err)
				}
				return names
			}
			if got := read("acme", false, "tenant_id = ?", "acme"); !slices.Equal(got, []string{"x-acme"}) {
				t.Fatalf("acme reads %v", got)
			}
			if got := read("", true, "1 = 1"); !slices.Equal(got, []string{"x-acme", "x-globex"}) {
				t.Fatalf("all tenants read %v", got)
			}
			if b.Name == "postgres" {
				// Row security alone: a query without a tenant condition
				// still sees only the scope's rows.
				if got := read("globex", false, "1 = 1"); !slices.Equal(got, []string{"x-globex"}) {
					t.Fatalf("globex reads %v without a condition; want its row only", got)
				}
				err := db.InTx(ctx, func(tx *sql.Tx) error {
					var tenant, all sql.NullString
					if err := tx.QueryRowContext(ctx, "SELECT current_setting('app.tenant_id', true), current_setting('app.all_tenants', true)").Scan(&tenant, &all); err != nil {
						return err
					}
					if tenant.String != "" || all.String != "" {
						t.Errorf("settings after ReadScoped: tenant %q, all tenants %q; want both unset", tenant.String, all.String)
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				err = db.ReadScoped(ctx, "acme", false, "INSERT INTO items (tenant_id, name, created_at) VALUES ('acme', 'w', now()) RETURNING name", nil,
					func(rows store.Rows) error {
						for rows.Next() {
						}
						return nil
					})
				if err == nil || !strings.Contains(err.Error(), "read-only") {
					t.Fatalf("a write through ReadScoped: %v, want a read-only refusal", err)
				}
			}
			if err := db.ReadScoped(ctx, "", false, "SELECT 1", nil, func(store.Rows) error { return nil }); err == nil {
				t.Fatal("a read without a tenant was allowed")
			}
		})
	}
}

// ReadRow scans the one row or says there is none; ReadAll collects every
// row of the scope, and both stay inside it.
func TestReadRowAndReadAll(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := t.Context()
			db := b.Open(t, testMigrations())
			for _, item := range [][2]string{{"acme", "a1"}, {"acme", "a2"}, {"globex", "g1"}} {
				if err := db.InTenantTx(ctx, item[0], func(tx *sql.Tx) error {
					return insertItem(ctx, db, tx, item[0], item[1])
				}); err != nil {
					t.Fatal(err)
				}
			}
			stmts := store.NewStmts(db)
			t.Cleanup(func() { _ = stmts.Close() })
			var n int
			if err := stmts.ReadRow(ctx, "acme", false, "SELECT count(*) FROM items WHERE tenant_id = ?", []any{"acme"}, &n); err != nil || n != 2 {
				t.Fatalf("acme's count: %d, %v", n, err)
			}
			var name string
			err := stmts.ReadRow(ctx, "acme", false, "SELECT name FROM items WHERE tenant_id = ? AND name = ?", []any{"acme", "g1"}, &name)
			if !errors.Is(err, sql.ErrNoRows) {
				t.Fatalf("no row: %q, %v; want sql.ErrNoRows", name, err)
			}
			names, err := store.ReadAll(ctx, stmts, "", true, "SELECT name FROM items ORDER BY name", nil, func(rows store.Rows) (s string, err error) {
				return s, rows.Scan(&s)
			})
			if err != nil || !slices.Equal(names, []string{"a1", "a2", "g1"}) {
				t.Fatalf("every tenant's names: %v, %v", names, err)
			}
			if b.Name == "postgres" {
				// Row security alone scopes ReadAll to the tenant.
				names, err = store.ReadAll(ctx, stmts, "globex", false, "SELECT name FROM items ORDER BY name", nil, func(rows store.Rows) (s string, err error) {
					return s, rows.Scan(&s)
				})
				if err != nil || !slices.Equal(names, []string{"g1"}) {
					t.Fatalf("globex's names without a condition: %v, %v", names, err)
				}
			}
		})
	}
}
