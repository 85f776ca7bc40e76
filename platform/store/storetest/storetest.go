// Package storetest gives store tests fresh databases: a SQLite file always,
// and, when ECHOPILOT_TEST_POSTGRES_URL names a superuser connection, a new
// PostgreSQL database plus a login role that, like production, is a plain
// member of store.AppRole and so is subject to row-level security.
package storetest

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/echopilot/echopilot/platform/store"
)

// EnvPostgresURL names the environment variable holding a PostgreSQL
// superuser URL, for example
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable.
const EnvPostgresURL = "ECHOPILOT_TEST_POSTGRES_URL"

// cleanupTimeout bounds the DROPs run after a test, when t.Context is done.
const cleanupTimeout = 30 * time.Second

// Backend is a database a suite runs against.
type Backend struct {
	Name string
	// NewDB returns the URLs of a fresh, empty database: migrateURL connects
	// as the owner that runs migrations, appURL as the service does. It skips
	// t when the backend is not available.
	NewDB func(t testing.TB) (migrateURL, appURL string)
}

// Backends lists SQLite and PostgreSQL. Run a suite as one subtest per
// backend: the PostgreSQL one is skipped, with the reason, when
// ECHOPILOT_TEST_POSTGRES_URL is unset.
func Backends() []Backend {
	return []Backend{
		{Name: "sqlite", NewDB: func(t testing.TB) (string, string) {
			u := SQLite(t)
			return u, u
		}},
		{Name: "postgres", NewDB: Postgres},
	}
}

// Open creates a fresh database, applies m as its owner and returns it
// opened as the service's role; it is closed when t ends.
func (b Backend) Open(t testing.TB, m store.Migrations) *store.DB {
	t.Helper()
	migrateURL, appURL := b.NewDB(t)
	owner := openNow(t, migrateURL)
	err := owner.Migrate(t.Context(), m)
	closeNow(t, owner)
	if err != nil {
		t.Fatalf("migrate %s: %v", b.Name, err)
	}
	return Open(t, appURL)
}

// Open opens dbURL and closes it when t ends.
func Open(t testing.TB, dbURL string) *store.DB {
	t.Helper()
	db := openNow(t, dbURL)
	t.Cleanup(func() { closeNow(t, db) })
	return db
}

// SQLite returns the URL of a new SQLite database file in t's temporary
// directory.
func SQLite(t testing.TB) string {
	t.Helper()
	return "sqlite://" + filepath.Join(t.TempDir(), "test.db")
}

// Postgres creates a uniquely named database and login role for t, both
// dropped when t ends, and returns migrateURL (the superuser, connected to the
// new database) and appURL (the new role: a member of store.AppRole with
// CONNECT on the database and USAGE on schema public, nothing more). It skips
// t when ECHOPILOT_TEST_POSTGRES_URL is unset.
func Postgres(t testing.TB) (migrateURL, appURL string) {
	t.Helper()
	adminURL := os.Getenv(EnvPostgresURL)
	if adminURL == "" {
		t.Skip(EnvPostgresURL + " not set: skipping PostgreSQL tests")
	}
	// rand.Text is base32 (A-Z, 2-7): safe in identifiers and literals.
	suffix := strings.ToLower(rand.Text()[:16])
	dbName := "echopilot_test_" + suffix
	role := "echopilot_test_app_" + suffix
	password := rand.Text()

	t.Cleanup(func() {
		cleanupExec(t, adminURL, "DROP DATABASE IF EXISTS "+ident(dbName)+" WITH (FORCE)")
		cleanupExec(t, adminURL, "DROP ROLE IF EXISTS "+ident(role))
	})
	migrateURL, appURL, err := store.Provision(t.Context(), adminURL, dbName, role, password)
	if err != nil {
		t.Fatal(err)
	}
	return migrateURL, appURL
}

func exec(t testing.TB, db *store.DB, stmt string) {
	t.Helper()
	if _, err := db.ExecContext(t.Context(), stmt); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

// cleanupExec runs stmt on a pool of its own, as t.Context is done by
// cleanup time, and reports failures without stopping the other cleanups.
func cleanupExec(t testing.TB, adminURL, stmt string) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	db, err := store.Open(ctx, adminURL)
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	defer closeNow(t, db)
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		t.Errorf("cleanup: %s: %v", stmt, err)
	}
}

func openNow(t testing.TB, dbURL string) *store.DB {
	t.Helper()
	db, err := store.Open(t.Context(), dbURL)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return db
}

func closeNow(t testing.TB, db *store.DB) {
	t.Helper()
	if err := db.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// VacuumAnalyze runs VACUUM ANALYZE on the database at ownerURL, which is
// what autovacuum does after a bulk load in production; the test server
// runs with autovacuum off, and benchmarks over seeded data would
// otherwise read dead row versions and plan without statistics.
func VacuumAnalyze(tb testing.TB, ownerURL string) {
	tb.Helper()
	db := openNow(tb, ownerURL)
	defer closeNow(tb, db)
	if _, err := db.ExecContext(tb.Context(), "VACUUM ANALYZE"); err != nil {
		tb.Fatal(err)
	}
}
