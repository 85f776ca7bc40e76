// Package tenantdatatest drives TenantDataService in tests: collect an
// export, erase until done, and find a tenant's id left anywhere in a
// database, from the catalog (every text column of every table).
package tenantdatatest

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"sort"
	"strings"
	"testing"

	tenantdatav1 "github.com/echopilot/echopilot/gen/go/echopilot/tenantdata/v1"
	"github.com/echopilot/echopilot/platform/store"
)

// Export collects every response of an export from kind and cursor.
func Export(t testing.TB, ctx context.Context, c tenantdatav1.TenantDataServiceClient, tenant, kind, cursor string) []*tenantdatav1.ExportTenantDataResponse {
	t.Helper()
	stream, err := c.ExportTenantData(ctx, &tenantdatav1.ExportTenantDataRequest{TenantId: tenant, Kind: kind, Cursor: cursor})
	if err != nil {
		t.Fatalf("export %s: %v", tenant, err)
	}
	var out []*tenantdatav1.ExportTenantDataResponse
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("export %s: %v", tenant, err)
		}
		out = append(out, r)
	}
}

// Lines decodes the responses' lines per kind.
func Lines(t testing.TB, resps []*tenantdatav1.ExportTenantDataResponse) map[string][]map[string]any {
	t.Helper()
	out := map[string][]map[string]any{}
	for _, r := range resps {
		n := 0
		for line := range strings.Lines(string(r.GetLines())) {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("kind %s: line %q: %v", r.GetKind(), line, err)
			}
			out[r.GetKind()] = append(out[r.GetKind()], m)
			n++
		}
		if n != int(r.GetRows()) {
			t.Fatalf("kind %s: %d lines, rows says %d", r.GetKind(), n, r.GetRows())
		}
	}
	return out
}

// EraseAll calls EraseTenantData until done (at most limit calls) and
// returns every response.
func EraseAll(t testing.TB, ctx context.Context, c tenantdatav1.TenantDataServiceClient, req *tenantdatav1.EraseTenantDataRequest, limit int) []*tenantdatav1.EraseTenantDataResponse {
	t.Helper()
	var out []*tenantdatav1.EraseTenantDataResponse
	for range limit {
		r, err := c.EraseTenantData(ctx, req)
		if err != nil {
			t.Fatalf("erase %s: %v", req.GetTenantId(), err)
		}
		out = append(out, r)
		if r.GetDone() {
			return out
		}
	}
	t.Fatalf("erase %s: not done after %d calls: %v", req.GetTenantId(), limit, out[len(out)-1])
	return nil
}

// Residue counts, per table of db (from the catalog: every table but
// goose's, every text column), the rows holding exactly value in some text
// column. It reads as the all-tenants view, so on PostgreSQL it sees what
// row-level security lets the platform admin's view see.
func Residue(t testing.TB, db *store.DB, value string) map[string]int {
	t.Helper()
	ctx := context.Background()
	q := `SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p
		WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite\_%' ESCAPE '\' AND m.name NOT LIKE 'goose%'
			AND (p.type = '' OR upper(p.type) LIKE '%TEXT%' OR upper(p.type) LIKE '%CHAR%' OR upper(p.type) LIKE '%CLOB%')`
	if db.Dialect == store.Postgres {
		q = `SELECT c.table_name, c.column_name FROM information_schema.columns c
			JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
			WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' AND c.table_name NOT LIKE 'goose%'
				AND c.data_type IN ('text', 'character varying', 'character')`
	}
	out := map[string]int{}
	err := db.InAllTenantsReadTx(ctx, func(tx *sql.Tx) error {
		cols := map[string][]string{}
		rows, err := tx.QueryContext(ctx, q)
		if err != nil {
			return err
		}
		for rows.Next() {
			var tbl, col string
			if err := rows.Scan(&tbl, &col); err != nil {
				rows.Close()
				return err
			}
			cols[tbl] = append(cols[tbl], col)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		tables := make([]string, 0, len(cols))
		for tbl := range cols {
			tables = append(tables, tbl)
		}
		sort.Strings(tables)
		for _, tbl := range tables {
			var preds []string
			for _, c := range cols[tbl] {
				preds = append(preds, quote(c)+" = ?")
			}
			var n int
			err := tx.QueryRowContext(ctx, db.Rebind("SELECT count(*) FROM "+quote(tbl)+" WHERE "+strings.Join(preds, " OR ")),
				repeat(value, len(preds))...).Scan(&n)
			if err != nil {
				return err
			}
			if n > 0 {
				out[tbl] = n
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("residue: %v", err)
	}
	return out
}

func quote(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

func repeat(v any, n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = v
	}
	return out
}
