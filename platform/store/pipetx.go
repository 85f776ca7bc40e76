package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// PipeTx is a read-write transaction on one PostgreSQL connection whose
// statements are queued and sent in batches (pgx's pipeline: one round
// trip a batch). The first batch carries BEGIN, and the commit goes with
// the statements left queued at the end, so a transaction that reads once,
// computes and writes costs two round trips, where database/sql's costs
// one per statement (BEGIN, set_config, the read, the write, COMMIT: five).
// On a saturated machine each round trip is a wake-up of the server and of
// the caller, and a row lock taken by the read is held across all of them.
type PipeTx struct {
	ctx   context.Context
	conn  *pgx.Conn
	begin string
	batch pgx.Batch
	// sent counts the batches sent: InPipeTx retries on a fresh connection
	// only a transaction whose first batch failed to reach the server.
	sent int
}

// Queue adds query ($n placeholders) to the next batch. Its result goes to
// the callback set on the returned QueuedQuery (QueryRow, Query or Exec)
// when the batch is sent; an error a callback returns fails the batch (and
// makes pgx prepare the batch's statements again: a callback that merely
// learns something, such as a row not inserted, should record it and
// return nil). Args are read when the batch is sent, not before.
func (t *PipeTx) Queue(query string, args ...any) *pgx.QueuedQuery {
	return t.batch.Queue(query, args...)
}

// SetTenant queues scoping the rest of the transaction to tenant, as
// DB.SetTenant does.
func (t *PipeTx) SetTenant(tenant string) error {
	if tenant == "" {
		return ErrNoTenant
	}
	t.batch.Queue("SELECT set_config($1, $2, true)", tenantSetting, tenant)
	return nil
}

// Flush sends the queued statements (after BEGIN, the first time) and runs
// their callbacks in order; it returns the first error.
func (t *PipeTx) Flush() error {
	return t.send(false)
}

func (t *PipeTx) send(commit bool) error {
	queued := t.batch.QueuedQueries
	t.batch = pgx.Batch{}
	var b pgx.Batch
	if t.sent == 0 {
		b.Queue(t.begin)
	}
	b.QueuedQueries = append(b.QueuedQueries, queued...)
	if commit {
		b.Queue("commit")
	}
	if b.Len() == 0 {
		return nil
	}
	err := t.conn.SendBatch(t.ctx, &b).Close()
	if err == nil || commit || !t.conn.IsClosed() {
		// It reached the server, or may have: a commit whose answer was
		// lost may have committed, and is never sent twice. Without a
		// commit, a batch on a connection that died commits nothing.
		t.sent++
	}
	return err
}

// InPipeTx runs fn in a PipeTx on a pooled connection and commits with
// fn's last queued statements. PostgreSQL only (ErrNotPostgres on SQLite,
// which has no round trips to save).
//
// Like the other transactions it retries a connection that turns out dead
// (after a database restart every pooled one is): when fn's first Flush
// could not reach the server, fn runs again on the next connection. So fn
// must do nothing before its first Flush returns that it cannot do twice
// (queueing is fine). A batch that carries the commit is never sent twice:
// its answer lost, it may have committed.
func (db *DB) InPipeTx(ctx context.Context, fn func(*PipeTx) error) error {
	return db.inPipeTx(ctx, "begin", fn)
}

// InTenantPipeSnapshot is InTenantSnapshotTx on a PipeTx (PostgreSQL
// only): every read of fn (a Flush each) sees one snapshot, and the first
// carries BEGIN and the tenant's scope with it, one round trip where
// database/sql takes three.
func (db *DB) InTenantPipeSnapshot(ctx context.Context, tenant string, fn func(*PipeTx) error) error {
	if tenant == "" {
		return ErrNoTenant
	}
	return db.inPipeTx(ctx, "begin isolation level repeatable read read only", func(t *PipeTx) error {
		if err := t.SetTenant(tenant); err != nil {
			return err
		}
		return fn(t)
	})
}

func (db *DB) inPipeTx(ctx context.Context, begin string, fn func(*PipeTx) error) error {
	if db.Dialect != Postgres {
		return ErrNotPostgres
	}
	var err error
	for range max(db.Stats().MaxOpenConnections+1, 2) {
		var sent int
		sent, err = db.pipeTx(ctx, begin, fn)
		if err == nil || sent > 0 || !Unavailable(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// ErrNotPostgres is returned by what only PostgreSQL does.
var ErrNotPostgres = errors.New("store: PostgreSQL only")

func (db *DB) pipeTx(ctx context.Context, begin string, fn func(*PipeTx) error) (sent int, err error) {
	conn, err := db.DB.Conn(ctx)
	if err != nil {
		return 0, fmt.Errorf("store: connection: %w", err)
	}
	defer conn.Close()
	err = rawPgx(conn, func(c *pgx.Conn) error {
		t := &PipeTx{ctx: ctx, conn: c, begin: begin}
		err := fn(t)
		if err == nil {
			if err = t.send(true); err != nil {
				err = fmt.Errorf("store: commit: %w", err)
			}
		}
		sent = t.sent
		return err
	})
	return sent, err
}

// rawPgx runs f on conn's pgx connection. A transaction f leaves open (f
// failed, or panicked, midway) is rolled back, or the connection discarded
// when that fails, so it never goes back to the pool mid-transaction. A
// panic leaves Raw as a value and is raised again outside it, once the
// connection is dealt with.
func rawPgx(conn *sql.Conn, f func(*pgx.Conn) error) error {
	var p any
	var ferr error
	err := conn.Raw(func(dc any) (err error) {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return errors.New("store: not a pgx connection")
		}
		defer func() {
			if p = recover(); p != nil {
				ferr = errors.New("store: panic on the pgx connection")
			}
			if ferr != nil && !abandon(c.Conn()) {
				err = driver.ErrBadConn // discarded, not pooled
			} else {
				err = ferr
			}
		}()
		ferr = f(c.Conn())
		return ferr
	})
	if p != nil {
		panic(p)
	}
	if ferr != nil {
		return ferr
	}
	return err
}

// abandon rolls back a transaction left open on c after a failure; false
// when c is not fit to be pooled again.
func abandon(c *pgx.Conn) bool {
	if c.IsClosed() {
		return false
	}
	switch c.PgConn().TxStatus() {
	case 'I':
		return true
	case 'T', 'E':
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := c.Exec(ctx, "rollback")
		return err == nil && c.PgConn().TxStatus() == 'I'
	}
	return false
}
