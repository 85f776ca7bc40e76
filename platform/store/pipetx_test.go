package store_test

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/platform/store/storetest"
)

// A PipeTx is one transaction: scoped to its tenant by row security, its
// reads see its own queued writes once flushed, it commits with its last
// batch, and a failure anywhere (a statement, fn, a panic) commits nothing
// and leaves the pooled connection outside any transaction.
func TestPipeTx(t *testing.T) {
	ctx := t.Context()
	owner, db := openItemsPG(t)
	insert := "INSERT INTO items (tenant_id, name, created_at) VALUES ($1, $2, $3)"
	names := func(tenant string) []string {
		t.Helper()
		var got []string
		if err := db.InTenantReadTx(ctx, tenant, func(tx *sql.Tx) error {
			rows, err := tx.QueryContext(ctx, "SELECT name FROM items ORDER BY name")
			got, err = store.Strings(rows, err)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	clean := func() {
		t.Helper()
		// The pool's one connection: outside a transaction, no scope left.
		conn, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var status byte
		if err := conn.Raw(func(dc any) error {
			status = dc.(*stdlib.Conn).Conn().PgConn().TxStatus()
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		var scope sql.NullString
		if err := conn.QueryRowContext(ctx, "SELECT current_setting('app.tenant_id', true)").Scan(&scope); err != nil {
			t.Fatal(err)
		}
		if status != 'I' || scope.String != "" {
			t.Fatalf("the pooled connection is left in transaction status %q, scoped to %q", status, scope.String)
		}
	}
	if err := db.InTenantTx(ctx, "globex", func(tx *sql.Tx) error { return insertItem(ctx, db, tx, "globex", "g1") }); err != nil {
		t.Fatal(err)
	}

	t.Run("commits, scoped by row security", func(t *testing.T) {
		var seen []string
		var scope string
		err := db.InPipeTx(ctx, func(tx *store.PipeTx) error {
			if err := tx.SetTenant("acme"); err != nil {
				return err
			}
			tx.Queue(insert, "acme", "a1", time.Now())
			// No tenant condition: row security alone hides globex's row.
			tx.Queue("SELECT name FROM items ORDER BY name").Query(func(rows pgx.Rows) error {
				var err error
				seen, err = pgx.CollectRows(rows, pgx.RowTo[string])
				return err
			})
			tx.Queue("SELECT current_setting('app.tenant_id')").QueryRow(func(row pgx.Row) error { return row.Scan(&scope) })
			if err := tx.Flush(); err != nil {
				return err
			}
			if !slices.Equal(seen, []string{"a1"}) || scope != "acme" {
				t.Errorf("inside the transaction: rows %v, scope %q", seen, scope)
			}
			// Left queued: sent with the commit.
			tx.Queue(insert, "acme", "a2", time.Now())
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := names("acme"); !slices.Equal(got, []string{"a1", "a2"}) {
			t.Fatalf("committed %v", got)
		}
		clean()
	})

	t.Run("row security refuses a foreign write", func(t *testing.T) {
		err := db.InPipeTx(ctx, func(tx *store.PipeTx) error {
			if err := tx.SetTenant("acme"); err != nil {
				return err
			}
			tx.Queue(insert, "globex", "forged", time.Now())
			return nil
		})
		if storetest.PGCode(err) != "42501" {
			t.Fatalf("a write of another tenant's row: %v, want a row security refusal", err)
		}
		if got := names("globex"); !slices.Equal(got, []string{"g1"}) {
			t.Fatalf("globex has %v", got)
		}
		clean()
	})

	t.Run("a failure commits nothing", func(t *testing.T) {
		boom := errors.New("boom")
		cases := map[string]func(tx *store.PipeTx) error{
			"fn fails after a flush": func(tx *store.PipeTx) error {
				tx.Queue(insert, "acme", "x1", time.Now())
				if err := tx.Flush(); err != nil {
					return err
				}
				return boom
			},
			"a statement of the commit's batch fails": func(tx *store.PipeTx) error {
				tx.Queue(insert, "acme", "x2", time.Now())
				tx.Queue(insert, "acme", "a1", time.Now()) // taken: a unique violation
				return nil
			},
			"a statement fails in a flush": func(tx *store.PipeTx) error {
				tx.Queue(insert, "acme", "x3", time.Now())
				tx.Queue("SELECT 1/0")
				if err := tx.Flush(); err == nil {
					t.Error("a division by zero flushed")
				}
				tx.Queue(insert, "acme", "x4", time.Now())
				return nil // the transaction has failed: the commit must too
			},
			"a callback fails": func(tx *store.PipeTx) error {
				tx.Queue(insert, "acme", "x5", time.Now()).Exec(func(pgconn.CommandTag) error { return boom })
				return tx.Flush()
			},
		}
		for name, fn := range cases {
			t.Run(name, func(t *testing.T) {
				err := db.InPipeTx(ctx, func(tx *store.PipeTx) error {
					if err := tx.SetTenant("acme"); err != nil {
						return err
					}
					return fn(tx)
				})
				if err == nil {
					t.Fatal("committed")
				}
				if got := names("acme"); !slices.Equal(got, []string{"a1", "a2"}) {
					t.Fatalf("acme has %v after a failed transaction", got)
				}
				clean()
			})
		}
	})

	t.Run("a panic commits nothing and is raised", func(t *testing.T) {
		func() {
			defer func() {
				if p := recover(); p != "boom" {
					t.Fatalf("recovered %v, want the panic", p)
				}
			}()
			_ = db.InPipeTx(ctx, func(tx *store.PipeTx) error {
				if err := tx.SetTenant("acme"); err != nil {
					return err
				}
				tx.Queue(insert, "acme", "p1", time.Now())
				if err := tx.Flush(); err != nil {
					return err
				}
				panic("boom")
			})
		}()
		if got := names("acme"); !slices.Equal(got, []string{"a1", "a2"}) {
			t.Fatalf("acme has %v after a panic", got)
		}
		clean()
	})

	t.Run("a dead connection is retried before the first flush only", func(t *testing.T) {
		kill := func(pid int) {
			t.Helper()
			var done bool
			if err := owner.QueryRowContext(ctx, "SELECT pg_terminate_backend($1, 5000)", pid).Scan(&done); err != nil || !done {
				t.Fatalf("terminate %d: %v, %v", pid, done, err)
			}
		}
		var pid int
		if err := db.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
			t.Fatal(err)
		}
		kill(pid)
		calls := 0
		err := db.InPipeTx(ctx, func(tx *store.PipeTx) error {
			calls++
			if err := tx.SetTenant("acme"); err != nil {
				return err
			}
			tx.Queue(insert, "acme", "r1", time.Now())
			return tx.Flush()
		})
		if err != nil || calls != 2 {
			t.Fatalf("after a restart: %v in %d calls, want success in 2", err, calls)
		}
		// Dead after the first flush: what was sent may not be sent twice.
		calls = 0
		err = db.InPipeTx(ctx, func(tx *store.PipeTx) error {
			calls++
			if err := tx.SetTenant("acme"); err != nil {
				return err
			}
			tx.Queue(insert, "acme", "r2", time.Now())
			tx.Queue("SELECT pg_backend_pid()").QueryRow(func(row pgx.Row) error { return row.Scan(&pid) })
			if err := tx.Flush(); err != nil {
				return err
			}
			kill(pid)
			return tx.Flush()
		})
		if err == nil || !store.Unavailable(err) || calls != 1 {
			t.Fatalf("dead after a flush: %v in %d calls, want the outage once", err, calls)
		}
		if got := names("acme"); !slices.Equal(got, []string{"a1", "a2", "r1"}) {
			t.Fatalf("acme has %v", got)
		}
	})
}

func TestPipeTxNeedsPostgres(t *testing.T) {
	db := storetest.Open(t, storetest.SQLite(t))
	called := false
	err := db.InPipeTx(context.Background(), func(*store.PipeTx) error { called = true; return nil })
	if !errors.Is(err, store.ErrNotPostgres) || called {
		t.Fatalf("InPipeTx on SQLite: %v (fn called: %v)", err, called)
	}
}

// A pipelined snapshot reads one snapshot, scoped to its tenant, and
// writes nothing; it leaves the pooled connection clean.
func TestPipeSnapshot(t *testing.T) {
	ctx := t.Context()
	owner, db := openItemsPG(t)
	insert := "INSERT INTO items (tenant_id, name, created_at) VALUES ($1, $2, $3)"
	for _, item := range [][2]string{{"acme", "a1"}, {"globex", "g1"}} {
		if _, err := owner.ExecContext(ctx, insert, item[0], item[1], time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	names := func(tx *store.PipeTx) []string {
		t.Helper()
		var got []string
		// No tenant condition: row security alone scopes it.
		tx.Queue("SELECT name FROM items ORDER BY name").Query(func(rows pgx.Rows) error {
			var err error
			got, err = pgx.CollectRows(rows, pgx.RowTo[string])
			return err
		})
		if err := tx.Flush(); err != nil {
			t.Fatal(err)
		}
		return got
	}
	err := db.InTenantPipeSnapshot(ctx, "acme", func(tx *store.PipeTx) error {
		if got := names(tx); !slices.Equal(got, []string{"a1"}) {
			t.Fatalf("acme's snapshot reads %v", got)
		}
		// Committed by another connection after the snapshot began.
		if _, err := owner.ExecContext(ctx, insert, "acme", "a2", time.Now()); err != nil {
			t.Fatal(err)
		}
		if got := names(tx); !slices.Equal(got, []string{"a1"}) {
			t.Fatalf("read %v after another commit; want the snapshot's a1", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.InTenantPipeSnapshot(ctx, "acme", func(tx *store.PipeTx) error {
		tx.Queue(insert, "acme", "w1", time.Now())
		return tx.Flush()
	})
	if storetest.PGCode(err) != "25006" {
		t.Fatalf("a write in a snapshot: %v, want read_only_sql_transaction", err)
	}
	func() {
		defer func() {
			if p := recover(); p != "decoder bug" {
				t.Fatalf("recovered %v, want the panic", p)
			}
		}()
		_ = db.InTenantPipeSnapshot(ctx, "acme", func(tx *store.PipeTx) error {
			names(tx)
			panic("decoder bug")
		})
	}()
	err = db.InTenantPipeSnapshot(ctx, "acme", func(tx *store.PipeTx) error {
		if got := names(tx); !slices.Equal(got, []string{"a1", "a2"}) {
			t.Errorf("the next snapshot reads %v", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.InTenantPipeSnapshot(ctx, "", func(*store.PipeTx) error { return nil }); !errors.Is(err, store.ErrNoTenant) {
		t.Fatalf("a snapshot without a tenant: %v", err)
	}
}
