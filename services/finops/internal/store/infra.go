package store

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"time"

	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/services/finops/internal/domain"
)

// ImportInfra implements domain.Store. Each tenant charged gets a rollup
// row (all zeros when it had none) and each day a daily_totals row, as the
// report queries read imported costs through the rollups (see allocs).
func (s *Store) ImportInfra(ctx context.Context, source string, days []int64, costs []domain.InfraCost) error {
	covered := make(map[int64]bool, len(days))
	for _, d := range days {
		covered[d] = true
	}
	byTenant := make(map[string][]int64) // tenant → days charged
	for _, c := range costs {
		if !covered[c.Day] {
			return fmt.Errorf("import infra: cost of day %d outside the days imported", c.Day)
		}
		if c.TenantID != "" {
			byTenant[c.TenantID] = append(byTenant[c.TenantID], c.Day)
		}
	}
	r := s.db.Rebind
	now := time.Now().UTC()
	err := s.db.InWriteTx(ctx, func(tx *sql.Tx) error {
		for _, day := range slices.Sorted(maps.Keys(covered)) {
			for _, q := range []string{"DELETE FROM infra_costs WHERE day = ?", "DELETE FROM infra_days WHERE day = ?"} {
				if _, err := s.stmts.Exec(ctx, tx, r(q), day); err != nil {
					return err
				}
			}
			if _, err := s.stmts.Exec(ctx, tx, r("INSERT INTO infra_days (day, source, imported_at) VALUES (?, ?, ?)"), day, source, now); err != nil {
				return err
			}
		}
		ins := r("INSERT INTO infra_costs (day, tenant_id, compute_micros, database_micros) VALUES (?, ?, ?, ?)")
		for _, c := range costs {
			if _, err := s.stmts.Exec(ctx, tx, ins, c.Day, c.TenantID, c.ComputeMicros, c.DatabaseMicros); err != nil {
				return err
			}
		}
		rollup := r("INSERT INTO daily_rollups (tenant_id, day) VALUES (?, ?) ON CONFLICT (tenant_id, day) DO NOTHING")
		for _, tenant := range slices.Sorted(maps.Keys(byTenant)) {
			if err := s.db.SetTenant(ctx, tx, tenant); err != nil {
				return err
			}
			for _, day := range byTenant[tenant] {
				if _, err := s.stmts.Exec(ctx, tx, rollup, tenant, day); err != nil {
					return err
				}
			}
		}
		// Totals last, as addRollups takes its locks: rollups, then totals.
		total := r("INSERT INTO daily_totals (day, shard) VALUES (?, 0) ON CONFLICT (day, shard) DO NOTHING")
		for _, day := range slices.Sorted(maps.Keys(covered)) {
			if _, err := s.stmts.Exec(ctx, tx, total, day); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("import infra: %w", err)
	}
	return nil
}

// InfraDays implements domain.Store.
func (s *Store) InfraDays(ctx context.Context, days domain.Days) ([]domain.InfraDay, error) {
	var out []domain.InfraDay
	err := s.db.InAllTenantsReadTx(ctx, func(tx *sql.Tx) error {
		rows, err := s.stmts.Query(ctx, tx, s.db.Rebind(`SELECT d.day, `+sumExprs("c.compute_micros", "c.database_micros")+`
			FROM infra_days d LEFT JOIN infra_costs c ON c.day = d.day
			WHERE d.day BETWEEN ? AND ? GROUP BY d.day ORDER BY d.day`), days.From, days.To)
		out, err = pstore.All(rows, err, func(rows *sql.Rows) (d domain.InfraDay, err error) {
			return d, rows.Scan(&d.Day, &d.ComputeMicros, &d.DatabaseMicros)
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("infra days: %w", err)
	}
	return out, nil
}

// Payments implements domain.Store. It reads every payment of the period
// (payments has no index by day: reconciliation is an occasional batch).
func (s *Store) Payments(ctx context.Context, days domain.Days, fn func(domain.Payment) error) error {
	err := s.db.InAllTenantsReadTx(ctx, func(tx *sql.Tx) error {
		rows, err := s.stmts.Query(ctx, tx, s.db.Rebind(`SELECT tenant_id, payment_key, currency, gross_cents, refunded_cents, paid_at
			FROM payments WHERE day BETWEEN ? AND ? ORDER BY payment_key, tenant_id`), days.From, days.To)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var p domain.Payment
			if err := rows.Scan(&p.TenantID, &p.Key, &p.Currency, &p.GrossCents, &p.RefundedCents, &p.PaidAt); err != nil {
				return err
			}
			if err := fn(p); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	if err != nil {
		return fmt.Errorf("payments: %w", err)
	}
	return nil
}
