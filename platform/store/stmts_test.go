package store_test

import (
	"database/sql"
	"testing"

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
