package store

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// Stmts prepares each distinct query once and reuses it in every
// transaction. modernc.org/sqlite compiles the SQL of every unprepared call
// again, which for short statements costs more than running them; pgx caches
// per connection by itself, so on PostgreSQL this only saves lookups. Keep
// the set of queries bounded (constants and a few variants), since every
// one stays prepared until Close.
type Stmts struct {
	owner   *DB
	db      *sql.DB
	mu      sync.Mutex
	m       map[string]*sql.Stmt
	warming map[string]bool
	closed  bool
	// warmers are the background prepares under way; Close waits for them,
	// so none runs against a database being closed.
	warmers sync.WaitGroup
}

// NewStmts returns an empty cache on db.
// Closing db closes it too.
func NewStmts(db *DB) *Stmts {
	c := &Stmts{owner: db, db: db.DB, m: make(map[string]*sql.Stmt), warming: make(map[string]bool)}
	db.onClose(c.Close)
	return c
}

// In returns query prepared for use in tx. database/sql prepares it on each
// pooled connection the first time it runs there and keeps it.
//
// A query not cached yet is prepared on tx's own connection for this use,
// and for the cache in the background: preparing on the pool here would
// wait for a free connection while tx holds one, and a burst of first calls
// holding every pooled connection would wait for each other forever.
func (c *Stmts) In(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	c.mu.Lock()
	st, ok := c.m[query]
	if !ok && !c.warming[query] && !c.closed {
		c.warming[query] = true
		c.warmers.Go(func() { c.warm(query) })
	}
	c.mu.Unlock()
	if !ok {
		return tx.PrepareContext(ctx, query)
	}
	return tx.StmtContext(ctx, st), nil
}

// warm prepares query on the pool for later transactions.
func (c *Stmts) warm(query string) {
	prepared, err := c.db.PrepareContext(context.Background(), query)
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.warming, query)
	switch {
	case err != nil:
		// The next use tries again; this one has its own statement.
	case c.closed:
		_ = prepared.Close()
	default:
		c.m[query] = prepared
	}
}

// Query runs a prepared query in tx.
func (c *Stmts) Query(ctx context.Context, tx *sql.Tx, query string, args ...any) (*sql.Rows, error) {
	st, err := c.In(ctx, tx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// Exec runs a prepared statement in tx.
func (c *Stmts) Exec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	st, err := c.In(ctx, tx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

// Row is a QueryRow result whose Scan also reports preparation errors.
type Row struct {
	r   *sql.Row
	err error
}

// Scan is sql.Row.Scan, or the preparation error.
func (r Row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	return r.r.Scan(dest...)
}

// QueryRow runs a prepared single-row query in tx.
func (c *Stmts) QueryRow(ctx context.Context, tx *sql.Tx, query string, args ...any) Row {
	st, err := c.In(ctx, tx, query)
	if err != nil {
		return Row{err: err}
	}
	return Row{r: st.QueryRowContext(ctx, args...)}
}

// Close closes every prepared statement, waiting for background prepares.
func (c *Stmts) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.warmers.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for q, st := range c.m {
		errs = append(errs, st.Close())
		delete(c.m, q)
	}
	return errors.Join(errs...)
}
