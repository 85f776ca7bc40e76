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

// API key statements, the same on both databases (rebound where used).
const (
	keyColumns = "tenant_id, key_id, name, roles, read_only, created_by, created_at, expires_at, last_used_at, " +
		"rotated_at, secret_hash, previous_hash, previous_expires_at, revoked_at"
	insertKeySQL = "INSERT INTO api_keys (" + keyColumns + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, NULL, NULL, NULL)"
	countKeysSQL = "SELECT COUNT(*) FROM api_keys WHERE tenant_id = ? AND revoked_at IS NULL"
	getKeySQL    = "SELECT " + keyColumns + " FROM api_keys WHERE tenant_id = ? AND key_id = ?"
	listKeysSQL  = "SELECT " + keyColumns + " FROM api_keys WHERE tenant_id = ? AND (? = '' OR key_id < ?) ORDER BY key_id DESC LIMIT ?"
	rotateKeySQL = "UPDATE api_keys SET secret_hash = ?, previous_hash = ?, previous_expires_at = ?, rotated_at = ? WHERE tenant_id = ? AND key_id = ?"
	revokeKeySQL = "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE tenant_id = ? AND key_id = ? RETURNING " + keyColumns
	lookupKeySQL = "SELECT " + keyColumns + " FROM api_keys WHERE key_id = ?"
	touchKeySQL  = "UPDATE api_keys SET last_used_at = ? WHERE tenant_id = ? AND key_id = ? AND (last_used_at IS NULL OR last_used_at < ?)"
)

// CreateAPIKey counts the tenant's unrevoked keys and inserts k in one
// transaction; on PostgreSQL the tenant's row is locked first so that two
// concurrent creations cannot both pass the count (SQLite's write
// transaction is serial already).
func (s *Store) CreateAPIKey(ctx context.Context, k domain.APIKey, maxActive int) error {
	roles, err := json.Marshal(k.Roles)
	if err != nil {
		return fmt.Errorf("create api key: %w", err)
	}
	err = s.db.InTenantTx(ctx, k.TenantID, func(tx *sql.Tx) error {
		if s.db.Dialect == pstore.Postgres {
			if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(hashtext('api_keys:' || $1))", k.TenantID); err != nil {
				return err
			}
		}
		var n int
		if err := tx.QueryRowContext(ctx, s.db.Rebind(countKeysSQL), k.TenantID).Scan(&n); err != nil {
			return err
		}
		if n >= maxActive {
			return domain.ErrAPIKeyLimit
		}
		_, err := tx.ExecContext(ctx, s.db.Rebind(insertKeySQL), k.TenantID, k.ID, k.Name, string(roles), k.ReadOnly,
			k.CreatedBy, k.CreatedAt, pstore.NullTime(k.ExpiresAt), k.SecretHash)
		return err
	})
	if err != nil {
		return fmt.Errorf("create api key: %w", err)
	}
	return nil
}

// GetAPIKey reads one key of tenant.
func (s *Store) GetAPIKey(ctx context.Context, tenant, id string) (domain.APIKey, error) {
	var k domain.APIKey
	err := s.db.InTenantReadTx(ctx, tenant, func(tx *sql.Tx) (err error) {
		k, err = scanKey(tx.QueryRowContext(ctx, s.db.Rebind(getKeySQL), tenant, id))
		return err
	})
	if err != nil {
		return domain.APIKey{}, fmt.Errorf("get api key: %w", err)
	}
	return k, nil
}

// ListAPIKeys pages by key id descending (ULIDs: newest first).
func (s *Store) ListAPIKeys(ctx context.Context, tenant, beforeID string, limit int) ([]domain.APIKey, error) {
	if limit < 1 {
		return nil, fmt.Errorf("list api keys: limit %d, want at least 1", limit)
	}
	var keys []domain.APIKey
	err := s.db.InTenantReadTx(ctx, tenant, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, s.db.Rebind(listKeysSQL), tenant, beforeID, beforeID, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			k, err := scanKey(rows)
			if err != nil {
				return err
			}
			keys = append(keys, k)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	return keys, nil
}

// RotateAPIKey reads the key, locking its row on PostgreSQL, applies rotate
// and writes the secrets back.
func (s *Store) RotateAPIKey(ctx context.Context, tenant, id string, rotate func(*domain.APIKey) error) (domain.APIKey, error) {
	lock := ""
	if s.db.Dialect == pstore.Postgres {
		lock = " FOR UPDATE"
	}
	var k domain.APIKey
	err := s.db.InTenantTx(ctx, tenant, func(tx *sql.Tx) (err error) {
		if k, err = scanKey(tx.QueryRowContext(ctx, s.db.Rebind(getKeySQL+lock), tenant, id)); err != nil {
			return err
		}
		if err := rotate(&k); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, s.db.Rebind(rotateKeySQL), k.SecretHash, k.PreviousHash, pstore.NullTime(k.PreviousExpiresAt),
			pstore.NullTime(k.RotatedAt), tenant, id)
		return err
	})
	if err != nil {
		return domain.APIKey{}, fmt.Errorf("rotate api key: %w", err)
	}
	return k, nil
}

// RevokeAPIKey keeps the first revocation time.
func (s *Store) RevokeAPIKey(ctx context.Context, tenant, id string, now time.Time) (domain.APIKey, error) {
	var k domain.APIKey
	err := s.db.InTenantTx(ctx, tenant, func(tx *sql.Tx) (err error) {
		k, err = scanKey(tx.QueryRowContext(ctx, s.db.Rebind(revokeKeySQL), now, tenant, id))
		return err
	})
	if err != nil {
		return domain.APIKey{}, fmt.Errorf("revoke api key: %w", err)
	}
	return k, nil
}

// LookupAPIKey reads across tenants by the unique key id: the caller knows
// only the key.
func (s *Store) LookupAPIKey(ctx context.Context, id string) (domain.APIKey, error) {
	var k domain.APIKey
	err := s.stmts.ReadScoped(ctx, "", true, s.db.Rebind(lookupKeySQL), []any{id}, func(rows pstore.Rows) error {
		if !rows.Next() {
			return domain.ErrNotFound
		}
		var err error
		k, err = scanKey(rows)
		return err
	})
	if err != nil {
		return domain.APIKey{}, fmt.Errorf("lookup api key: %w", err)
	}
	return k, nil
}

// TouchAPIKey moves the last-used time forward, unless another replica
// did since notBefore.
func (s *Store) TouchAPIKey(ctx context.Context, tenant, id string, now, notBefore time.Time) error {
	err := s.db.InTenantTx(ctx, tenant, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.db.Rebind(touchKeySQL), now, tenant, id, notBefore)
		return err
	})
	if err != nil {
		return fmt.Errorf("touch api key: %w", err)
	}
	return nil
}

func scanKey(r interface{ Scan(...any) error }) (domain.APIKey, error) {
	var (
		k                                            domain.APIKey
		roles                                        string
		expires, used, rotated, prevExpires, revoked sql.NullTime
	)
	err := r.Scan(&k.TenantID, &k.ID, &k.Name, &roles, &k.ReadOnly, &k.CreatedBy, &k.CreatedAt, &expires, &used,
		&rotated, &k.SecretHash, &k.PreviousHash, &prevExpires, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return domain.APIKey{}, domain.ErrNotFound
	}
	if err != nil {
		return domain.APIKey{}, err
	}
	if err := json.Unmarshal([]byte(roles), &k.Roles); err != nil {
		return domain.APIKey{}, fmt.Errorf("api key %s roles: %w", k.ID, err)
	}
	k.ExpiresAt, k.LastUsedAt, k.RotatedAt = expires.Time, used.Time, rotated.Time
	k.PreviousExpiresAt, k.RevokedAt = prevExpires.Time, revoked.Time
	return k, nil
}
