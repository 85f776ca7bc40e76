package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// Rows is what a pipelined read's scan callback reads: *sql.Rows and
// pgx.Rows both are.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// ReadScoped runs one SELECT scoped to tenant (or, with allTenants, to every
// tenant, as InAllTenantsReadTx) and hands its rows to scan. On PostgreSQL
// the scope's setting and the query go to the server as one pipelined
// batch, which runs as one implicit transaction (set_config's is_local
// lasts until its end): one round trip where InTenantReadTx takes four
// (BEGIN, set_config, the query, COMMIT), each costing the driver and the
// server. On SQLite, which has no round trips, it is InTenantReadTx (or
// InAllTenantsReadTx). query is in ? form.
func (db *DB) ReadScoped(ctx context.Context, tenant string, allTenants bool, query string, args []any, scan func(Rows) error) error {
	return db.readScoped(ctx, nil, tenant, allTenants, query, args, scan)
}

// ReadScoped is DB.ReadScoped with the query prepared once on SQLite (on
// PostgreSQL pgx keeps its statements prepared per connection itself).
func (c *Stmts) ReadScoped(ctx context.Context, tenant string, allTenants bool, query string, args []any, scan func(Rows) error) error {
	return c.owner.readScoped(ctx, c, tenant, allTenants, query, args, scan)
}

func (db *DB) readScoped(ctx context.Context, stmts *Stmts, tenant string, allTenants bool, query string, args []any, scan func(Rows) error) error {
	if !allTenants && tenant == "" {
		return ErrNoTenant
	}
	query = db.Rebind(query)
	if db.Dialect != Postgres {
		read := func(tx *sql.Tx) error {
			if stmts != nil {
				rows, err := stmts.Query(ctx, tx, query, args...)
				return ReadRows(rows, err, scan)
			}
			rows, err := tx.QueryContext(ctx, query, args...)
			return ReadRows(rows, err, scan)
		}
		if allTenants {
			return db.InAllTenantsReadTx(ctx, read)
		}
		return db.InTenantReadTx(ctx, tenant, read)
	}
	name, value := tenantSetting, tenant
	if allTenants {
		name, value = allTenantsSetting, "on"
	}
	conn, err := db.DB.Conn(ctx)
	if err != nil {
		return fmt.Errorf("store: connection: %w", err)
	}
	defer conn.Close()
	return conn.Raw(func(driverConn any) error {
		c, ok := driverConn.(*stdlib.Conn)
		if !ok {
			return errors.New("store: ReadScoped needs the pgx driver")
		}
		b := &pgx.Batch{}
		// Read-only as InTenantReadTx: the all-tenants setting is honoured
		// by the SELECT policies only, and no write may ride along.
		b.Queue("SELECT set_config($1, $2, true), set_config('transaction_read_only', 'on', true)", name, value)
		b.Queue(query, args...)
		br := c.Conn().SendBatch(ctx, b)
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return fmt.Errorf("store: set %s: %w", name, err)
		}
		rows, err := br.Query()
		if err != nil {
			_ = br.Close()
			return err
		}
		err = scan(rows)
		rows.Close()
		return errors.Join(err, rows.Err(), br.Close())
	})
}

// ReadRow is ReadScoped of a single-row query, scanned into dest;
// sql.ErrNoRows when it returns none.
func (c *Stmts) ReadRow(ctx context.Context, tenant string, allTenants bool, query string, args []any, dest ...any) error {
	return c.ReadScoped(ctx, tenant, allTenants, query, args, func(rows Rows) error {
		if !rows.Next() {
			if err := rows.Err(); err != nil {
				return err
			}
			return sql.ErrNoRows
		}
		return rows.Scan(dest...)
	})
}

// ReadAll is ReadScoped collecting a value per row with scan.
func ReadAll[T any](ctx context.Context, c *Stmts, tenant string, allTenants bool, query string, args []any, scan func(Rows) (T, error)) ([]T, error) {
	var out []T
	err := c.ReadScoped(ctx, tenant, allTenants, query, args, func(rows Rows) error {
		for rows.Next() {
			v, err := scan(rows)
			if err != nil {
				return err
			}
			out = append(out, v)
		}
		return nil
	})
	return out, err
}
