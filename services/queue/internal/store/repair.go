package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/services/queue/internal/domain"
)

// Operator repairs (retry, delete, bulk changes), attempt history and
// paused job types. Lists of job ids go as one parameter (listParam), so
// each statement has one text whatever the number of jobs.

// listParam returns the condition that column is one of vals, with its one
// argument: a text array on PostgreSQL, a JSON array on SQLite.
func listParam(d pstore.Dialect, column string, vals []string) (string, any) {
	if d == pstore.Postgres {
		return column + " = ANY(CAST(? AS text[]))", vals
	}
	b, _ := json.Marshal(vals) // strings always encode
	return column + " IN (SELECT value FROM json_each(?))", string(b)
}

func statusNames(sts []domain.Status) []string {
	out := make([]string, len(sts))
	for i, st := range sts {
		out[i] = string(st)
	}
	return out
}

// Repair applies r in one transaction of its tenant.
func (s *Store) Repair(ctx context.Context, r domain.Repair) (domain.RepairResult, error) {
	var res domain.RepairResult
	err := s.db.InTenantTx(ctx, r.TenantID, func(tx *sql.Tx) error {
		res = domain.RepairResult{}
		var ids []string
		if r.JobID != "" {
			j, err := s.get(ctx, tx, s.q.getForUpdate, r.TenantID, r.JobID)
			if err != nil {
				return err
			}
			res.Job = j
			if !slices.Contains(r.Action.Statuses(), j.Status) {
				return domain.ErrConflict
			}
			res.Matched, ids = 1, []string{j.ID}
		} else {
			where, args := s.repairWhere(r)
			if err := tx.QueryRowContext(ctx, s.db.Rebind("SELECT count(*) FROM jobs WHERE "+where), args...).Scan(&res.Matched); err != nil {
				return err
			}
			if r.DryRun || res.Matched == 0 {
				return nil
			}
			// No order: each change moves the jobs out of the filter's
			// statuses, so the next call finds the rest; locked jobs (a
			// worker completing them) are left for it.
			var err error
			ids, err = pstore.Strings(tx.QueryContext(ctx,
				s.db.Rebind("SELECT id FROM jobs WHERE "+where+" LIMIT ?"+s.skipLocked), append(args, r.Limit)...))
			if err != nil {
				return err
			}
		}
		changed, err := s.apply(ctx, tx, r, ids)
		if err != nil {
			return err
		}
		res.Affected = int64(len(changed))
		if r.JobID != "" && r.Action != domain.ActionDelete {
			res.Job, err = s.get(ctx, tx, s.q.get, r.TenantID, r.JobID)
		}
		return err
	})
	if err != nil {
		return res, fmt.Errorf("%s jobs of %q: %w", r.Action, r.TenantID, err)
	}
	if r.Action == domain.ActionRetry && res.Affected > 0 && s.announcer != nil {
		s.announcer.announce(map[string]bool{r.TenantID: true})
	}
	return res, nil
}

// repairWhere is the condition of a filter repair, with its arguments.
func (s *Store) repairWhere(r domain.Repair) (string, []any) {
	// The action's statuses bound the filter's, whatever the caller sent.
	sts := slices.DeleteFunc(slices.Clone(r.Filter.Statuses), func(st domain.Status) bool {
		return !slices.Contains(r.Action.Statuses(), st)
	})
	states, arg := listParam(s.db.Dialect, "state", statusNames(sts))
	where, args := "tenant_id = ? AND "+states, []any{r.TenantID, arg}
	f := r.Filter
	if f.Type != "" {
		where, args = where+" AND type = ?", append(args, f.Type)
	}
	if f.HasPriority {
		where, args = where+" AND prio = ?", append(args, int64(f.Priority))
	}
	if !f.CreatedAfter.IsZero() {
		where, args = where+" AND created_at >= ?", append(args, f.CreatedAfter.UTC())
	}
	if !f.CreatedBefore.IsZero() {
		where, args = where+" AND created_at < ?", append(args, f.CreatedBefore.UTC())
	}
	return where, args
}

// apply changes the jobs ids that are still in one of r.Action's statuses
// and returns the ids it changed.
func (s *Store) apply(ctx context.Context, tx *sql.Tx, r domain.Repair, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	in, idsArg := listParam(s.db.Dialect, "id", ids)
	states, statesArg := listParam(s.db.Dialect, "state", statusNames(r.Action.Statuses()))
	where := " WHERE tenant_id = ? AND " + in + " AND " + states + " RETURNING id"
	var (
		query string
		args  []any
	)
	switch r.Action {
	case domain.ActionCancel:
		// A running attempt ends cancelled; the row's state is the old one
		// on the right-hand sides.
		query = `UPDATE jobs SET state = 'cancelled', lease_expires_at = NULL, cancelled_by = ?, updated_at = ?,
			attempt_ended_at = CASE WHEN state = 'processing' THEN ? ELSE attempt_ended_at END,
			attempt_outcome = CASE WHEN state = 'processing' THEN 'cancelled' ELSE attempt_outcome END` + where
		args = []any{r.Actor, r.Now, r.Now}
	case domain.ActionRetry:
		query = `UPDATE jobs SET state = 'queued', run_at = ?, lease_expires_at = NULL, retried_by = ?, retried_at = ?,
			updated_at = ?` + where
		args = []any{r.Now, r.Actor, r.Now, r.Now}
	case domain.ActionDelete:
		query = "DELETE FROM jobs" + where
	default:
		return nil, fmt.Errorf("unknown action %q", r.Action)
	}
	return pstore.Strings(s.stmts.Query(ctx, tx, s.db.Rebind(query), append(args, r.TenantID, idsArg, statesArg)...))
}

// PauseType records a pause unless the type is paused already.
func (s *Store) PauseType(ctx context.Context, p domain.PausedType, limit int) (domain.PausedType, error) {
	var out domain.PausedType
	err := s.db.InTenantTx(ctx, p.TenantID, func(tx *sql.Tx) error {
		var err error
		out, err = s.pausedType(ctx, tx, p.TenantID, p.Type)
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		var n int
		if err := s.stmts.QueryRow(ctx, tx, s.db.Rebind("SELECT count(*) FROM paused_job_types WHERE tenant_id = ?"), p.TenantID).Scan(&n); err != nil {
			return err
		}
		if n >= limit {
			return domain.ErrPausedLimit
		}
		// A racing pause of the same type wins; this one reads it back.
		if _, err := s.stmts.Exec(ctx, tx, s.db.Rebind(`
			INSERT INTO paused_job_types (tenant_id, job_type, paused_at, paused_by) VALUES (?, ?, ?, ?)
			ON CONFLICT (tenant_id, job_type) DO NOTHING`), p.TenantID, p.Type, p.PausedAt, p.PausedBy); err != nil {
			return err
		}
		out, err = s.pausedType(ctx, tx, p.TenantID, p.Type)
		return err
	})
	if err != nil {
		return domain.PausedType{}, fmt.Errorf("pause %q of %q: %w", p.Type, p.TenantID, err)
	}
	return out, nil
}

const pausedColumns = "tenant_id, job_type, paused_at, paused_by"

func scanPaused(row scanner) (domain.PausedType, error) {
	var p domain.PausedType
	err := row.Scan(&p.TenantID, &p.Type, &p.PausedAt, &p.PausedBy)
	return p, err
}

func (s *Store) pausedType(ctx context.Context, tx *sql.Tx, tenant, typ string) (domain.PausedType, error) {
	return scanPaused(s.stmts.QueryRow(ctx, tx,
		s.db.Rebind("SELECT "+pausedColumns+" FROM paused_job_types WHERE tenant_id = ? AND job_type = ?"), tenant, typ))
}

// ResumeType deletes a pause.
func (s *Store) ResumeType(ctx context.Context, tenant, typ string) (bool, error) {
	var n int64
	err := s.db.InTenantTx(ctx, tenant, func(tx *sql.Tx) error {
		res, err := s.stmts.Exec(ctx, tx, s.db.Rebind("DELETE FROM paused_job_types WHERE tenant_id = ? AND job_type = ?"), tenant, typ)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("resume %q of %q: %w", typ, tenant, err)
	}
	if n > 0 && s.announcer != nil {
		s.announcer.announce(map[string]bool{tenant: true})
	}
	return n > 0, nil
}

// ListPausedTypes reads the tenant's pauses by type, in one round trip
// on PostgreSQL (ReadScoped): the queue's status reads it every time.
func (s *Store) ListPausedTypes(ctx context.Context, tenant, after string, limit int) ([]domain.PausedType, error) {
	out, err := pstore.ReadAll(ctx, s.stmts, tenant, false,
		"SELECT "+pausedColumns+" FROM paused_job_types WHERE tenant_id = ? AND job_type > ? ORDER BY job_type LIMIT ?",
		[]any{tenant, after, limit}, func(rows pstore.Rows) (domain.PausedType, error) { return scanPaused(rows) })
	if err != nil {
		return nil, fmt.Errorf("list paused types of %q: %w", tenant, err)
	}
	return out, nil
}
