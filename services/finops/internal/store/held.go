package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/services/finops/internal/domain"
)

// HeldEvents implements domain.Store. stripe_events is platform data (no
// row-level security), read as the inbox is.
func (s *Store) HeldEvents(ctx context.Context, customer, after string, limit int) ([]domain.HeldEvent, error) {
	if limit < 1 {
		return nil, fmt.Errorf("held events: limit %d, want at least 1", limit)
	}
	q, args := s.q.heldEvents, []any{after, limit}
	if customer != "" {
		q, args = s.q.customerHeld, []any{after, customer, limit}
	}
	var out []domain.HeldEvent
	err := s.db.InAllTenantsReadTx(ctx, func(tx *sql.Tx) error {
		rows, err := s.stmts.Query(ctx, tx, q, args...)
		out, err = pstore.All(rows, err, func(rows *sql.Rows) (e domain.HeldEvent, err error) {
			err = rows.Scan(&e.EventID, &e.Type, &e.CustomerID, &e.PaymentKey, &e.Currency,
				&e.GrossCents, &e.RefundedCents, &e.At, &e.ReceivedAt)
			e.At, e.ReceivedAt = e.At.UTC(), e.ReceivedAt.UTC()
			return e, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("held events: %w", err)
	}
	return out, nil
}

// AssignCustomer implements domain.Store with the webhook's own mapping:
// the upsert that ties the customer locks its row, so an assignment and a
// webhook naming the customer's tenant, or two assignments, serialize, and
// only the one that ties the customer releases its held events (which it
// marks not held in the same transaction).
func (s *Store) AssignCustomer(ctx context.Context, customer, tenant string) (int64, error) {
	if customer == "" || tenant == "" {
		return 0, fmt.Errorf("assign customer: customer %q, tenant %q: %w", customer, tenant, pstore.ErrNoTenant)
	}
	var released int64
	err := s.db.InWriteTx(ctx, func(tx *sql.Tx) error {
		tied, events, err := s.mapCustomer(ctx, tx, customer, tenant)
		if err != nil {
			return err
		}
		if !tied {
			var cur string
			if err := s.stmts.QueryRow(ctx, tx, s.q.customerTenant, customer).Scan(&cur); err != nil {
				return err
			}
			if cur != tenant {
				return &domain.AssignedError{Customer: customer, Tenant: cur}
			}
			released = 0
			return nil
		}
		released = int64(len(events))
		return s.applyFor(ctx, tx, tenant, events)
	})
	if _, ok := errors.AsType[*domain.AssignedError](err); ok {
		return 0, err
	}
	if err != nil {
		return 0, fmt.Errorf("assign customer: %w", err)
	}
	return released, nil
}
