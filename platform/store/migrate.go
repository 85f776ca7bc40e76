package store

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"path"
	"strings"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// AppRole is the NOLOGIN group role that services' PostgreSQL migrations
// grant table privileges to. Services log in as a member of it that owns
// nothing and is neither superuser nor BYPASSRLS, so row-level security
// applies to them; RoleSafety checks this.
const AppRole = "echopilot_app"

// Migrations are a service's goose SQL migrations: per dialect, a file system
// with the .sql files at its root (see EmbeddedMigrations).
type Migrations struct {
	SQLite   fs.FS
	Postgres fs.FS
	// VersionTable names goose's version table; empty means goose_db_version.
	VersionTable string
}

// Migrate applies the pending migrations of db's dialect; with nothing
// pending it changes nothing. Applied versions that m does not hold (a newer
// binary's) are left alone, so the previous release starts against a schema
// the next one migrated (docs/operations.md, rolling upgrades). On PostgreSQL it first makes sure AppRole
// exists, so migrations can GRANT to it, and holds a session advisory lock
// while migrating, so replicas starting together apply each migration once.
// SQLite databases are embedded in one process and take no lock.
func (db *DB) Migrate(ctx context.Context, m Migrations) error {
	var (
		dialect goose.Dialect
		fsys    fs.FS
	)
	switch db.Dialect {
	case SQLite:
		dialect, fsys = goose.DialectSQLite3, m.SQLite
	case Postgres:
		dialect, fsys = goose.DialectPostgres, m.Postgres
	default:
		return fmt.Errorf("store: migrate: unsupported dialect %v", db.Dialect)
	}
	if err := checkMigrationDir(fsys); err != nil {
		return fmt.Errorf("store: migrate %v: %w", db.Dialect, err)
	}
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	if m.VersionTable != "" {
		opts = append(opts, goose.WithTableName(m.VersionTable))
	}
	if db.Dialect == Postgres {
		// Poll every second (the minimum) for up to five minutes: a replica
		// waiting for another's migrations should not sleep goose's default 5s.
		locker, err := lock.NewPostgresSessionLocker(
			lock.WithLockID(migrationLockID(m.VersionTable)),
			lock.WithLockTimeout(1, 300),
		)
		if err != nil {
			return fmt.Errorf("store: migration lock: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
		if err := EnsureAppRole(ctx, db); err != nil {
			return err
		}
	}
	provider, err := goose.NewProvider(dialect, db.DB, fsys, opts...)
	if err != nil {
		return fmt.Errorf("store: migrate %v: %w", db.Dialect, err)
	}
	if _, err := provider.Up(ctx); err != nil {
		return fmt.Errorf("store: migrate %v: %w", db.Dialect, err)
	}
	if db.Dialect == Postgres {
		return grantVersionRead(ctx, db, m.VersionTable)
	}
	return nil
}

// grantVersionRead lets AppRole read goose's version table: a service
// started with only its app role (migrations applied by the owner in an
// init container or Job) still runs Migrate, which must read the versions
// to find nothing pending. As the app role, Up gets here only once the
// grant exists, so the GRANT itself only ever runs as the owner.
func grantVersionRead(ctx context.Context, db *DB, table string) error {
	if table == "" {
		table = "goose_db_version"
	}
	var granted bool
	if err := db.QueryRowContext(ctx, "SELECT has_table_privilege($1, $2, 'SELECT')", AppRole, table).Scan(&granted); err != nil {
		return fmt.Errorf("store: version table privileges: %w", err)
	}
	if granted {
		return nil
	}
	if _, err := db.ExecContext(ctx, `GRANT SELECT ON "`+strings.ReplaceAll(table, `"`, `""`)+`" TO `+AppRole); err != nil {
		return fmt.Errorf("store: grant %s read on %s: %w", AppRole, table, err)
	}
	return nil
}

// EnsureAppRole creates AppRole on PostgreSQL unless it exists; on SQLite it
// does nothing. Roles are cluster-wide, so databases migrating at the same
// time race to create it: the loser's duplicate_object (or unique_violation,
// when both pass the existence check) is swallowed. When the role exists the
// caller needs no CREATEROLE privilege.
func EnsureAppRole(ctx context.Context, db *DB) error {
	if db.Dialect != Postgres {
		return nil
	}
	const ensure = `DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '` + AppRole + `') THEN
		CREATE ROLE ` + AppRole + ` NOLOGIN NOSUPERUSER NOBYPASSRLS;
	END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
	NULL;
END
$$`
	if _, err := db.ExecContext(ctx, ensure); err != nil {
		return fmt.Errorf("store: ensure role %s: %w", AppRole, err)
	}
	return nil
}

// migrationLockID keeps goose's default advisory lock id for the default
// table and derives one per version table otherwise, so services sharing a
// database would not wait for each other.
func migrationLockID(versionTable string) int64 {
	if versionTable == "" {
		return lock.DefaultLockID
	}
	h := fnv.New64a()
	h.Write([]byte("goose:" + versionTable))
	return int64(h.Sum64())
}

// EmbeddedMigrations returns the migrations of the layout every service
// uses: fsys (typically an embed.FS) holds migrations/sqlite/*.sql and
// migrations/postgres/*.sql. A missing or empty directory is reported by
// Migrate.
func EmbeddedMigrations(fsys fs.FS, versionTable string) Migrations {
	// fs.Sub fails only for an invalid path; these are constant, valid ones.
	sqlite, _ := fs.Sub(fsys, "migrations/sqlite")
	postgres, _ := fs.Sub(fsys, "migrations/postgres")
	return Migrations{SQLite: sqlite, Postgres: postgres, VersionTable: versionTable}
}

// checkMigrationDir reports a directory goose would find no migrations in,
// with the cause that goose's glob would swallow.
func checkMigrationDir(fsys fs.FS) error {
	if fsys == nil {
		return errors.New("no migrations for this dialect")
	}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.IsDir() && path.Ext(e.Name()) == ".sql" {
			return nil
		}
	}
	return errors.New("no .sql migrations")
}
