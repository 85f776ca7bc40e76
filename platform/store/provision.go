package store

import (
	"context"
	"fmt"
	"net/url"

	"github.com/jackc/pgx/v5"
)

// Provision makes a PostgreSQL database ready for one service, as an
// operator would once: on the server of adminURL (a role that may create
// roles and databases), the database dbName and a login role that is a
// member of AppRole and owns nothing, with password. It is idempotent: what
// exists is kept (the role's password is set again). It returns the owner
// URL migrations run with and the app-role URL the service connects with.
func Provision(ctx context.Context, adminURL, dbName, role, password string) (migrateURL, appURL string, err error) {
	base, err := url.Parse(adminURL)
	if err != nil {
		return "", "", fmt.Errorf("store: provision: admin URL: %w", err)
	}
	admin, err := Open(ctx, adminURL)
	if err != nil {
		return "", "", err
	}
	defer admin.Close()
	if admin.Dialect != Postgres {
		return "", "", fmt.Errorf("store: provision: %s is not a PostgreSQL URL", base.Redacted())
	}
	if err := EnsureAppRole(ctx, admin); err != nil {
		return "", "", err
	}
	var exists bool
	if err := admin.QueryRowContext(ctx, "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)", role).Scan(&exists); err != nil {
		return "", "", fmt.Errorf("store: provision: %w", err)
	}
	pw := pgQuote(password)
	stmts := []string{"ALTER ROLE " + pgIdent(role) + " LOGIN PASSWORD " + pw}
	if !exists {
		stmts = []string{"CREATE ROLE " + pgIdent(role) + " LOGIN PASSWORD " + pw + " IN ROLE " + AppRole}
	}
	if err := admin.QueryRowContext(ctx, "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", dbName).Scan(&exists); err != nil {
		return "", "", fmt.Errorf("store: provision: %w", err)
	}
	if !exists {
		stmts = append(stmts, "CREATE DATABASE "+pgIdent(dbName)+" TEMPLATE template0")
	}
	stmts = append(stmts, "GRANT CONNECT ON DATABASE "+pgIdent(dbName)+" TO "+pgIdent(role))
	for _, s := range stmts {
		if _, err := admin.ExecContext(ctx, s); err != nil {
			return "", "", fmt.Errorf("store: provision %s: %w", dbName, err)
		}
	}
	owner := *base
	owner.Path = "/" + dbName
	ownerDB, err := Open(ctx, owner.String())
	if err != nil {
		return "", "", err
	}
	defer ownerDB.Close()
	if _, err := ownerDB.ExecContext(ctx, "GRANT USAGE ON SCHEMA public TO "+pgIdent(role)); err != nil {
		return "", "", fmt.Errorf("store: provision %s: %w", dbName, err)
	}
	app := owner
	app.User = url.UserPassword(role, password)
	return owner.String(), app.String(), nil
}

func pgIdent(name string) string { return pgx.Identifier{name}.Sanitize() }

// pgQuote is a string literal; role passwords cannot be bind parameters.
func pgQuote(s string) string {
	out := []byte{'\''}
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' {
			out = append(out, '\'')
		}
		out = append(out, s[i])
	}
	return string(append(out, '\''))
}
