package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/echopilot/echopilot/services/queue/internal/domain"
)

// Worker token statements, the same on both databases (rebound in New).
const (
	tokenColumns    = "tenant_id, id, name, ttl_seconds, created, expires, max_expires, revoked_at"
	insertTokenSQL  = "INSERT INTO worker_tokens (" + tokenColumns + ") VALUES (?, ?, ?, ?, ?, ?, ?, NULL)"
	getTokenSQL     = "SELECT " + tokenColumns + " FROM worker_tokens WHERE tenant_id = ? AND id = ?"
	listTokensSQL   = "SELECT " + tokenColumns + " FROM worker_tokens WHERE tenant_id = ? AND (? = '' OR id < ?) ORDER BY id DESC LIMIT ?"
	revokeTokenSQL  = "UPDATE worker_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE tenant_id = ? AND id = ? RETURNING " + tokenColumns
	extendTokenSQL  = "UPDATE worker_tokens SET expires = ? WHERE tenant_id = ? AND id = ? AND revoked_at IS NULL"
	tokenStatesSQL  = "SELECT tenant_id, id, revoked_at IS NOT NULL FROM worker_tokens WHERE max_expires > ?"
	deleteTokensSQL = "DELETE FROM worker_tokens WHERE tenant_id = ? AND max_expires < ?"
	tokenTenantsSQL = "SELECT DISTINCT tenant_id FROM worker_tokens WHERE max_expires < ? ORDER BY tenant_id"
)

// CreateWorkerToken inserts t; ids are fresh ULIDs, so a conflict is a bug.
func (s *Store) CreateWorkerToken(ctx context.Context, t domain.WorkerToken) error {
	err := s.db.InTenantTx(ctx, t.TenantID, func(tx *sql.Tx) error {
		_, err := s.stmts.Exec(ctx, tx, s.q.insertToken, t.TenantID, t.ID, t.Name, int64(t.TTL/time.Second), t.Created, t.Expires, t.MaxExpires)
		return err
	})
	if err != nil {
		return fmt.Errorf("create worker token: %w", err)
	}
	return nil
}

// GetWorkerToken reads one token of tenant.
func (s *Store) GetWorkerToken(ctx context.Context, tenant, id string) (domain.WorkerToken, error) {
	var t domain.WorkerToken
	err := s.db.InTenantReadTx(ctx, tenant, func(tx *sql.Tx) (err error) {
		t, err = scanToken(s.stmts.QueryRow(ctx, tx, s.q.getToken, tenant, id))
		return err
	})
	if err != nil {
		return domain.WorkerToken{}, fmt.Errorf("get worker token: %w", err)
	}
	return t, nil
}

// ListWorkerTokens pages by id descending (ULIDs: newest first).
func (s *Store) ListWorkerTokens(ctx context.Context, f domain.TokenFilter) ([]domain.WorkerToken, error) {
	if f.Limit < 1 {
		return nil, fmt.Errorf("list worker tokens: limit %d, want at least 1", f.Limit)
	}
	var tokens []domain.WorkerToken
	err := s.db.InTenantReadTx(ctx, f.TenantID, func(tx *sql.Tx) error {
		rows, err := s.stmts.Query(ctx, tx, s.q.listTokens, f.TenantID, f.BeforeID, f.BeforeID, f.Limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			t, err := scanToken(rows)
			if err != nil {
				return err
			}
			tokens = append(tokens, t)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list worker tokens: %w", err)
	}
	return tokens, nil
}

// RevokeWorkerToken keeps the first revocation time.
func (s *Store) RevokeWorkerToken(ctx context.Context, tenant, id string, now time.Time) (domain.WorkerToken, error) {
	var t domain.WorkerToken
	err := s.db.InTenantTx(ctx, tenant, func(tx *sql.Tx) (err error) {
		t, err = scanToken(s.stmts.QueryRow(ctx, tx, s.q.revokeToken, now, tenant, id))
		return err
	})
	if err != nil {
		return domain.WorkerToken{}, fmt.Errorf("revoke worker token: %w", err)
	}
	return t, nil
}

// ExtendWorkerToken writes the expiry of an unrevoked token and reads the
// token back in the same transaction.
func (s *Store) ExtendWorkerToken(ctx context.Context, tenant, id string, expires time.Time) (domain.WorkerToken, error) {
	var t domain.WorkerToken
	err := s.db.InTenantTx(ctx, tenant, func(tx *sql.Tx) (err error) {
		if _, err := s.stmts.Exec(ctx, tx, s.q.extendToken, expires, tenant, id); err != nil {
			return err
		}
		t, err = scanToken(s.stmts.QueryRow(ctx, tx, s.q.getToken, tenant, id))
		return err
	})
	if err != nil {
		return domain.WorkerToken{}, fmt.Errorf("extend worker token: %w", err)
	}
	return t, nil
}

// WorkerTokenStates reads across tenants through worker_tokens_max_expires.
func (s *Store) WorkerTokenStates(ctx context.Context, now time.Time) ([]domain.TokenState, error) {
	var states []domain.TokenState
	err := s.db.InAllTenantsReadTx(ctx, func(tx *sql.Tx) error {
		rows, err := s.stmts.Query(ctx, tx, s.q.tokenStates, now)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var st domain.TokenState
			if err := rows.Scan(&st.TenantID, &st.ID, &st.Revoked); err != nil {
				return err
			}
			states = append(states, st)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("worker token states: %w", err)
	}
	return states, nil
}

// DeleteWorkerTokens deletes tenant by tenant, each in one transaction:
// a tenant holds few tokens.
func (s *Store) DeleteWorkerTokens(ctx context.Context, before time.Time) (int64, error) {
	tenants, err := s.tenants(ctx, tokenTenantsSQL, before)
	if err != nil {
		return 0, fmt.Errorf("delete worker tokens: list tenants: %w", err)
	}
	var deleted int64
	for _, tenant := range tenants {
		err := s.db.InTenantTx(ctx, tenant, func(tx *sql.Tx) error {
			res, err := s.stmts.Exec(ctx, tx, s.q.deleteTokens, tenant, before)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			deleted += n
			return err
		})
		if err != nil {
			return deleted, fmt.Errorf("delete worker tokens of %q: %w", tenant, err)
		}
	}
	return deleted, nil
}

func scanToken(r interface{ Scan(...any) error }) (domain.WorkerToken, error) {
	var (
		t       domain.WorkerToken
		ttl     int64
		revoked sql.NullTime
	)
	err := r.Scan(&t.TenantID, &t.ID, &t.Name, &ttl, &t.Created, &t.Expires, &t.MaxExpires, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return domain.WorkerToken{}, domain.ErrTokenNotFound
	}
	if err != nil {
		return domain.WorkerToken{}, err
	}
	t.TTL = time.Duration(ttl) * time.Second
	if revoked.Valid {
		t.RevokedAt = revoked.Time
	}
	return t, nil
}
