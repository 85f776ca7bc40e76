package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ErrUnsafeRole is wrapped by RoleSafety's error.
var ErrUnsafeRole = errors.New("store: database role is not subject to row-level security")

// RoleSafety reports, wrapping ErrUnsafeRole, when the PostgreSQL role db is
// connected as escapes row-level security: a superuser, a BYPASSRLS role, or
// one that owns a table or may act as its owner (and so could disable RLS).
// Services log it loudly at start; it is nil on SQLite, which has no roles.
func RoleSafety(ctx context.Context, db *DB) error {
	if db.Dialect != Postgres {
		return nil
	}
	var (
		role          string
		super, bypass bool
		ownedTables   []string
		problems      []string
	)
	err := db.QueryRowContext(ctx,
		`SELECT rolname, rolsuper, rolbypassrls FROM pg_catalog.pg_roles WHERE rolname = current_user`,
	).Scan(&role, &super, &bypass)
	if err != nil {
		return fmt.Errorf("store: role safety: %w", err)
	}
	rows, err := db.QueryContext(ctx, `
		SELECT schemaname || '.' || tablename FROM pg_catalog.pg_tables
		WHERE schemaname <> 'information_schema' AND schemaname NOT LIKE 'pg\_%'
			AND pg_has_role(tableowner, 'MEMBER')
		ORDER BY 1 LIMIT 5`)
	if err != nil {
		return fmt.Errorf("store: role safety: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var table string
		if err := rows.Scan(&table); err != nil {
			return fmt.Errorf("store: role safety: %w", err)
		}
		ownedTables = append(ownedTables, table)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: role safety: %w", err)
	}
	if super {
		problems = append(problems, "is superuser")
	}
	if bypass {
		problems = append(problems, "has BYPASSRLS")
	}
	if len(ownedTables) > 0 {
		problems = append(problems, "owns or can act as owner of "+strings.Join(ownedTables, ", "))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: role %q %s", ErrUnsafeRole, role, strings.Join(problems, "; "))
	}
	return nil
}
