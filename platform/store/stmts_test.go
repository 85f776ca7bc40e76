package store_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/platform/store/storetest"
)

func TestStmtsInTransactions(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			url := storetest.SQLite(t)
			if b.Name == "postgres" {
				url, _ = b.NewDB(t)
			}
			db := storetest.Open(t, url)
			ctx := t.Context()
			if _, err := db.ExecContext(ctx, "CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER NOT NULL)"); err != nil {
				t.Fatal(err)
			}
			st := store.NewStmts(db)
			t.Cleanup(func() { _ = st.Close() })
			insert := db.Rebind("INSERT INTO kv (k, v) VALUES (?, ?)")
			get := db.Rebind("SELECT v FROM kv WHERE k = ?")
			for i := 0; i < 5; i++ {
				err := db.InTx(ctx, func(tx *sql.Tx) error {
					if _, err := st.Exec(ctx, tx, insert, string(rune('a'+i)), i); err != nil {
						return err
					}
					var v int
					if err := st.QueryRow(ctx, tx, get, string(rune('a'+i))).Scan(&v); err != nil || v != i {
						t.Errorf("read back %d, %v; want %d", v, err, i)
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			err := db.InTx(ctx, func(tx *sql.Tx) error {
				return st.QueryRow(ctx, tx, "SELECT nonsense FROM nowhere").Scan(new(int))
			})
			if err == nil {
				t.Fatal("a statement that cannot be prepared scanned without error")
			}
		})
	}
}

// First uses of a query in transactions that hold every pooled connection
// must not wait for a free one (they once did, forever).
func TestStmtsFirstUseWithPoolExhausted(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			url := storetest.SQLite(t)
			if b.Name == "postgres" {
				url, _ = b.NewDB(t)
			}
			db := storetest.Open(t, url)
			db.SetMaxOpenConns(2)
			st := store.NewStmts(db)
			t.Cleanup(func() { _ = st.Close() })
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			tx1, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer tx1.Rollback()
			tx2, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer tx2.Rollback()
			for i, tx := range []*sql.Tx{tx1, tx2} {
				var v int
				if err := st.QueryRow(ctx, tx, "SELECT 41 + 1").Scan(&v); err != nil || v != 42 {
					t.Fatalf("transaction %d: %d, %v", i, v, err)
				}
			}
		})
	}
}
