package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/echopilot/echopilot/services/queue/internal/domain"
)

// The worker registry's statements, the same on both databases (rebound
// into Store.q).
const (
	touchWorkerSQL = `UPDATE workers SET version = ?, host = ?, concurrency = ?, last_seen = ?
		WHERE tenant_id = ? AND worker_id = ?`
	countTenantWorkersSQL = "SELECT count(*) FROM workers WHERE tenant_id = ?"
	// A racer may have inserted the worker since the UPDATE: it updates.
	insertWorkerSQL = `INSERT INTO workers (tenant_id, worker_id, version, host, concurrency, first_seen, last_seen)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (tenant_id, worker_id) DO UPDATE SET version = excluded.version, host = excluded.host,
			concurrency = excluded.concurrency, last_seen = excluded.last_seen`
	// The page of workers, each with its processing jobs counted in one
	// pass over the tenant's processing jobs (through jobs_state): an index
	// by worker would cost every claim and completion a write.
	listWorkersSQL = `
		WITH w AS MATERIALIZED (
			SELECT worker_id, version, host, concurrency, first_seen, last_seen FROM workers
			WHERE tenant_id = ? AND worker_id > ? ORDER BY worker_id LIMIT ?),
		h AS (
			SELECT worker_id AS held_by, count(*) AS n FROM jobs
			WHERE tenant_id = ? AND state = 'processing' AND worker_id IN (SELECT worker_id FROM w)
			GROUP BY worker_id)
		SELECT w.worker_id, w.version, w.host, w.concurrency, w.first_seen, w.last_seen, COALESCE(h.n, 0)
		FROM w LEFT JOIN h ON h.held_by = w.worker_id
		ORDER BY w.worker_id`
	countWorkersSQL  = `SELECT count(*), COALESCE(sum(CASE WHEN last_seen < ? THEN 1 ELSE 0 END), 0) FROM workers`
	deleteWorkersSQL = `DELETE FROM workers WHERE tenant_id = ? AND worker_id IN (
		SELECT worker_id FROM workers WHERE tenant_id = ? AND last_seen < ? LIMIT ?)`
)

// SeeWorker updates the worker's row, or inserts it when the tenant is
// below its limit. Counting the tenant's workers costs only a new worker's
// registration.
func (s *Store) SeeWorker(ctx context.Context, w domain.WorkerSeen) error {
	err := s.db.InTenantTx(ctx, w.TenantID, func(tx *sql.Tx) error {
		res, err := s.stmts.Exec(ctx, tx, s.q.touchWorker,
			w.Info.Version, w.Info.Host, w.Info.Concurrency, w.Now, w.TenantID, w.WorkerID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n > 0 {
			return err
		}
		var registered int
		if err := s.stmts.QueryRow(ctx, tx, s.q.countTenantWorkers, w.TenantID).Scan(&registered); err != nil {
			return err
		}
		if registered >= w.Limit {
			return domain.ErrWorkerLimit
		}
		_, err = s.stmts.Exec(ctx, tx, s.q.insertWorker,
			w.TenantID, w.WorkerID, w.Info.Version, w.Info.Host, w.Info.Concurrency, w.Now, w.Now)
		return err
	})
	if err != nil {
		return fmt.Errorf("see worker %q: %w", w.WorkerID, err)
	}
	return nil
}

// ListWorkers pages by worker id, keyset style.
func (s *Store) ListWorkers(ctx context.Context, f domain.WorkerFilter) ([]domain.Worker, error) {
	if f.Limit < 1 {
		return nil, fmt.Errorf("list workers: limit %d, want at least 1", f.Limit)
	}
	var workers []domain.Worker
	err := s.db.InTenantSnapshotTx(ctx, f.TenantID, func(tx *sql.Tx) error {
		rows, err := s.stmts.Query(ctx, tx, s.q.listWorkers, f.TenantID, f.AfterID, f.Limit, f.TenantID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			w := domain.Worker{TenantID: f.TenantID}
			err := rows.Scan(&w.ID, &w.Info.Version, &w.Info.Host, &w.Info.Concurrency, &w.FirstSeen, &w.LastSeen, &w.LeasesHeld)
			if err != nil {
				return err
			}
			workers = append(workers, w)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list workers: %w", err)
	}
	return workers, nil
}

// CountWorkers reads across tenants.
func (s *Store) CountWorkers(ctx context.Context, staleBefore time.Time) (domain.WorkerCounts, error) {
	var total, stale int64
	err := s.db.InAllTenantsReadTx(ctx, func(tx *sql.Tx) error {
		return s.stmts.QueryRow(ctx, tx, s.q.countWorkers, staleBefore).Scan(&total, &stale)
	})
	if err != nil {
		return domain.WorkerCounts{}, fmt.Errorf("count workers: %w", err)
	}
	return domain.WorkerCounts{Fresh: total - stale, Stale: stale}, nil
}

// DeleteWorkers deletes tenant by tenant, like DeleteFinished.
func (s *Store) DeleteWorkers(ctx context.Context, before time.Time) (int64, error) {
	tenants, err := s.tenants(ctx, "SELECT DISTINCT tenant_id FROM workers WHERE last_seen < ? ORDER BY tenant_id", before)
	if err != nil {
		return 0, fmt.Errorf("delete workers: list tenants: %w", err)
	}
	var deleted int64
	for _, tenant := range tenants {
		for {
			var n int64
			err := s.db.InTenantTx(ctx, tenant, func(tx *sql.Tx) error {
				res, err := s.stmts.Exec(ctx, tx, s.q.deleteWorkers, tenant, tenant, before, deleteBatch)
				if err != nil {
					return err
				}
				n, err = res.RowsAffected()
				return err
			})
			if err != nil {
				return deleted, fmt.Errorf("delete workers of %q: %w", tenant, err)
			}
			deleted += n
			if n < deleteBatch {
				break
			}
		}
	}
	return deleted, nil
}
