package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/services/growth/internal/domain"
)

// The commission rules of domain (see domain.StateAt) in SQL, over the
// columns of a conversions row.
const (
	// isCommission: the conversion arrived and is not a self-referral.
	isCommission = "known AND NOT self_referral"
	// isRefunded is domain.ConversionState.Refunded.
	isRefunded = "(refund_all OR (refund_cents > 0 AND refund_cents >= revenue_cents))"
	// netSQL and payoutSQL are domain.ConversionState.Contribution's
	// RevenueCents and PayoutCents (floor, both operands not negative).
	netSQL    = "(revenue_cents - CASE WHEN refund_all OR refund_cents >= revenue_cents THEN revenue_cents ELSE refund_cents END)"
	payoutSQL = "(" + netSQL + " * rate_bps / 10000)"
	// stateSQL is domain.ConversionState.StateAt; its arguments are the
	// clock's (clockArgs).
	stateSQL = "CASE WHEN paid_at IS NOT NULL THEN '" + domain.StatePaid + "' WHEN " + isRefunded + " THEN '" +
		domain.StateRefunded + "' WHEN " + isHeld + " THEN '" + domain.StatePending +
		"' ELSE '" + domain.StateApproved + "' END"
	// isHeld is true while the hold lasts; arguments: clockArgs. (NULL,
	// not true, once a recorded hold ended.)
	isHeld = "((hold_until IS NULL AND day > ?) OR hold_until > ?)"
	// isReleased is true once the hold ended; arguments: clockArgs.
	isReleased = "((hold_until IS NULL AND day <= ?) OR hold_until <= ?)"
	// inState matches one state, or every state for ''; arguments: the
	// state, clockArgs, the state.
	inState = "(? = '' OR " + stateSQL + " = ?)"
	// inBatch matches the commissions of a batch, never those in none.
	inBatch = "batch_id = ? AND batch_id <> ''"
)

// commissionQueries builds the commission and payout batch statements.
func (s *Store) commissionQueries() {
	r := s.db.Rebind
	// A batch's statements read conversions_batch. SQLite would rather read
	// the tenant's whole primary key range (a WITHOUT ROWID table: each
	// index entry costs a primary key lookup, which its planner weighs
	// above the range, statistics or not), so it is told; PostgreSQL picks
	// the index itself.
	byBatch := ""
	if s.db.Dialect == pstore.SQLite {
		byBatch = " INDEXED BY conversions_batch"
	}
	s.q.commissions = r(`SELECT conversion_id, referral_code, day, revenue_cents, rate_bps, refund_cents, refund_all,
			occurred_at, hold_until, batch_id, paid_at, ` + stateSQL + `
		FROM conversions WHERE tenant_id = ? AND conversion_id > ? AND ` + isCommission + ` AND ` + inState + `
		ORDER BY conversion_id LIMIT ?`)
	// Approved at now, not paid, in no batch: into the batch. On
	// PostgreSQL a concurrent batch waits on the rows, then finds them
	// taken (batch_id is checked again on the updated row).
	s.q.batchConversions = r(`UPDATE conversions` + byBatch + ` SET batch_id = ?
		WHERE tenant_id = ? AND ` + isCommission + ` AND batch_id = '' AND paid_at IS NULL
			AND NOT ` + isRefunded + ` AND ` + isReleased)
	s.q.batchSums = r(`SELECT COUNT(*), ` + sumExprs(payoutSQL) + `, COALESCE(SUM(CASE WHEN paid_at IS NOT NULL THEN 1 ELSE 0 END), 0),
			` + sumExprs("CASE WHEN paid_at IS NOT NULL THEN "+payoutSQL+" ELSE 0 END") + `
		FROM conversions` + byBatch + ` WHERE tenant_id = ? AND ` + inBatch)
	s.q.insertBatch = r(`INSERT INTO payout_batches (tenant_id, batch_id, created_at, commission_count, payout_cents)
		VALUES (?, ?, ?, ?, ?)`)
	s.q.getBatch = r(`SELECT created_at, commission_count, payout_cents, paid_at FROM payout_batches
		WHERE tenant_id = ? AND batch_id = ?`)
	s.q.payBatch = r(`UPDATE payout_batches SET paid_at = ? WHERE tenant_id = ? AND batch_id = ? AND paid_at IS NULL`)
	// A commission refunded since the batch was made is not paid: it
	// stays refunded.
	s.q.payConversions = r(`UPDATE conversions` + byBatch + ` SET paid_at = ?
		WHERE tenant_id = ? AND ` + inBatch + ` AND paid_at IS NULL AND NOT ` + isRefunded)
	// The export of commissions: per referral in code order (through
	// conversions_code), its commissions matching cond over a range of
	// days, and its signups over the same days. Arguments: from, to (of
	// the signups), tenant, after, from, to, those of cond, the minimum,
	// the limit, tenant.
	payouts := func(cond string) string {
		return r(`SELECT c.referral_code, r.referrer_id, r.campaign,
				(SELECT ` + sumExprs("d.signups") + ` FROM referral_daily d
					WHERE d.tenant_id = r.tenant_id AND d.referral_code = c.referral_code AND d.day BETWEEN ? AND ?),
				c.conversions, c.revenue_cents, c.payout_cents
			FROM (SELECT referral_code, COUNT(*) AS conversions, ` + sumExprs(netSQL) + ` AS revenue_cents,
					` + sumExprs(payoutSQL) + ` AS payout_cents
				FROM conversions WHERE tenant_id = ? AND referral_code > ? AND ` + isCommission + `
					AND day BETWEEN ? AND ? AND ` + cond + `
				GROUP BY referral_code HAVING ` + sumExprs(payoutSQL) + ` >= ? ORDER BY referral_code LIMIT ?) c
			JOIN referrals r ON r.tenant_id = ? AND r.referral_code = c.referral_code
			ORDER BY c.referral_code`)
	}
	s.q.stateCommissionPayouts = payouts(inState)
	s.q.batchCommissionPayouts = payouts(inBatch + " AND NOT " + isRefunded)
}

// clockArgs are the arguments of isHeld and isReleased.
func clockArgs(c domain.Clock) []any { return []any{c.UnsetHoldDay(), c.Now.UTC()} }

// Commissions implements domain.Store.
func (s *Store) Commissions(ctx context.Context, tenant string, f domain.CommissionFilter, after string, limit int) ([]domain.CommissionRow, error) {
	clock := clockArgs(f.Clock)
	args := append(append(append(append(clock, tenant, after, f.State), clock...), f.State), limit)
	var out []domain.CommissionRow
	err := s.db.InTenantReadTx(ctx, tenant, func(tx *sql.Tx) (err error) {
		rows, err := s.stmts.Query(ctx, tx, s.q.commissions, args...)
		out, err = pstore.All(rows, err, func(rows *sql.Rows) (c domain.CommissionRow, err error) {
			var at, hold, paid sql.NullTime
			st := &c.State
			if err := rows.Scan(&c.ID, &st.Code, &st.Day, &st.RevenueCents, &st.RateBPS, &st.RefundCents, &st.RefundAll,
				&at, &hold, &c.BatchID, &paid, &c.StateName); err != nil {
				return c, err
			}
			st.Known, st.OccurredAt, st.HoldUntil, st.Paid, c.PaidAt = true, at.Time, hold.Time, paid.Valid, paid.Time
			return c, nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("commissions: %w", err)
	}
	return out, nil
}

// CommissionPayouts implements domain.Store.
func (s *Store) CommissionPayouts(ctx context.Context, tenant string, q domain.CommissionPayoutQuery, after string, limit int) ([]domain.PayoutRow, error) {
	query, cond := s.q.stateCommissionPayouts, append(append([]any{q.Filter.State}, clockArgs(q.Filter.Clock)...), q.Filter.State)
	if q.BatchID != "" {
		query, cond = s.q.batchCommissionPayouts, []any{q.BatchID}
	}
	args := append([]any{q.Days.From, q.Days.To, tenant, after, q.Days.From, q.Days.To}, cond...)
	args = append(args, q.MinCents, limit, tenant)
	var out []domain.PayoutRow
	err := s.db.InTenantReadTx(ctx, tenant, func(tx *sql.Tx) (err error) {
		rows, err := s.stmts.Query(ctx, tx, query, args...)
		out, err = pstore.All(rows, err, func(rows *sql.Rows) (p domain.PayoutRow, err error) {
			return p, rows.Scan(&p.Code, &p.ReferrerID, &p.Campaign, &p.Signups, &p.Conversions, &p.RevenueCents, &p.PayoutCents)
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("commission payouts: %w", err)
	}
	return out, nil
}

// CreateBatch implements domain.Store.
func (s *Store) CreateBatch(ctx context.Context, tenant, id string, c domain.Clock) (domain.Batch, error) {
	b := domain.Batch{ID: id, CreatedAt: c.Now.UTC()}
	err := s.db.InWriteTx(ctx, func(tx *sql.Tx) error {
		if err := s.db.SetTenant(ctx, tx, tenant); err != nil {
			return err
		}
		if _, err := s.stmts.Exec(ctx, tx, s.q.batchConversions, append([]any{id, tenant}, clockArgs(c)...)...); err != nil {
			return err
		}
		if err := s.batchSums(ctx, tx, tenant, &b); err != nil || b.Count == 0 {
			return err
		}
		_, err := s.stmts.Exec(ctx, tx, s.q.insertBatch, tenant, id, b.CreatedAt, b.Count, b.PayoutCents)
		return err
	})
	if err != nil {
		return domain.Batch{}, fmt.Errorf("create batch: %w", err)
	}
	return b, nil
}

// batchSums reads what b holds: Count and PayoutCents now (as made, while
// nothing in it is paid) and what of it is paid.
func (s *Store) batchSums(ctx context.Context, tx *sql.Tx, tenant string, b *domain.Batch) error {
	return s.stmts.QueryRow(ctx, tx, s.q.batchSums, tenant, b.ID).Scan(&b.Count, &b.PayoutCents, &b.PaidCount, &b.PaidCents)
}

// MarkBatchPaid implements domain.Store: the batch row is the gate, so of
// two concurrent calls one marks and the other finds it paid.
func (s *Store) MarkBatchPaid(ctx context.Context, tenant, id string, now time.Time) (domain.Batch, bool, error) {
	b := domain.Batch{ID: id}
	var changed bool
	err := s.db.InWriteTx(ctx, func(tx *sql.Tx) (err error) {
		if err := s.db.SetTenant(ctx, tx, tenant); err != nil {
			return err
		}
		if changed, err = affected(s.stmts.Exec(ctx, tx, s.q.payBatch, now.UTC(), tenant, id)); err != nil {
			return err
		}
		if changed {
			if _, err := s.stmts.Exec(ctx, tx, s.q.payConversions, now.UTC(), tenant, id); err != nil {
				return err
			}
		}
		var paid sql.NullTime
		err = s.stmts.QueryRow(ctx, tx, s.q.getBatch, tenant, id).Scan(&b.CreatedAt, &b.Count, &b.PayoutCents, &paid)
		if errors.Is(err, sql.ErrNoRows) {
			return domain.ErrBatchNotFound
		}
		if err != nil {
			return err
		}
		b.PaidAt = paid.Time
		// Count and PayoutCents stay as the batch was made; a refund since
		// then shows as paid less than made.
		sums := domain.Batch{ID: id}
		if err := s.batchSums(ctx, tx, tenant, &sums); err != nil {
			return err
		}
		b.PaidCount, b.PaidCents = sums.PaidCount, sums.PaidCents
		return nil
	})
	if err != nil {
		return domain.Batch{}, false, fmt.Errorf("mark batch paid: %w", err)
	}
	return b, changed, nil
}
