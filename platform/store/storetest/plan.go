package storetest

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/echopilot/echopilot/platform/store"
)

// Plan returns the query plan of query on d, one line per plan row, using
// EXPLAIN on PostgreSQL and EXPLAIN QUERY PLAN on SQLite. q is a *sql.DB or a
// *sql.Tx (run it in a tenant transaction to see the plan the service's role
// gets under row-level security). Services' tests use it to prove that hot
// queries use their indexes and never scan a whole table.
func Plan(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, d store.Dialect, query string, args ...any) (string, error) {
	prefix := "EXPLAIN "
	if d == store.SQLite {
		prefix = "EXPLAIN QUERY PLAN "
	}
	rows, err := q.QueryContext(ctx, prefix+query, args...)
	if err != nil {
		return "", fmt.Errorf("explain: %w", err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return "", fmt.Errorf("explain: %w", err)
	}
	var lines []string
	for rows.Next() {
		// PostgreSQL: one text column; SQLite: id, parent, notused, detail.
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return "", fmt.Errorf("explain: %w", err)
		}
		switch v := vals[len(vals)-1].(type) {
		case string:
			lines = append(lines, v)
		case []byte:
			lines = append(lines, string(v))
		}
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("explain: %w", err)
	}
	return strings.Join(lines, "\n"), nil
}
