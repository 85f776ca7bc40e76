package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ErrNoTenant is returned when a tenant-scoped transaction is asked for
// without a tenant.
var ErrNoTenant = errors.New("store: empty tenant id")

// The PostgreSQL settings the row-level security policies read. Both are set
// transaction-locally (set_config(…, true)), so they never leak to the next
// user of a pooled connection.
const (
	tenantSetting     = "app.tenant_id"
	allTenantsSetting = "app.all_tenants"
)

// InTx runs fn in a read-write transaction that is not scoped to a tenant
// and commits it when fn returns nil. Under row-level security such a
// transaction sees no tenant rows until SetTenant is called.
func (db *DB) InTx(ctx context.Context, fn func(*sql.Tx) error) error {
	return db.inTx(ctx, nil, fn)
}

// InWriteTx is InTx for a store's own write path, not scoped to a tenant
// yet (fn calls SetTenant). SQLite has one writer at a time, and a writer
// that finds the write lock taken sleeps in the busy handler for 1, 2, 5,
// 10… ms between tries, far longer than a short transaction holds it. So on
// SQLite this process's writers queue on a channel first and each BEGIN
// IMMEDIATE finds the lock free (other processes, such as a migration,
// still meet the busy handler). On PostgreSQL it is InTx.
func (db *DB) InWriteTx(ctx context.Context, fn func(*sql.Tx) error) error {
	return db.gated(ctx, func() error { return db.InTx(ctx, fn) })
}

// InTenantTx runs fn in a read-write transaction scoped to tenant. On
// SQLite it queues behind this process's other writers like InWriteTx; on
// PostgreSQL it runs at once.
func (db *DB) InTenantTx(ctx context.Context, tenant string, fn func(*sql.Tx) error) error {
	if tenant == "" {
		return ErrNoTenant
	}
	return db.gated(ctx, func() error { return db.inTenantTx(ctx, nil, tenant, fn) })
}

// gated runs fn holding the SQLite write gate (see InWriteTx), or at once
// when there is none (PostgreSQL). Write transactions must not nest: one
// that waits for the gate while its caller holds it waits forever.
func (db *DB) gated(ctx context.Context, fn func() error) error {
	if db.writeGate != nil {
		select {
		case db.writeGate <- struct{}{}:
			defer func() { <-db.writeGate }()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return fn()
}

// InTenantReadTx runs fn in a read-only transaction scoped to tenant. On
// SQLite it starts DEFERRED, so it does not queue behind writers.
func (db *DB) InTenantReadTx(ctx context.Context, tenant string, fn func(*sql.Tx) error) error {
	return db.inTenantTx(ctx, &sql.TxOptions{ReadOnly: true}, tenant, fn)
}

// InTenantSnapshotTx is InTenantReadTx whose statements all see one
// snapshot (REPEATABLE READ on PostgreSQL; a SQLite read transaction keeps
// the snapshot of its first read), for reads that must agree with each
// other while writers commit.
func (db *DB) InTenantSnapshotTx(ctx context.Context, tenant string, fn func(*sql.Tx) error) error {
	opts := &sql.TxOptions{ReadOnly: true}
	if db.Dialect == Postgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	return db.inTenantTx(ctx, opts, tenant, fn)
}

// InAllTenantsReadTx runs fn in a read-only transaction that may read every
// tenant's rows, for a platform admin's cross-tenant view. On PostgreSQL it
// is READ ONLY and sets app.all_tenants, which only the SELECT policies honour.
func (db *DB) InAllTenantsReadTx(ctx context.Context, fn func(*sql.Tx) error) error {
	return db.inTx(ctx, &sql.TxOptions{ReadOnly: true}, func(tx *sql.Tx) error {
		if db.Dialect == Postgres {
			if err := setLocal(ctx, tx, allTenantsSetting, "on"); err != nil {
				return err
			}
		}
		return fn(tx)
	})
}

// SetTenant scopes the rest of tx to tenant; it may be called again to switch
// tenants, for example to write a batch that spans several. It is a no-op on
// SQLite, whose queries are scoped by their WHERE clauses alone.
func (db *DB) SetTenant(ctx context.Context, tx *sql.Tx, tenant string) error {
	if tenant == "" {
		return ErrNoTenant
	}
	if db.Dialect != Postgres {
		return nil
	}
	return setLocal(ctx, tx, tenantSetting, tenant)
}

func (db *DB) inTenantTx(ctx context.Context, opts *sql.TxOptions, tenant string, fn func(*sql.Tx) error) error {
	if tenant == "" {
		return ErrNoTenant
	}
	return db.inTx(ctx, opts, func(tx *sql.Tx) error {
		if err := db.SetTenant(ctx, tx, tenant); err != nil {
			return err
		}
		return fn(tx)
	})
}

// inTx returns fn's error as is: the caller knows what it was doing and wraps
// it once.
func (db *DB) inTx(ctx context.Context, opts *sql.TxOptions, fn func(*sql.Tx) error) error {
	var tx *sql.Tx
	err := db.retryBegin(ctx, func() (err error) {
		tx, err = db.BeginTx(ctx, opts)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: begin transaction: %w", err)
	}
	return runTx(tx, fn)
}

// runTx runs fn in tx and commits it when fn returns nil. It rolls back
// when fn fails or panics (after Commit the rollback is a no-op; a failed
// one means a broken connection, which database/sql discards).
func runTx(tx *sql.Tx, fn func(*sql.Tx) error) error {
	defer func() { _ = tx.Rollback() }()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

// retryBegin runs begin until it succeeds. After a database restart every
// pooled connection is dead, and the driver learns it only when BEGIN fails
// on it; nothing has run then, so the next try takes the next connection
// (the failed one is discarded), up to one more than the pool holds. A
// database that is really down fails every try at once.
func (db *DB) retryBegin(ctx context.Context, begin func() error) error {
	var err error
	for range max(db.Stats().MaxOpenConnections+1, 2) {
		if err = begin(); err == nil || !Unavailable(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

func setLocal(ctx context.Context, tx *sql.Tx, name, value string) error {
	if _, err := tx.ExecContext(ctx, "SELECT set_config($1, $2, true)", name, value); err != nil {
		return fmt.Errorf("store: set %s: %w", name, err)
	}
	return nil
}
