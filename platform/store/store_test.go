package store_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/platform/store/storetest"
)

// testMigrations is a one-table schema following the services' convention:
// tenant_id leads the key; on PostgreSQL, RLS and grants to the app role.
func testMigrations() store.Migrations {
	return store.Migrations{
		VersionTable: "store_test_version",
		SQLite: fstest.MapFS{"00001_items.sql": {Data: []byte(`
-- +goose Up
CREATE TABLE items (
	tenant_id  TEXT NOT NULL,
	name       TEXT NOT NULL,
	created_at TIMESTAMP NOT NULL,
	PRIMARY KEY (tenant_id, name)
);
-- +goose Down
DROP TABLE items;
`)}},
		Postgres: fstest.MapFS{"00001_items.sql": {Data: []byte(`
-- +goose Up
CREATE TABLE items (
	tenant_id  text NOT NULL,
	name       text NOT NULL,
	created_at timestamptz NOT NULL,
	PRIMARY KEY (tenant_id, name)
);
ALTER TABLE items ENABLE ROW LEVEL SECURITY;
ALTER TABLE items FORCE ROW LEVEL SECURITY;
CREATE POLICY items_read ON items FOR SELECT
	USING (tenant_id = current_setting('app.tenant_id', true) OR current_setting('app.all_tenants', true) = 'on');
CREATE POLICY items_write ON items FOR INSERT
	WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
GRANT SELECT, INSERT, UPDATE, DELETE ON items TO echopilot_app;
-- +goose Down
DROP TABLE items;
`)}},
	}
}

func insertItem(ctx context.Context, db *store.DB, tx *sql.Tx, tenant, name string) error {
	_, err := tx.ExecContext(ctx, db.Rebind("INSERT INTO items (tenant_id, name, created_at) VALUES (?, ?, ?)"),
		tenant, name, time.Now())
	return err
}

func itemTenants(ctx context.Context, tx *sql.Tx) ([]string, error) {
	rows, err := tx.QueryContext(ctx, "SELECT tenant_id FROM items ORDER BY tenant_id, name")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var tenants []string
	for rows.Next() {
		var tenant string
		if err := rows.Scan(&tenant); err != nil {
			return nil, err
		}
		tenants = append(tenants, tenant)
	}
	return tenants, rows.Err()
}

func TestOpenRejectsUnknownURLs(t *testing.T) {
	for _, u := range []string{"mysql://localhost/db", "sqlite:", "sqlite://", "file.db", ""} {
		if db, err := store.Open(t.Context(), u); err == nil {
			_ = db.Close()
			t.Errorf("Open(%q) succeeded, want an error", u)
		}
	}
}

func TestOpenHidesPassword(t *testing.T) {
	_, err := store.Open(t.Context(), "postgres://user:s3cret@127.0.0.1:1/db?connect_timeout=2")
	if err == nil {
		t.Fatal("Open of a closed port succeeded")
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error reveals the password: %v", err)
	}
}

func TestOpenSQLiteSettings(t *testing.T) {
	db := storetest.Open(t, storetest.SQLite(t))
	if db.Dialect != store.SQLite {
		t.Fatalf("dialect = %v", db.Dialect)
	}
	// One connection, so every PRAGMA reads the same connection's state.
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for pragma, want := range map[string]string{
		"journal_mode": "wal",
		"busy_timeout": "10000",
		"foreign_keys": "1",
		"synchronous":  "1", // NORMAL
	} {
		var got string
		if err := conn.QueryRowContext(t.Context(), "PRAGMA "+pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %q, want %q", pragma, got, want)
		}
	}
}

func TestOpenSQLiteURLOverridesDefault(t *testing.T) {
	db := storetest.Open(t, storetest.SQLite(t)+"?_busy_timeout=1234")
	var got int
	if err := db.QueryRowContext(t.Context(), "PRAGMA busy_timeout").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != 1234 {
		t.Errorf("busy_timeout = %d, want 1234", got)
	}
}

func TestOpenSQLiteRelativePath(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	db := storetest.Open(t, "sqlite://data/sub/app.db")
	if _, err := db.ExecContext(t.Context(), "CREATE TABLE x (a)"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "sub", "app.db")); err != nil {
		t.Errorf("database file: %v", err)
	}
}

func TestOpenSQLiteMemoryIsSharedAndRemoved(t *testing.T) {
	ctx := t.Context()
	db, err := store.Open(ctx, "sqlite::memory:")
	if err != nil {
		t.Fatal(err)
	}
	// Two connections held at once must see the same database.
	c1, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c1.ExecContext(ctx, "CREATE TABLE x (a); INSERT INTO x VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	var a int
	if err := c2.QueryRowContext(ctx, "SELECT a FROM x").Scan(&a); err != nil || a != 42 {
		t.Fatalf("second connection read %d, %v; want 42", a, err)
	}
	var seq int
	var name, file string
	if err := c2.QueryRowContext(ctx, "PRAGMA database_list").Scan(&seq, &name, &file); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*sql.Conn{c1, c2} {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(file)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary directory of %s still there after Close: %v", file, err)
	}
}

// TestSQLiteConcurrentWriters does read-modify-write from many goroutines.
// Without BEGIN IMMEDIATE the second reader would fail to upgrade its lock
// with SQLITE_BUSY instead of waiting.
func TestSQLiteConcurrentWriters(t *testing.T) {
	ctx := t.Context()
	db := storetest.Open(t, storetest.SQLite(t))
	if _, err := db.ExecContext(ctx, "CREATE TABLE counter (n INTEGER NOT NULL); INSERT INTO counter VALUES (0)"); err != nil {
		t.Fatal(err)
	}
	const workers, perWorker = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for range perWorker {
				err := db.InTx(ctx, func(tx *sql.Tx) error {
					var n int
					if err := tx.QueryRowContext(ctx, "SELECT n FROM counter").Scan(&n); err != nil {
						return err
					}
					_, err := tx.ExecContext(ctx, "UPDATE counter SET n = ?", n+1)
					return err
				})
				if err != nil {
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
	var n int
	if err := db.QueryRowContext(ctx, "SELECT n FROM counter").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != workers*perWorker {
		t.Errorf("counter = %d, want %d", n, workers*perWorker)
	}
}

// TestSQLiteTenantWritersQueue holds each InTenantTx open longer than the
// busy timeout. Without the write gate the writers waiting for BEGIN
// IMMEDIATE give up with "database is locked" (SQLITE_BUSY) after it;
// with the gate they queue in the process and all commit.
func TestSQLiteTenantWritersQueue(t *testing.T) {
	ctx := t.Context()
	db := storetest.Open(t, storetest.SQLite(t)+"?_busy_timeout=20")
	if err := db.Migrate(ctx, testMigrations()); err != nil {
		t.Fatal(err)
	}
	const workers = 4
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for i := range workers {
		wg.Go(func() {
			errs <- db.InTenantTx(ctx, "acme", func(tx *sql.Tx) error {
				if err := insertItem(ctx, db, tx, "acme", fmt.Sprint("item", i)); err != nil {
					return err
				}
				time.Sleep(60 * time.Millisecond) // three busy timeouts
				return nil
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("InTenantTx: %v", err)
		}
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM items").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != workers {
		t.Errorf("items = %d, want %d", n, workers)
	}
}

func TestTx(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := t.Context()
			db := b.Open(t, testMigrations())

			t.Run("empty tenant", func(t *testing.T) {
				called := false
				err := db.InTenantTx(ctx, "", func(*sql.Tx) error { called = true; return nil })
				if !errors.Is(err, store.ErrNoTenant) || called {
					t.Errorf("InTenantTx(\"\") = %v, fn called %v; want ErrNoTenant, not called", err, called)
				}
				err = db.InTenantReadTx(ctx, "", func(*sql.Tx) error { called = true; return nil })
				if !errors.Is(err, store.ErrNoTenant) || called {
					t.Errorf("InTenantReadTx(\"\") = %v, fn called %v; want ErrNoTenant, not called", err, called)
				}
			})

			t.Run("rollback on error", func(t *testing.T) {
				boom := errors.New("boom")
				err := db.InTenantTx(ctx, "acme", func(tx *sql.Tx) error {
					if err := insertItem(ctx, db, tx, "acme", "rolled-back"); err != nil {
						return err
					}
					return boom
				})
				if !errors.Is(err, boom) {
					t.Fatalf("InTenantTx = %v, want fn's error", err)
				}
				var tenants []string
				err = db.InTenantReadTx(ctx, "acme", func(tx *sql.Tx) (err error) {
					tenants, err = itemTenants(ctx, tx)
					return err
				})
				if err != nil || len(tenants) != 0 {
					t.Errorf("after rollback: %v, %v; want no rows", tenants, err)
				}
			})

			t.Run("commit and cross-tenant read", func(t *testing.T) {
				for _, tenant := range []string{"acme", "globex"} {
					err := db.InTenantTx(ctx, tenant, func(tx *sql.Tx) error {
						return insertItem(ctx, db, tx, tenant, "item")
					})
					if err != nil {
						t.Fatal(err)
					}
				}
				var all []string
				err := db.InAllTenantsReadTx(ctx, func(tx *sql.Tx) (err error) {
					all, err = itemTenants(ctx, tx)
					return err
				})
				if err != nil || strings.Join(all, ",") != "acme,globex" {
					t.Errorf("all-tenants read = %v, %v; want acme,globex", all, err)
				}
			})

			t.Run("time round trip", func(t *testing.T) {
				in := time.Date(2031, 5, 6, 7, 8, 9, 123456789, time.FixedZone("X", 3600))
				var out time.Time
				err := db.InTenantTx(ctx, "initech", func(tx *sql.Tx) error {
					_, err := tx.ExecContext(ctx, db.Rebind("INSERT INTO items (tenant_id, name, created_at) VALUES (?, ?, ?)"), "initech", "t", in)
					if err != nil {
						return err
					}
					// Compare in SQL too: both dialects must order times numerically.
					return tx.QueryRowContext(ctx, db.Rebind("SELECT created_at FROM items WHERE tenant_id = ? AND created_at > ? AND created_at < ?"),
						"initech", in.Add(-time.Microsecond), in.Add(time.Microsecond)).Scan(&out)
				})
				if err != nil {
					t.Fatal(err)
				}
				if want := in.Truncate(time.Microsecond).UTC(); !out.Equal(want) || out.Location() != time.UTC {
					t.Errorf("read %v, want %v in UTC", out, want)
				}
			})
		})
	}
}

// openItemsPG opens a PostgreSQL database of items as its owner and as the
// app role, whose pool has one connection: whatever a transaction leaves
// behind on it (a setting, an open transaction), the next one meets.
func openItemsPG(t *testing.T) (owner, db *store.DB) {
	migrateURL, appURL := storetest.Postgres(t)
	owner = storetest.Open(t, migrateURL)
	if err := owner.Migrate(t.Context(), testMigrations()); err != nil {
		t.Fatal(err)
	}
	db = storetest.Open(t, appURL)
	db.SetMaxOpenConns(1)
	return owner, db
}

func TestTxPostgresRLS(t *testing.T) {
	ctx := t.Context()
	_, db := openItemsPG(t)

	setting := func(tx *sql.Tx, name string) string {
		t.Helper()
		var v sql.NullString
		if err := tx.QueryRowContext(ctx, "SELECT current_setting($1, true)", name).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v.String
	}

	err := db.InTenantTx(ctx, "acme", func(tx *sql.Tx) error {
		if got := setting(tx, "app.tenant_id"); got != "acme" {
			t.Errorf("app.tenant_id in InTenantTx = %q, want acme", got)
		}
		if err := insertItem(ctx, db, tx, "acme", "a"); err != nil {
			return err
		}
		if err := db.SetTenant(ctx, tx, "globex"); err != nil {
			return err
		}
		return insertItem(ctx, db, tx, "globex", "g")
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.InTx(ctx, func(tx *sql.Tx) error {
		if got := setting(tx, "app.tenant_id"); got != "" {
			t.Errorf("app.tenant_id after the tenant transaction = %q, want it unset", got)
		}
		tenants, err := itemTenants(ctx, tx)
		if len(tenants) != 0 {
			t.Errorf("unscoped transaction sees %v, want no rows", tenants)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	err = db.InTenantTx(ctx, "acme", func(tx *sql.Tx) error {
		return insertItem(ctx, db, tx, "globex", "smuggled")
	})
	if err == nil || !strings.Contains(err.Error(), "row-level security") {
		t.Errorf("acme inserting a globex row: %v, want a row-level security violation", err)
	}

	err = db.InTenantReadTx(ctx, "acme", func(tx *sql.Tx) error {
		tenants, err := itemTenants(ctx, tx)
		if strings.Join(tenants, ",") != "acme" {
			t.Errorf("acme sees %v, want only its row", tenants)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	err = db.InAllTenantsReadTx(ctx, func(tx *sql.Tx) error {
		if got := setting(tx, "app.all_tenants"); got != "on" {
			t.Errorf("app.all_tenants = %q, want on", got)
		}
		return insertItem(ctx, db, tx, "acme", "sneaky")
	})
	if err == nil || !strings.Contains(err.Error(), "read-only transaction") {
		t.Errorf("insert in the all-tenants read transaction: %v, want a read-only error", err)
	}
	err = db.InTx(ctx, func(tx *sql.Tx) error {
		if got := setting(tx, "app.all_tenants"); got != "" {
			t.Errorf("app.all_tenants after the read transaction = %q, want it unset", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestMigrateIsIdempotent(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			migrateURL, _ := b.NewDB(t)
			db := storetest.Open(t, migrateURL)
			for range 2 {
				if err := db.Migrate(t.Context(), testMigrations()); err != nil {
					t.Fatal(err)
				}
			}
			var applied int
			if err := db.QueryRowContext(t.Context(), "SELECT count(*) FROM store_test_version WHERE version_id = 1").Scan(&applied); err != nil {
				t.Fatal(err)
			}
			if applied != 1 {
				t.Errorf("version 1 recorded %d times, want once", applied)
			}
		})
	}
}

// A replica started with only its app role (the owner migrated in an init
// container) runs Migrate too: with nothing pending it must succeed, and
// with something pending it must fail rather than half-apply it.
func TestMigrateAsAppRoleAfterOwner(t *testing.T) {
	migrateURL, appURL := storetest.Postgres(t)
	if err := storetest.Open(t, migrateURL).Migrate(t.Context(), testMigrations()); err != nil {
		t.Fatal(err)
	}
	app := storetest.Open(t, appURL)
	if err := app.Migrate(t.Context(), testMigrations()); err != nil {
		t.Fatalf("app role, nothing pending: %v", err)
	}
	more := testMigrations()
	pg := more.Postgres.(fstest.MapFS)
	pg["00002_more.sql"] = &fstest.MapFile{Data: []byte("-- +goose Up\nCREATE TABLE store_test_owner_only (a int);\n")}
	if err := app.Migrate(t.Context(), more); err == nil {
		t.Fatal("app role applied a pending migration; it owns nothing and must not")
	}
}

// A rolling upgrade runs the previous binary against a schema the new one
// migrated: Migrate must leave applied versions it does not know alone and
// succeed, as the owner (the devstack, `migrate`) and as the app role (a
// pod after the init container). goose's Provider ignores them; this pins
// that, since an older binary cannot be fixed after it ships.
func TestMigrateOlderBinaryAcceptsNewerSchema(t *testing.T) {
	newer := func() store.Migrations {
		m := testMigrations()
		add := "-- +goose Up\nCREATE TABLE store_test_newer (tenant_id text NOT NULL DEFAULT '');\n"
		m.SQLite.(fstest.MapFS)["00002_newer.sql"] = &fstest.MapFile{Data: []byte(add)}
		m.Postgres.(fstest.MapFS)["00002_newer.sql"] = &fstest.MapFile{Data: []byte(add + "GRANT SELECT ON store_test_newer TO echopilot_app;\n")}
		return m
	}
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			migrateURL, appURL := b.NewDB(t)
			owner := storetest.Open(t, migrateURL)
			if err := owner.Migrate(t.Context(), newer()); err != nil {
				t.Fatal(err)
			}
			dbs := map[string]*store.DB{"owner": owner}
			if appURL != migrateURL {
				dbs["app role"] = storetest.Open(t, appURL)
			}
			for role, db := range dbs {
				if err := db.Migrate(t.Context(), testMigrations()); err != nil {
					t.Fatalf("older migrations as %s on a newer schema: %v", role, err)
				}
			}
			var max int
			if err := owner.QueryRowContext(t.Context(), "SELECT max(version_id) FROM store_test_version").Scan(&max); err != nil {
				t.Fatal(err)
			}
			if _, err := owner.ExecContext(t.Context(), "SELECT count(*) FROM store_test_newer"); err != nil || max != 2 {
				t.Fatalf("after the older binary: version %d, newer table: %v", max, err)
			}
		})
	}
}

func TestMigrateReportsMissingMigrations(t *testing.T) {
	db := storetest.Open(t, storetest.SQLite(t))
	sql := []byte("-- +goose Up\nCREATE TABLE x (a);\n")
	for name, m := range map[string]store.Migrations{
		"nil":          {Postgres: fstest.MapFS{"00001_x.sql": {Data: sql}}},
		"no directory": store.EmbeddedMigrations(fstest.MapFS{"migrations/postgres/00001_x.sql": {Data: sql}}, ""),
		"no sql files": store.EmbeddedMigrations(fstest.MapFS{"migrations/sqlite/README": {}}, ""),
	} {
		if err := db.Migrate(t.Context(), m); err == nil {
			t.Errorf("%s: Migrate succeeded, want an error", name)
		}
	}
	m := store.EmbeddedMigrations(fstest.MapFS{"migrations/sqlite/00001_x.sql": {Data: sql}}, "")
	if err := db.Migrate(t.Context(), m); err != nil {
		t.Errorf("Migrate(EmbeddedMigrations) = %v", err)
	}
}

func TestMigrateConcurrentPostgres(t *testing.T) {
	migrateURL, _ := storetest.Postgres(t)
	// Separate pools, as two replicas starting at once would have.
	dbs := []*store.DB{storetest.Open(t, migrateURL), storetest.Open(t, migrateURL)}
	errs := make([]error, len(dbs))
	var wg sync.WaitGroup
	for i, db := range dbs {
		wg.Go(func() { errs[i] = db.Migrate(t.Context(), testMigrations()) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Migrate #%d: %v", i, err)
		}
	}
	var applied int
	if err := dbs[0].QueryRowContext(t.Context(), "SELECT count(*) FROM store_test_version WHERE version_id = 1").Scan(&applied); err != nil {
		t.Fatal(err)
	}
	if applied != 1 {
		t.Errorf("version 1 recorded %d times, want once", applied)
	}
}

func TestRoleSafety(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		if err := store.RoleSafety(t.Context(), storetest.Open(t, storetest.SQLite(t))); err != nil {
			t.Errorf("RoleSafety on SQLite = %v, want nil", err)
		}
	})
	t.Run("postgres", func(t *testing.T) {
		ctx := t.Context()
		migrateURL, appURL := storetest.Postgres(t)
		owner := storetest.Open(t, migrateURL)
		if err := owner.Migrate(ctx, testMigrations()); err != nil {
			t.Fatal(err)
		}
		app := storetest.Open(t, appURL)
		if err := store.RoleSafety(ctx, app); err != nil {
			t.Errorf("RoleSafety as the app role = %v, want nil", err)
		}
		err := store.RoleSafety(ctx, owner)
		if !errors.Is(err, store.ErrUnsafeRole) || !strings.Contains(err.Error(), "superuser") {
			t.Errorf("RoleSafety as superuser = %v, want ErrUnsafeRole naming superuser", err)
		}

		var role string
		if err := app.QueryRowContext(ctx, "SELECT current_user").Scan(&role); err != nil {
			t.Fatal(err)
		}
		for _, stmt := range []string{
			`ALTER TABLE items OWNER TO "` + role + `"`,
			`ALTER ROLE "` + role + `" BYPASSRLS`,
		} {
			if _, err := owner.ExecContext(ctx, stmt); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		}
		err = store.RoleSafety(ctx, app)
		if !errors.Is(err, store.ErrUnsafeRole) || !strings.Contains(err.Error(), "BYPASSRLS") || !strings.Contains(err.Error(), "public.items") {
			t.Errorf("RoleSafety as owner with BYPASSRLS = %v, want ErrUnsafeRole naming both", err)
		}
	})
}

// Provision is what `make run` on PostgreSQL does for each service: run it
// twice and the database and role are reused; the service's role is no
// owner, so row-level security binds it, and migrations run as the owner.
func TestProvisionIsIdempotent(t *testing.T) {
	adminURL := os.Getenv(storetest.EnvPostgresURL)
	if adminURL == "" {
		t.Skip(storetest.EnvPostgresURL + " not set: skipping PostgreSQL tests")
	}
	suffix := strings.ToLower(rand.Text()[:12])
	dbName, role := "echopilot_prov_"+suffix, "echopilot_prov_app_"+suffix
	t.Cleanup(func() {
		admin, err := store.Open(context.Background(), adminURL)
		if err != nil {
			t.Error(err)
			return
		}
		defer admin.Close()
		for _, q := range []string{"DROP DATABASE IF EXISTS " + dbName + " WITH (FORCE)", "DROP ROLE IF EXISTS " + role} {
			if _, err := admin.ExecContext(context.Background(), q); err != nil {
				t.Errorf("%s: %v", q, err)
			}
		}
	})
	var appURL string
	for i := range 2 {
		migrateURL, u, err := store.Provision(t.Context(), adminURL, dbName, role, "pw'"+suffix)
		if err != nil {
			t.Fatalf("provision #%d: %v", i+1, err)
		}
		if err := storetest.Open(t, migrateURL).Migrate(t.Context(), testMigrations()); err != nil {
			t.Fatal(err)
		}
		appURL = u
	}
	app := storetest.Open(t, appURL)
	if err := store.RoleSafety(t.Context(), app); err != nil {
		t.Fatalf("the provisioned role weakens tenant isolation: %v", err)
	}
	if err := app.Migrate(t.Context(), testMigrations()); err != nil {
		t.Fatalf("app role, nothing pending: %v", err)
	}
}
