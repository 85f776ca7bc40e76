// Package store holds the storage plumbing every service shares: opening a
// SQLite or PostgreSQL database from a URL, rebinding `?` placeholders,
// goose migrations, and transactions scoped to a tenant for PostgreSQL
// row-level security.
//
// Store code is written once for both databases: `?` placeholders passed
// through Rebind, ON CONFLICT upserts, and time.Time values (stored as
// timestamptz on PostgreSQL and as integer unix microseconds in TIMESTAMP
// columns on SQLite, so both keep microsecond precision and order
// numerically).
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"
)

// Dialect is the SQL flavour of a database.
type Dialect int

// The supported dialects. The zero Dialect is invalid.
const (
	SQLite Dialect = iota + 1
	Postgres
)

func (d Dialect) String() string {
	switch d {
	case SQLite:
		return "sqlite"
	case Postgres:
		return "postgres"
	default:
		return fmt.Sprintf("Dialect(%d)", int(d))
	}
}

// DB is a database handle that knows its dialect. Queries run through the
// embedded *sql.DB; Rebind comes from the embedded Dialect.
type DB struct {
	*sql.DB
	Dialect

	// removeDir is the temporary directory of a sqlite::memory: database,
	// removed by Close.
	removeDir string
	// writeGate admits one write transaction (InWriteTx, InTenantTx) of this
	// process at a time on SQLite.
	writeGate chan struct{}
	// closers run first in Close: the statement caches on db (NewStmts),
	// whose background prepares must not open a connection to a database
	// being closed (on SQLite that recreates its -wal file).
	closeMu sync.Mutex
	closers []func() error
}

// onClose has Close call fn before it closes the pool.
func (db *DB) onClose(fn func() error) {
	db.closeMu.Lock()
	defer db.closeMu.Unlock()
	db.closers = append(db.closers, fn)
}

// Pool sizes. SQLite in WAL mode has one writer at a time and cheap readers,
// so a small pool is enough; PostgreSQL connections are costly server
// processes shared by every replica, so each replica keeps a modest pool.
//
// The pool keeps every connection it opened while it is in use
// (pgMaxIdle = pgMaxOpen) and lets an idle one go after pgMaxIdleTime. A
// smaller idle cap closes the connections above it as soon as they are
// returned under load and opens new ones for the next burst: a server
// process forked, authenticated and warming its catalog caches, and every
// prepared statement prepared again, per request. With an idle cap of 4 the
// mixed load (concurrency 16) opened ~90 connections a second and that
// churn took much of the 2-core machine's CPU.
const (
	sqliteMaxOpen = 8
	pgMaxOpen     = 16
	pgMaxIdle     = pgMaxOpen
	pgMaxIdleTime = 5 * time.Minute
	pgMaxLifetime = 30 * time.Minute

	// sqliteBusyTimeout is how long a SQLite writer waits for another to
	// finish (milliseconds) before failing with SQLITE_BUSY.
	sqliteBusyTimeout = "10000"
)

// Open connects to the database named by rawURL and checks that it answers:
//
//	sqlite:///abs/path.db       SQLite file (parent directories are created)
//	sqlite://relative/path.db   SQLite file relative to the working directory
//	sqlite::memory:             private SQLite database, removed by Close
//	postgres://… postgresql://… PostgreSQL through pgx
//
// A SQLite URL may carry modernc.org/sqlite DSN parameters after `?`; they
// override the defaults (WAL, busy_timeout, foreign keys, synchronous=NORMAL
// and BEGIN IMMEDIATE for write transactions).
func Open(ctx context.Context, rawURL string) (*DB, error) {
	return OpenPool(ctx, rawURL, 0)
}

// OpenPool is Open with at most maxConns PostgreSQL connections (0: the
// default, pgMaxOpen). Many replicas of many services share one server's
// max_connections, so the deployment that runs them sizes their pools.
func OpenPool(ctx context.Context, rawURL string, maxConns int) (*DB, error) {
	var (
		db  *DB
		err error
	)
	switch {
	case rawURL == "sqlite::memory:":
		db, err = openSQLiteTemp()
	case strings.HasPrefix(rawURL, "sqlite://"):
		db, err = openSQLite(strings.TrimPrefix(rawURL, "sqlite://"))
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		db, err = openPostgres(rawURL, maxConns)
	default:
		return nil, fmt.Errorf("store: unsupported database URL %q: want sqlite:///path, sqlite::memory: or postgres://", redact(rawURL))
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", redact(rawURL), err)
	}
	if err := db.PingContext(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("store: ping %s: %w", redact(rawURL), err), db.Close())
	}
	return db, nil
}

// Close closes the pool and removes the files of a sqlite::memory: database.
func (db *DB) Close() error {
	db.closeMu.Lock()
	closers := db.closers
	db.closers = nil
	db.closeMu.Unlock()
	var errs []error
	for _, fn := range closers {
		errs = append(errs, fn())
	}
	err := errors.Join(append(errs, db.DB.Close())...)
	if db.removeDir != "" {
		err = errors.Join(err, os.RemoveAll(db.removeDir))
	}
	return err
}

// openSQLiteTemp backs sqlite::memory: with a file in a fresh temporary
// directory: unlike a true in-memory database it is shared by every pooled
// connection and behaves like production (WAL, busy waits, BEGIN IMMEDIATE).
func openSQLiteTemp() (*DB, error) {
	dir, err := os.MkdirTemp("", "echopilot-sqlite-")
	if err != nil {
		return nil, err
	}
	db, err := openSQLite(filepath.Join(dir, "memory.db"))
	if err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	db.removeDir = dir
	return db, nil
}

func openSQLite(pathAndQuery string) (*DB, error) {
	path, query, _ := strings.Cut(pathAndQuery, "?")
	if path == "" {
		return nil, errors.New("missing file path")
	}
	dsn, err := sqliteDSN(path, query)
	if err != nil {
		return nil, err
	}
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, err
		}
	}
	connector, err := sqlite.NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	sqlDB := sql.OpenDB(connector)
	sqlDB.SetMaxOpenConns(sqliteMaxOpen)
	sqlDB.SetMaxIdleConns(sqliteMaxOpen)
	return &DB{DB: sqlDB, Dialect: SQLite, writeGate: make(chan struct{}, 1)}, nil
}

func openPostgres(rawURL string, maxConns int) (*DB, error) {
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		return nil, err
	}
	if maxConns <= 0 {
		maxConns = pgMaxOpen
	}
	sqlDB := stdlib.OpenDB(*cfg, stdlib.OptionAfterConnect(scanTimestamptzAsUTC))
	sqlDB.SetMaxOpenConns(maxConns)
	sqlDB.SetMaxIdleConns(maxConns) // as pgMaxIdle: keep what is in use
	sqlDB.SetConnMaxIdleTime(pgMaxIdleTime)
	sqlDB.SetConnMaxLifetime(pgMaxLifetime)
	return &DB{DB: sqlDB, Dialect: Postgres}, nil
}

// scanTimestamptzAsUTC makes timestamptz values read back in UTC, as they
// are on SQLite, rather than in the process's local zone.
func scanTimestamptzAsUTC(_ context.Context, conn *pgx.Conn) error {
	conn.TypeMap().RegisterType(&pgtype.Type{
		Name:  "timestamptz",
		OID:   pgtype.TimestamptzOID,
		Codec: &pgtype.TimestamptzCodec{ScanLocation: time.UTC},
	})
	return nil
}

// redact hides the password of a database URL in messages.
func redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		// Do not echo what could not be parsed: it may hold a password.
		scheme, _, _ := strings.Cut(rawURL, ":")
		return scheme + ":…"
	}
	return u.Redacted()
}
