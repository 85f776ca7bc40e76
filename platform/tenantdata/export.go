package tenantdata

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"google.golang.org/grpc"

	tenantdatav1 "github.com/echopilot/echopilot/gen/go/echopilot/tenantdata/v1"
	"github.com/echopilot/echopilot/platform/apierr"
)

const (
	// maxChunk bounds a response's lines (a longer single line goes alone).
	maxChunk = 1 << 20
	// pageRows is how many rows one read transaction fetches: memory holds
	// one page and one chunk, whatever the table's size.
	pageRows = 500
)

// ExportTenantData streams the tenant's rows kind by kind, from req's kind
// and cursor when it resumes.
func (s *Server) ExportTenantData(req *tenantdatav1.ExportTenantDataRequest, stream grpc.ServerStreamingServer[tenantdatav1.ExportTenantDataResponse]) error {
	ctx := stream.Context()
	if err := validTenant(req.GetTenantId()); err != nil {
		return err
	}
	tables, err := loadCatalog(ctx, s.db)
	if err != nil {
		return err
	}
	start, after := 0, []any(nil)
	if req.GetKind() != "" {
		start = -1
		for i, t := range tables {
			if _, skip := s.rules.Skip[t.name]; t.name == req.GetKind() && !skip {
				start = i
			}
		}
		if start < 0 {
			return apierr.InvalidArgument("KIND_INVALID", "kind %q is not exported", req.GetKind())
		}
		if after, err = decodeCursor(req.GetCursor(), len(tables[start].key)); err != nil {
			return err
		}
	} else if req.GetCursor() != "" {
		return apierr.InvalidArgument("CURSOR_INVALID", "a cursor needs its kind")
	}
	for i := start; i < len(tables); i++ {
		if _, skip := s.rules.Skip[tables[i].name]; skip {
			continue
		}
		if err := s.exportKind(ctx, stream, req.GetTenantId(), tables[i], after); err != nil {
			return err
		}
		after = nil
	}
	return nil
}

// exportKind sends t's rows of tenant after key `after` (nil: all) in
// chunks of whole lines; the last response has kind_done.
func (s *Server) exportKind(ctx context.Context, stream grpc.ServerStreamingServer[tenantdatav1.ExportTenantDataResponse], tenant string, t table, after []any) error {
	cols, redacted := s.exported(t)
	var (
		buf  bytes.Buffer
		rows int32
	)
	send := func(done bool) error {
		cursor, err := encodeCursor(after)
		if err != nil {
			return err
		}
		err = stream.Send(&tenantdatav1.ExportTenantDataResponse{
			Kind: t.name, Lines: bytes.Clone(buf.Bytes()), Rows: rows, Cursor: cursor, KindDone: done, RedactedColumns: redacted,
		})
		buf.Reset()
		rows = 0
		return err
	}
	for {
		page, err := s.page(ctx, tenant, t, cols, after)
		if err != nil {
			return fmt.Errorf("tenantdata: export %s: %w", t.name, err)
		}
		for _, r := range page {
			line, err := jsonLine(cols, r[:len(cols)])
			if err != nil {
				return fmt.Errorf("tenantdata: export %s: %w", t.name, err)
			}
			if buf.Len() > 0 && buf.Len()+len(line) > maxChunk {
				if err := send(false); err != nil {
					return err
				}
			}
			buf.Write(line)
			rows++
			after = r[len(cols):]
		}
		if len(page) < pageRows {
			return send(true)
		}
	}
}

// page reads up to pageRows rows of tenant after key `after`, in key
// order: cols then the key columns.
func (s *Server) page(ctx context.Context, tenant string, t table, cols []string, after []any) ([][]any, error) {
	q := "SELECT " + idents(append(append([]string{}, cols...), t.key...)) + " FROM " + ident(t.name) +
		" WHERE " + ident(tenantColumn) + " = ?"
	args := []any{tenant}
	if after != nil {
		q += " AND " + keyTuple(t.key) + " > " + placeholders(len(t.key))
		args = append(args, after...)
	}
	q += " ORDER BY " + idents(t.key) + fmt.Sprintf(" LIMIT %d", pageRows)
	var out [][]any
	err := s.db.InTenantReadTx(ctx, tenant, func(tx *sql.Tx) error {
		var err error
		out, err = readRows(ctx, tx, s.db.Rebind(q), len(cols)+len(t.key), args...)
		return err
	})
	return out, err
}

// jsonLine is one row as a JSON object in column order, ending in "\n":
// bytes as base64, times as RFC 3339 in UTC, NULL as null.
func jsonLine(cols []string, vals []any) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, c := range cols {
		if i > 0 {
			b.WriteByte(',')
		}
		name, _ := json.Marshal(c)
		b.Write(name)
		b.WriteByte(':')
		v := vals[i]
		if tm, ok := v.(time.Time); ok {
			v = tm.UTC().Format(time.RFC3339Nano)
		}
		enc, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", c, err)
		}
		b.Write(enc)
	}
	b.WriteString("}\n")
	return b.Bytes(), nil
}
