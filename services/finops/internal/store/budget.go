package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/echopilot/echopilot/platform/outbox"
	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/services/finops/internal/domain"
)

// Budgets and alerts are tenant data: each write is scoped to its tenant
// (row-level security on PostgreSQL); the evaluator reads every budget,
// and a platform admin every alert, in an all-tenants read.

// GetBudget implements domain.Store.
func (s *Store) GetBudget(ctx context.Context, tenant string) (domain.Budget, error) {
	var b domain.Budget
	err := s.db.InTenantReadTx(ctx, tenant, func(tx *sql.Tx) error {
		rows, err := s.stmts.Query(ctx, tx, s.db.Rebind(
			"SELECT tenant_id, amount_micros, thresholds_pct, updated_at FROM budgets WHERE tenant_id = ?"), tenant)
		all, err := pstore.All(rows, err, scanBudget)
		if err != nil {
			return err
		}
		if len(all) == 0 {
			return domain.ErrBudgetNotFound
		}
		b = all[0]
		return nil
	})
	if errors.Is(err, domain.ErrBudgetNotFound) {
		return domain.Budget{}, err
	}
	if err != nil {
		return domain.Budget{}, fmt.Errorf("get budget: %w", err)
	}
	return b, nil
}

// PutBudget implements domain.Store.
func (s *Store) PutBudget(ctx context.Context, b domain.Budget) error {
	ts := make([]string, len(b.ThresholdsPct))
	for i, t := range b.ThresholdsPct {
		ts[i] = strconv.Itoa(int(t))
	}
	err := s.db.InTenantTx(ctx, b.TenantID, func(tx *sql.Tx) error {
		_, err := s.stmts.Exec(ctx, tx, s.db.Rebind(`INSERT INTO budgets (tenant_id, amount_micros, thresholds_pct, updated_at)
			VALUES (?, ?, ?, ?) ON CONFLICT (tenant_id) DO UPDATE SET amount_micros = excluded.amount_micros,
			thresholds_pct = excluded.thresholds_pct, updated_at = excluded.updated_at`),
			b.TenantID, b.AmountMicros, strings.Join(ts, ","), b.UpdatedAt)
		return err
	})
	if err != nil {
		return fmt.Errorf("put budget: %w", err)
	}
	return nil
}

// DeleteBudget implements domain.Store.
func (s *Store) DeleteBudget(ctx context.Context, tenant string) (bool, error) {
	n, err := s.execCount(ctx, tenant, s.db.Rebind("DELETE FROM budgets WHERE tenant_id = ?"), tenant)
	if err != nil {
		return false, fmt.Errorf("delete budget: %w", err)
	}
	return n > 0, nil
}

// Budgets implements domain.Store.
func (s *Store) Budgets(ctx context.Context) ([]domain.Budget, error) {
	var out []domain.Budget
	err := s.db.InAllTenantsReadTx(ctx, func(tx *sql.Tx) error {
		rows, err := s.stmts.Query(ctx, tx,
			"SELECT tenant_id, amount_micros, thresholds_pct, updated_at FROM budgets ORDER BY tenant_id")
		out, err = pstore.All(rows, err, scanBudget)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("budgets: %w", err)
	}
	return out, nil
}

func scanBudget(rows *sql.Rows) (b domain.Budget, err error) {
	var ts string
	if err := rows.Scan(&b.TenantID, &b.AmountMicros, &ts, &b.UpdatedAt); err != nil {
		return b, err
	}
	b.UpdatedAt = b.UpdatedAt.UTC()
	for _, f := range strings.Split(ts, ",") {
		t, err := strconv.ParseInt(f, 10, 32)
		if err != nil {
			return b, fmt.Errorf("budget of %s: threshold %q: %w", b.TenantID, f, err)
		}
		b.ThresholdsPct = append(b.ThresholdsPct, int32(t))
	}
	return b, nil
}

// RecordAlert implements domain.Store: the unique alert_key makes a second
// insert, concurrent or later, a no-op. A new alert writes its TopicAlert
// outbox event in the same transaction.
func (s *Store) RecordAlert(ctx context.Context, a domain.Alert) (bool, error) {
	payload, err := json.Marshal(a.Payload())
	if err != nil {
		return false, fmt.Errorf("record alert: %w", err)
	}
	var n int64
	err = s.db.InTenantTx(ctx, a.TenantID, func(tx *sql.Tx) error {
		res, err := s.stmts.Exec(ctx, tx, s.db.Rebind(`INSERT INTO finops_alerts (alert_key, tenant_id, kind, metric, period,
				threshold_pct, value, reference, message, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (alert_key) DO NOTHING`),
			a.Key, a.TenantID, a.Kind, a.Metric, a.Period, a.ThresholdPct, a.Value, a.Reference, a.Message, a.CreatedAt)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		_, err = outbox.Add(ctx, tx, s.db.Dialect, outbox.Event{Topic: domain.TopicAlert, Key: a.Key, TenantID: a.TenantID, Payload: payload})
		return err
	})
	if err != nil {
		return false, fmt.Errorf("record alert: %w", err)
	}
	return n > 0, nil
}

// Alerts implements domain.Store.
func (s *Store) Alerts(ctx context.Context, scope domain.Scope, before int64, limit int) ([]domain.Alert, error) {
	if limit < 1 {
		return nil, fmt.Errorf("alerts: limit %d, want at least 1", limit)
	}
	if before <= 0 {
		before = 1<<63 - 1
	}
	q := `SELECT id, alert_key, tenant_id, kind, metric, period, threshold_pct, value, reference, message, created_at
		FROM finops_alerts WHERE id < ?`
	args := []any{before}
	if !scope.All {
		q += " AND tenant_id = ?"
		args = append(args, scope.Tenant)
	}
	q += " ORDER BY id DESC LIMIT ?"
	args = append(args, limit)
	var out []domain.Alert
	read := func(tx *sql.Tx) error {
		rows, err := s.stmts.Query(ctx, tx, s.db.Rebind(q), args...)
		out, err = pstore.All(rows, err, func(rows *sql.Rows) (a domain.Alert, err error) {
			err = rows.Scan(&a.ID, &a.Key, &a.TenantID, &a.Kind, &a.Metric, &a.Period, &a.ThresholdPct,
				&a.Value, &a.Reference, &a.Message, &a.CreatedAt)
			a.CreatedAt = a.CreatedAt.UTC()
			return a, err
		})
		return err
	}
	var err error
	if scope.All {
		err = s.db.InAllTenantsReadTx(ctx, read)
	} else {
		err = s.db.InTenantReadTx(ctx, scope.Tenant, read)
	}
	if err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	return out, nil
}

// execCount runs one statement in a transaction scoped to tenant and
// returns the rows it changed.
func (s *Store) execCount(ctx context.Context, tenant, query string, args ...any) (int64, error) {
	var n int64
	err := s.db.InTenantTx(ctx, tenant, func(tx *sql.Tx) error {
		res, err := s.stmts.Exec(ctx, tx, query, args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}
