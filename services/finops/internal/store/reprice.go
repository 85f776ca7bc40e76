package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"

	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/services/finops/internal/domain"
)

// UnpricedUsage implements domain.Store: every tenant's unpriced records,
// read as an admin's view reads (the job acts for the platform).
func (s *Store) UnpricedUsage(ctx context.Context, afterTenant, afterJob string, limit int) ([]domain.UsageRecord, error) {
	if limit < 1 {
		return nil, fmt.Errorf("unpriced usage: limit %d, want at least 1", limit)
	}
	var out []domain.UsageRecord
	err := s.db.InAllTenantsReadTx(ctx, func(tx *sql.Tx) error {
		rows, err := s.stmts.Query(ctx, tx, s.q.unpricedUsage, afterTenant, afterJob, limit)
		out, err = pstore.All(rows, err, func(rows *sql.Rows) (r domain.UsageRecord, err error) {
			err = rows.Scan(&r.TenantID, &r.JobID, &r.JobType, &r.Model, &r.InputTokens, &r.OutputTokens,
				&r.DurationMS, &r.CompletedAt)
			r.CompletedAt = r.CompletedAt.UTC()
			return r, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("unpriced usage: %w", err)
	}
	return out, nil
}

// PriceUsage implements domain.Store: one transaction, tenant by tenant in
// tenant order and job by job in job order (so concurrent runs lock rows in
// the same order), each tenant under its own row-level-security scope.
// The rollups move by what the updates return, so only records this call
// priced count.
func (s *Store) PriceUsage(ctx context.Context, recs []domain.UsageRecord) (int64, error) {
	groups := make(map[string][]domain.UsageRecord)
	for i, r := range recs {
		if r.TenantID == "" || r.JobID == "" || !r.Priced || r.CostMicros < 0 {
			return 0, fmt.Errorf("price usage: record %d is not a priced record of a tenant's job", i)
		}
		groups[r.TenantID] = append(groups[r.TenantID], r)
	}
	var priced int64
	err := s.db.InWriteTx(ctx, func(tx *sql.Tx) error {
		priced = 0
		for _, tenant := range slices.Sorted(maps.Keys(groups)) {
			if err := s.db.SetTenant(ctx, tx, tenant); err != nil {
				return err
			}
			g := groups[tenant]
			slices.SortFunc(g, func(a, b domain.UsageRecord) int { return cmp.Compare(a.JobID, b.JobID) })
			deltas := make(map[int64]domain.Totals)
			for _, r := range g {
				var day, in, out int64
				err := s.stmts.QueryRow(ctx, tx, s.q.priceUsage, r.CostMicros, tenant, r.JobID).Scan(&day, &in, &out)
				if errors.Is(err, sql.ErrNoRows) {
					continue // priced meanwhile, or gone
				}
				if err != nil {
					return err
				}
				d := deltas[day]
				d.AICostMicros += r.CostMicros
				d.UnpricedJobs--
				d.UnpricedInputTokens -= in
				d.UnpricedOutputTokens -= out
				deltas[day] = d
				priced++
			}
			if err := s.addRollups(ctx, tx, tenant, deltas); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("price usage: %w", err)
	}
	return priced, nil
}
