package tenantdata

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"

	"github.com/echopilot/echopilot/platform/store"
)

// tenantColumn is the column every tenant-scoped table has; a table with it
// is a kind. Other columns ending in tenantSuffix name a tenant too (the
// target of a decision) and are erased with it.
const (
	tenantColumn = "tenant_id"
	tenantSuffix = "_tenant_id"
	// outboxTable is platform/outbox's shared table: its pending rows wait
	// for the relay rather than being deleted (see hold).
	outboxTable = "outbox"
)

// table is one kind as the catalog describes it.
type table struct {
	name string
	cols []string
	// key is the primary key, in index order: the export's order and
	// cursor, and what a batch deletes by.
	key []string
	// others are the *_tenant_id columns.
	others []string
	// hold selects the tenant's rows that must not be deleted yet (outbox
	// events the relay has not delivered); they count as remaining.
	hold string
}

// loadCatalog lists the kinds of db: every base table with a tenant_id
// column, in name order, except goose's version tables.
func loadCatalog(ctx context.Context, db *store.DB) ([]table, error) {
	var tables []table
	err := db.InAllTenantsReadTx(ctx, func(tx *sql.Tx) error {
		cols, err := columns(ctx, tx, db.Dialect)
		if err != nil {
			return err
		}
		for _, name := range sortedKeys(cols) {
			if strings.HasPrefix(name, "goose") || strings.HasSuffix(name, "_version") {
				continue
			}
			t := table{name: name, cols: cols[name]}
			hasTenant := false
			for _, c := range t.cols {
				switch {
				case c == tenantColumn:
					hasTenant = true
				case strings.HasSuffix(c, tenantSuffix):
					t.others = append(t.others, c)
				}
			}
			if !hasTenant {
				continue
			}
			if t.key, err = primaryKey(ctx, tx, db.Dialect, name); err != nil {
				return err
			}
			if len(t.key) == 0 {
				return fmt.Errorf("table %s has no primary key", name)
			}
			if name == outboxTable {
				t.hold = "delivered_at IS NULL AND dead_at IS NULL"
			}
			tables = append(tables, t)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("tenantdata: catalog: %w", err)
	}
	return tables, nil
}

// columns maps each table of the current schema to its columns in order.
func columns(ctx context.Context, tx *sql.Tx, d store.Dialect) (map[string][]string, error) {
	q := `SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p
		WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite\_%' ESCAPE '\'
		ORDER BY m.name, p.cid`
	if d == store.Postgres {
		q = `SELECT c.table_name, c.column_name FROM information_schema.columns c
			JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
			WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
			ORDER BY c.table_name, c.ordinal_position`
	}
	rows, err := tx.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var t, c string
		if err := rows.Scan(&t, &c); err != nil {
			return nil, err
		}
		out[t] = append(out[t], c)
	}
	return out, rows.Err()
}

func primaryKey(ctx context.Context, tx *sql.Tx, d store.Dialect, name string) ([]string, error) {
	q := `SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk`
	if d == store.Postgres {
		q = `SELECT a.attname FROM pg_index i
			JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
			WHERE i.indrelid = to_regclass(quote_ident(current_schema()) || '.' || quote_ident($1)) AND i.indisprimary
			ORDER BY array_position(i.indkey::int2[], a.attnum)`
	}
	return store.Strings(tx.QueryContext(ctx, q, name))
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ident quotes a catalog name for SQL (both dialects use double quotes).
func ident(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

func idents(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = ident(n)
	}
	return strings.Join(q, ", ")
}

// keyTuple is the key columns as one SQL value: a row value when the key
// has several columns.
func keyTuple(key []string) string {
	if len(key) == 1 {
		return ident(key[0])
	}
	return "(" + idents(key) + ")"
}

// placeholders is "?" n times, as a row value when n > 1.
func placeholders(n int) string {
	if n == 1 {
		return "?"
	}
	return "(" + strings.TrimSuffix(strings.Repeat("?, ", n), ", ") + ")"
}
