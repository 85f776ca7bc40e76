package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/services/tenancy/internal/domain"
)

// Export statements, the same on both databases (rebound where used). An
// export's file count and size are those of its finished files, the
// manifest included.
const (
	exportColumns = "e.tenant_id, e.export_id, e.state, e.requested_by, e.created_at, e.finished_at, e.current_file, e.error, e.manifest_sha256, " +
		"(SELECT COUNT(*) FROM export_files f WHERE f.tenant_id = e.tenant_id AND f.export_id = e.export_id AND f.done), " +
		"(SELECT COALESCE(SUM(f.size), 0) FROM export_files f WHERE f.tenant_id = e.tenant_id AND f.export_id = e.export_id)"
	insertExportSQL = "INSERT INTO exports (tenant_id, export_id, state, requested_by, created_at) VALUES (?, ?, ?, ?, ?)"
	getExportSQL    = "SELECT " + exportColumns + " FROM exports e WHERE e.tenant_id = ? AND e.export_id = ?"
	findExportSQL   = "SELECT " + exportColumns + " FROM exports e WHERE e.export_id = ?"
	listExportsSQL  = "SELECT " + exportColumns + " FROM exports e WHERE e.tenant_id = ? AND (? = '' OR e.export_id < ?) ORDER BY e.export_id DESC LIMIT ?"
	updateExportSQL = `UPDATE exports SET state = COALESCE(NULLIF(?, ''), state), current_file = COALESCE(?, current_file),
		error = COALESCE(?, error), manifest_sha256 = COALESCE(?, manifest_sha256), finished_at = COALESCE(?, finished_at)
		WHERE tenant_id = ? AND export_id = ?`
	fileColumns  = "seq, name, size, row_count, sha256, done, hash_state, resume_cursor"
	listFilesSQL = "SELECT " + fileColumns + " FROM export_files WHERE tenant_id = ? AND export_id = ? ORDER BY seq"
	upsertFile   = "INSERT INTO export_files (tenant_id, export_id, " + fileColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (tenant_id, export_id, seq) DO UPDATE SET size = excluded.size, row_count = excluded.row_count,
		sha256 = excluded.sha256, done = excluded.done, hash_state = excluded.hash_state, resume_cursor = excluded.resume_cursor`
	fileSizeSQL     = "SELECT size FROM export_files WHERE tenant_id = ? AND export_id = ? AND seq = ?"
	deleteChunksSQL = "DELETE FROM export_chunks WHERE tenant_id = ? AND export_id = ? AND file_seq = ?"
	nextChunkSQL    = "SELECT COALESCE(MAX(seq), -1) + 1 FROM export_chunks WHERE tenant_id = ? AND export_id = ? AND file_seq = ?"
	insertChunkSQL  = "INSERT INTO export_chunks (tenant_id, export_id, file_seq, seq, data) VALUES (?, ?, ?, ?, ?)"
	readChunkSQL    = "SELECT seq, data FROM export_chunks WHERE tenant_id = ? AND export_id = ? AND file_seq = ? AND seq > ? ORDER BY seq LIMIT 1"

	erasureColumns = "tenant_id, erasure_id, state, reason, requested_by, export_id, export_skipped, pseudonym, progress, created_at, finished_at"
	insertErasure  = "INSERT INTO erasures (" + erasureColumns + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL) ON CONFLICT (tenant_id) DO NOTHING"
	getErasureSQL  = "SELECT " + erasureColumns + " FROM erasures WHERE tenant_id = ?"
	findErasureSQL = "SELECT " + erasureColumns + " FROM erasures WHERE erasure_id = ?"
	progressSQL    = "UPDATE erasures SET progress = ? WHERE tenant_id = ? AND erasure_id = ?"
	finishSQL      = "UPDATE erasures SET progress = ?, state = ?, finished_at = COALESCE(finished_at, ?) WHERE tenant_id = ? AND erasure_id = ?"
	pendingSQL     = "SELECT COUNT(*) FROM outbox WHERE tenant_id = ? AND delivered_at IS NULL AND dead_at IS NULL"
)

// CreateExport inserts a new export.
func (s *Store) CreateExport(ctx context.Context, e domain.Export) error {
	err := s.db.InTenantTx(ctx, e.TenantID, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.db.Rebind(insertExportSQL), e.TenantID, e.ID, string(e.State), e.RequestedBy, e.CreatedAt)
		return err
	})
	if err != nil {
		return fmt.Errorf("create export: %w", err)
	}
	return nil
}

// GetExport reads one export of tenant.
func (s *Store) GetExport(ctx context.Context, tenant, id string) (domain.Export, error) {
	v, err := readRow(ctx, s, tenant, getExportSQL, []any{tenant, id}, scanExport)
	if err != nil {
		return domain.Export{}, fmt.Errorf("get export: %w", err)
	}
	return v, nil
}

// FindExport reads an export by its unique id, across tenants.
func (s *Store) FindExport(ctx context.Context, id string) (domain.Export, error) {
	v, err := readRow(ctx, s, "", findExportSQL, []any{id}, scanExport)
	if err != nil {
		return domain.Export{}, fmt.Errorf("find export: %w", err)
	}
	return v, nil
}

// ListExports pages by export id descending (ULIDs: newest first).
func (s *Store) ListExports(ctx context.Context, tenant, beforeID string, limit int) ([]domain.Export, error) {
	if limit < 1 {
		return nil, fmt.Errorf("list exports: limit %d, want at least 1", limit)
	}
	var out []domain.Export
	err := s.db.InTenantReadTx(ctx, tenant, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, s.db.Rebind(listExportsSQL), tenant, beforeID, beforeID, limit)
		out, err = pstore.All(rows, err, func(rows *sql.Rows) (domain.Export, error) { return scanExport(rows) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list exports: %w", err)
	}
	return out, nil
}

// UpdateExport sets what u names.
func (s *Store) UpdateExport(ctx context.Context, tenant, id string, u domain.ExportUpdate) error {
	err := s.db.InTenantTx(ctx, tenant, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.db.Rebind(updateExportSQL), string(u.State), nullString(u.CurrentFile),
			nullString(u.Error), nullString(u.ManifestSHA256), pstore.NullTime(u.FinishedAt), tenant, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("update export: %w", err)
	}
	return nil
}

// ExportFiles lists the export's files in archive order.
func (s *Store) ExportFiles(ctx context.Context, tenant, id string) ([]domain.ExportFile, error) {
	var out []domain.ExportFile
	err := s.db.InTenantReadTx(ctx, tenant, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, s.db.Rebind(listFilesSQL), tenant, id)
		out, err = pstore.All(rows, err, func(rows *sql.Rows) (f domain.ExportFile, err error) {
			return f, rows.Scan(&f.Seq, &f.Name, &f.Size, &f.Rows, &f.SHA256, &f.Done, &f.HashState, &f.Cursor)
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("export files: %w", err)
	}
	return out, nil
}

// PutExportFile writes f and appends chunks in one transaction, so the
// file's size, hash state and cursor always describe exactly the stored
// chunks.
func (s *Store) PutExportFile(ctx context.Context, tenant, id string, f domain.ExportFile, chunks [][]byte, reset bool) error {
	err := s.db.InTenantTx(ctx, tenant, func(tx *sql.Tx) error {
		if reset {
			if _, err := tx.ExecContext(ctx, s.db.Rebind(deleteChunksSQL), tenant, id, f.Seq); err != nil {
				return err
			}
		} else if err := s.checkContinues(ctx, tx, tenant, id, f, chunks); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.db.Rebind(upsertFile), tenant, id, f.Seq, f.Name, f.Size, f.Rows, f.SHA256,
			f.Done, f.HashState, f.Cursor); err != nil {
			return err
		}
		if len(chunks) == 0 {
			return nil
		}
		var next int
		if err := tx.QueryRowContext(ctx, s.db.Rebind(nextChunkSQL), tenant, id, f.Seq).Scan(&next); err != nil {
			return err
		}
		for i, c := range chunks {
			if len(c) > domain.MaxChunk {
				return fmt.Errorf("chunk of %d bytes, the limit is %d", len(c), domain.MaxChunk)
			}
			if _, err := tx.ExecContext(ctx, s.db.Rebind(insertChunkSQL), tenant, id, f.Seq, next+i, c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("put export file %q: %w", f.Name, err)
	}
	return nil
}

// checkContinues refuses chunks that do not continue the stored file
// exactly: a second worker (whose lease expired unnoticed) wrote to it.
func (s *Store) checkContinues(ctx context.Context, tx *sql.Tx, tenant, id string, f domain.ExportFile, chunks [][]byte) error {
	lock := ""
	if s.db.Dialect == pstore.Postgres {
		lock = " FOR UPDATE"
	}
	var stored int64
	err := tx.QueryRowContext(ctx, s.db.Rebind(fileSizeSQL+lock), tenant, id, f.Seq).Scan(&stored)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	added := int64(0)
	for _, c := range chunks {
		added += int64(len(c))
	}
	if stored != f.Size-added {
		return fmt.Errorf("%w: %d bytes stored, the writer expected %d", domain.ErrExportFileChanged, stored, f.Size-added)
	}
	return nil
}

// ReadExportFile reads one chunk per transaction, so a slow reader holds
// neither more than a chunk in memory nor a transaction open.
func (s *Store) ReadExportFile(ctx context.Context, tenant, id string, seq int, fn func([]byte) error) error {
	after := -1
	for {
		var data []byte
		found := false
		err := s.db.InTenantReadTx(ctx, tenant, func(tx *sql.Tx) error {
			err := tx.QueryRowContext(ctx, s.db.Rebind(readChunkSQL), tenant, id, seq, after).Scan(&after, &data)
			if errors.Is(err, sql.ErrNoRows) {
				return nil
			}
			found = err == nil
			return err
		})
		if err != nil {
			return fmt.Errorf("read export file: %w", err)
		}
		if !found {
			return nil
		}
		if err := fn(data); err != nil {
			return err
		}
	}
}

// Offboard changes the state and inserts the erasure (unless the tenant has
// one) in one transaction.
func (s *Store) Offboard(ctx context.Context, e domain.Erasure, ch domain.StateChange) (domain.Tenant, error) {
	progress, err := json.Marshal(e.Services)
	if err != nil {
		return domain.Tenant{}, fmt.Errorf("offboard: %w", err)
	}
	var t domain.Tenant
	err = s.db.InTenantTx(ctx, e.TenantID, func(tx *sql.Tx) (err error) {
		if t, _, err = s.changeState(ctx, tx, e.TenantID, ch); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, s.db.Rebind(insertErasure), e.TenantID, e.ID, string(e.State), e.Reason, e.RequestedBy,
			e.ExportID, e.ExportSkipped, e.Pseudonym, string(progress), e.CreatedAt)
		return err
	})
	if err != nil {
		return domain.Tenant{}, fmt.Errorf("offboard %q: %w", e.TenantID, err)
	}
	return t, nil
}

// GetErasure reads a tenant's erasure.
func (s *Store) GetErasure(ctx context.Context, tenant string) (domain.Erasure, error) {
	v, err := readRow(ctx, s, tenant, getErasureSQL, []any{tenant}, scanErasure)
	if err != nil {
		return domain.Erasure{}, fmt.Errorf("get erasure: %w", err)
	}
	return v, nil
}

// FindErasure reads an erasure by its unique id, across tenants.
func (s *Store) FindErasure(ctx context.Context, id string) (domain.Erasure, error) {
	v, err := readRow(ctx, s, "", findErasureSQL, []any{id}, scanErasure)
	if err != nil {
		return domain.Erasure{}, fmt.Errorf("find erasure: %w", err)
	}
	return v, nil
}

// SaveErasureProgress stores e's services.
func (s *Store) SaveErasureProgress(ctx context.Context, e domain.Erasure) error {
	progress, err := json.Marshal(e.Services)
	if err != nil {
		return fmt.Errorf("save erasure progress: %w", err)
	}
	err = s.db.InTenantTx(ctx, e.TenantID, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.db.Rebind(progressSQL), string(progress), e.TenantID, e.ID)
		return err
	})
	if err != nil {
		return fmt.Errorf("save erasure progress: %w", err)
	}
	return nil
}

// FinishErasure marks the erasure done and changes the tenant's state.
func (s *Store) FinishErasure(ctx context.Context, e domain.Erasure, at time.Time, ch domain.StateChange) (domain.Tenant, error) {
	progress, err := json.Marshal(e.Services)
	if err != nil {
		return domain.Tenant{}, fmt.Errorf("finish erasure: %w", err)
	}
	var t domain.Tenant
	err = s.db.InTenantTx(ctx, e.TenantID, func(tx *sql.Tx) (err error) {
		if _, err := tx.ExecContext(ctx, s.db.Rebind(finishSQL), string(progress), string(domain.ErasureDone), at, e.TenantID, e.ID); err != nil {
			return err
		}
		t, _, err = s.changeState(ctx, tx, e.TenantID, ch)
		return err
	})
	if err != nil {
		return domain.Tenant{}, fmt.Errorf("finish erasure of %q: %w", e.TenantID, err)
	}
	return t, nil
}

// PendingEvents counts the tenant's undelivered, live outbox events (the
// outbox has no row-level security).
func (s *Store) PendingEvents(ctx context.Context, tenant string) (int, error) {
	var n int
	err := s.db.InTenantReadTx(ctx, tenant, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, s.db.Rebind(pendingSQL), tenant).Scan(&n)
	})
	if err != nil {
		return 0, fmt.Errorf("pending events: %w", err)
	}
	return n, nil
}

func scanExport(row scanner) (domain.Export, error) {
	var e domain.Export
	var finished sql.NullTime
	err := row.Scan(&e.TenantID, &e.ID, &e.State, &e.RequestedBy, &e.CreatedAt, &finished, &e.CurrentFile, &e.Error,
		&e.ManifestSHA256, &e.Files, &e.SizeBytes)
	if errors.Is(err, sql.ErrNoRows) {
		return domain.Export{}, domain.ErrNotFound
	}
	e.CreatedAt = e.CreatedAt.UTC()
	if finished.Valid {
		e.FinishedAt = finished.Time.UTC()
	}
	return e, err
}

func scanErasure(row scanner) (domain.Erasure, error) {
	var e domain.Erasure
	var finished sql.NullTime
	var progress string
	err := row.Scan(&e.TenantID, &e.ID, &e.State, &e.Reason, &e.RequestedBy, &e.ExportID, &e.ExportSkipped, &e.Pseudonym,
		&progress, &e.CreatedAt, &finished)
	if errors.Is(err, sql.ErrNoRows) {
		return domain.Erasure{}, domain.ErrNotFound
	}
	if err != nil {
		return domain.Erasure{}, err
	}
	e.CreatedAt = e.CreatedAt.UTC()
	if finished.Valid {
		e.FinishedAt = finished.Time.UTC()
	}
	if err := json.Unmarshal([]byte(progress), &e.Services); err != nil {
		return domain.Erasure{}, fmt.Errorf("erasure progress: %w", err)
	}
	return e, nil
}

// ErasedTenants reads every erasure (one row per offboarded tenant).
func (s *Store) ErasedTenants(ctx context.Context) (map[string]string, error) {
	var es []domain.Erasure
	err := s.db.InAllTenantsReadTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, "SELECT "+erasureColumns+" FROM erasures")
		es, err = pstore.All(rows, err, func(rows *sql.Rows) (domain.Erasure, error) { return scanErasure(rows) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("erased tenants: %w", err)
	}
	out := make(map[string]string, len(es))
	for _, e := range es {
		if e.ReachedTenancy() {
			out[e.TenantID] = e.Pseudonym
		}
	}
	return out, nil
}

// PseudonymiseTargets replaces tenant id as the target of every other
// tenant's decisions by pseudonym, tenant by tenant (row-level security
// lets a transaction change only its own tenant's rows).
func (s *Store) PseudonymiseTargets(ctx context.Context, id, pseudonym string) (int64, error) {
	var tenants []string
	err := s.db.InAllTenantsReadTx(ctx, func(tx *sql.Tx) (err error) {
		tenants, err = pstore.Strings(tx.QueryContext(ctx, s.db.Rebind(
			"SELECT DISTINCT tenant_id FROM decisions WHERE target_tenant_id = ? AND tenant_id <> ?"), id, id))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("pseudonymise targets: %w", err)
	}
	var changed int64
	for _, t := range tenants {
		err := s.db.InTenantTx(ctx, t, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, s.db.Rebind(
				"UPDATE decisions SET target_tenant_id = ? WHERE tenant_id = ? AND target_tenant_id = ?"), pseudonym, t, id)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			changed += n
			return err
		})
		if err != nil {
			return changed, fmt.Errorf("pseudonymise targets in %q: %w", t, err)
		}
	}
	return changed, nil
}

// readRow reads one row of query with scan, in tenant's read scope or
// across tenants (by a unique id) for "".
func readRow[T any](ctx context.Context, s *Store, tenant, query string, args []any, scan func(scanner) (T, error)) (T, error) {
	var v T
	fn := func(tx *sql.Tx) (err error) {
		v, err = scan(tx.QueryRowContext(ctx, s.db.Rebind(query), args...))
		return err
	}
	if tenant == "" {
		return v, s.db.InAllTenantsReadTx(ctx, fn)
	}
	return v, s.db.InTenantReadTx(ctx, tenant, fn)
}

// scanner is a row to scan (*sql.Row or *sql.Rows).
type scanner interface{ Scan(...any) error }

// nullString is NULL for nil (COALESCE keeps the column).
func nullString(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}
