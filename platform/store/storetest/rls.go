package storetest

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/echopilot/echopilot/platform/store"
)

// PGCode returns the SQLSTATE of a PostgreSQL error, or "".
func PGCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// RLSRefusesWrites runs each statement inside a transaction scoped to
// tenant and fails the test unless PostgreSQL refuses it with an RLS
// violation (SQLSTATE 42501). Use it for writes that would create or move
// rows into another tenant. Every service's attack tests share it.
func RLSRefusesWrites(t testing.TB, db *store.DB, tenant string, stmts map[string]string) {
	t.Helper()
	ctx := context.Background()
	for name, stmt := range stmts {
		err := db.InTenantTx(ctx, tenant, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, stmt)
			return err
		})
		// 42501 insufficient_privilege: new row violates row-level security policy.
		if code := PGCode(err); code != "42501" {
			t.Errorf("%s as %s: %v (SQLSTATE %q), want an RLS violation (42501)", name, tenant, err, code)
		}
	}
}

// RLSHidesForeignRows runs each statement inside a transaction scoped to
// tenant and fails the test unless it succeeds touching no row: another
// tenant's rows are invisible to UPDATE and DELETE.
func RLSHidesForeignRows(t testing.TB, db *store.DB, tenant string, stmts []string) {
	t.Helper()
	ctx := context.Background()
	for _, stmt := range stmts {
		var affected int64
		err := db.InTenantTx(ctx, tenant, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, stmt)
			if err != nil {
				return err
			}
			affected, err = res.RowsAffected()
			return err
		})
		if err != nil || affected != 0 {
			t.Errorf("%s as %s affected %d rows (%v), want 0", stmt, tenant, affected, err)
		}
	}
}

// RLSAllTenantsReadCannotWrite fails the test unless update, a statement
// that would change every row of the table, is refused in the admin's
// all-tenants read (a read-only transaction: SQLSTATE 25006) and changes
// nothing in a read-write transaction that sets app.all_tenants itself
// (write policies ignore it).
func RLSAllTenantsReadCannotWrite(t testing.TB, db *store.DB, update string) {
	t.Helper()
	ctx := t.Context()
	err := db.InAllTenantsReadTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, update)
		return err
	})
	if code := PGCode(err); code != "25006" {
		t.Errorf("%s in the all-tenants read: %v (SQLSTATE %q), want 25006", update, err, code)
	}
	var affected int64
	err = db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "SELECT set_config('app.all_tenants', 'on', true)"); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, update)
		if err != nil {
			return err
		}
		affected, err = res.RowsAffected()
		return err
	})
	if err != nil || affected != 0 {
		t.Errorf("%s with app.all_tenants=on affected %d rows (%v), want 0", update, affected, err)
	}
}
