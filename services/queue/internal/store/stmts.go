package store

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// stmts prepares each distinct query once and reuses it in every
// transaction. modernc.org/sqlite compiles the SQL of every unprepared call
// again, which for the queue's statements costs more than running them;
// pgx caches per connection by itself, so on PostgreSQL this only saves the
// cache lookups. The set of queries is bounded: constant ones, plus the
// claim and list variants (by number of types, by filter).
type stmts struct {
	db *sql.DB
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

// in returns query prepared for use in tx. database/sql prepares it on each
// pooled connection the first time it runs there and keeps it.
func (c *stmts) in(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	c.mu.Lock()
	st, ok := c.m[query]
	c.mu.Unlock()
	if !ok {
		prepared, err := c.db.PrepareContext(ctx, query)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		if st, ok = c.m[query]; ok {
			// Another caller prepared it meanwhile; keep theirs.
			c.mu.Unlock()
			_ = prepared.Close()
		} else {
			c.m[query] = prepared
			st = prepared
			c.mu.Unlock()
		}
	}
	return tx.StmtContext(ctx, st), nil
}

func (c *stmts) query(ctx context.Context, tx *sql.Tx, query string, args ...any) (*sql.Rows, error) {
	st, err := c.in(ctx, tx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

func (c *stmts) exec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	st, err := c.in(ctx, tx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

// row is QueryRow for a scan that reports preparation errors too.
type row struct {
	r   *sql.Row
	err error
}

func (r row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	return r.r.Scan(dest...)
}

func (c *stmts) queryRow(ctx context.Context, tx *sql.Tx, query string, args ...any) row {
	st, err := c.in(ctx, tx, query)
	if err != nil {
		return row{err: err}
	}
	return row{r: st.QueryRowContext(ctx, args...)}
}

// close closes every prepared statement.
func (c *stmts) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for q, st := range c.m {
		errs = append(errs, st.Close())
		delete(c.m, q)
	}
	return errors.Join(errs...)
}
