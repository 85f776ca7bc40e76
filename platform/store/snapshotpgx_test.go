package store_test

import (
	"context"
	"database/sql"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/platform/store/storetest"
)

// InTenantSnapshotPgx's pgx connection is inside the transaction: scoped
// to its tenant by row security, reading its one snapshot while another
// connection commits, and the connection goes back to the pool clean. On
// SQLite there is none.
func TestSnapshotPgx(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := t.Context()
			db := b.Open(t, testMigrations())
			db.SetMaxOpenConns(2) // the snapshot's and the other writer's
			for _, item := range [][2]string{{"acme", "a1"}, {"globex", "g1"}} {
				if err := db.InTenantTx(ctx, item[0], func(tx *sql.Tx) error {
					return insertItem(ctx, db, tx, item[0], item[1])
				}); err != nil {
					t.Fatal(err)
				}
			}
			err := db.InTenantSnapshotPgx(ctx, "acme", func(tx *sql.Tx, raw store.Pgx) error {
				if b.Name != "postgres" {
					if raw != nil {
						t.Error("a pgx connection on SQLite")
					}
					return nil
				}
				names := func() []string {
					t.Helper()
					var got []string
					// No tenant condition: row security alone scopes it.
					if err := raw(func(c *pgx.Conn) error {
						rows, err := c.Query(ctx, "SELECT name FROM items ORDER BY name")
						if err != nil {
							return err
						}
						got, err = pgx.CollectRows(rows, pgx.RowTo[string])
						return err
					}); err != nil {
						t.Fatal(err)
					}
					return got
				}
				if got := names(); !slices.Equal(got, []string{"a1"}) {
					t.Fatalf("acme's snapshot reads %v through pgx", got)
				}
				// Committed by another connection after the snapshot began.
				if err := db.InTenantTx(context.Background(), "acme", func(tx2 *sql.Tx) error {
					return insertItem(ctx, db, tx2, "acme", "a2")
				}); err != nil {
					t.Fatal(err)
				}
				if got := names(); !slices.Equal(got, []string{"a1"}) {
					t.Fatalf("pgx read %v after another commit; want the snapshot's a1", got)
				}
				var n int
				if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM items").Scan(&n); err != nil || n != 1 {
					t.Fatalf("the transaction reads %d items, %v; want the snapshot's 1", n, err)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if b.Name == "postgres" {
				// Both pooled connections, the snapshot's among them.
				var conns []*sql.Conn
				for range 2 {
					c, err := db.Conn(ctx)
					if err != nil {
						t.Fatal(err)
					}
					conns = append(conns, c)
				}
				for _, c := range conns {
					var tenant sql.NullString
					if err := c.QueryRowContext(ctx, "SELECT current_setting('app.tenant_id', true)").Scan(&tenant); err != nil || tenant.String != "" {
						t.Fatalf("setting left on a pooled connection: %q, %v", tenant.String, err)
					}
					c.Close()
				}
			}
			if b.Name == "postgres" {
				// A panic on the pgx connection reaches the caller (it
				// deadlocked inside database/sql before), and the pool
				// serves the next snapshot.
				done := make(chan any, 1)
				go func() {
					defer func() { done <- recover() }()
					_ = db.InTenantSnapshotPgx(ctx, "acme", func(_ *sql.Tx, raw store.Pgx) error {
						return raw(func(*pgx.Conn) error { panic("decoder bug") })
					})
				}()
				select {
				case p := <-done:
					if p != "decoder bug" {
						t.Fatalf("recovered %v, want the panic", p)
					}
				case <-time.After(20 * time.Second):
					t.Fatal("a panic on the pgx connection hung the snapshot")
				}
				if err := db.InTenantSnapshotPgx(ctx, "acme", func(*sql.Tx, store.Pgx) error { return nil }); err != nil {
					t.Fatalf("the snapshot after a panic: %v", err)
				}
			}
			if err := db.InTenantSnapshotPgx(ctx, "", func(*sql.Tx, store.Pgx) error { return nil }); err == nil {
				t.Fatal("a snapshot without a tenant was allowed")
			}
		})
	}
}
