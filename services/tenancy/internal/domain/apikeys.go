package domain

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/page"
	"github.com/echopilot/echopilot/platform/text"
)

// API key limits and defaults (the format is identity's: apikey.go).
const (
	MaxAPIKeyNameLen   = 64
	MinAPIKeyTTL       = time.Minute
	MaxAPIKeyTTL       = 365 * 24 * time.Hour
	DefaultAPIKeyGrace = 24 * time.Hour
	MaxAPIKeyGrace     = 7 * 24 * time.Hour
	// MaxActiveAPIKeys caps a tenant's unrevoked keys (DESIGN.md rule 9).
	MaxActiveAPIKeys = 100
	// lastUsedEvery throttles last-used writes: at most one per key and
	// interval, whatever the traffic (lookups already come at most once per
	// replica and identity.APIKeyCacheTTL).
	lastUsedEvery = time.Minute
)

// API key error reasons.
const (
	ReasonAPIKeyNameInvalid  = "API_KEY_NAME_INVALID"
	ReasonAPIKeyTTLInvalid   = "API_KEY_TTL_INVALID"
	ReasonAPIKeyGraceInvalid = "API_KEY_GRACE_INVALID"
	ReasonAPIKeyRoleNotHeld  = "API_KEY_ROLE_NOT_HELD"
	ReasonAPIKeyNotFound     = "API_KEY_NOT_FOUND"
	ReasonAPIKeyIDInvalid    = "API_KEY_ID_INVALID"
	ReasonAPIKeyRevoked      = "API_KEY_REVOKED"
	ReasonAPIKeyLimit        = "API_KEY_LIMIT"
	// ReasonAPIKeyByAPIKey: keys are managed by people (a token from the
	// identity provider), never by another key, so a leaked key cannot mint
	// itself successors that outlive its revocation.
	ReasonAPIKeyByAPIKey = "API_KEY_CANNOT_MANAGE_KEYS"
)

// ErrAPIKeyLimit is returned by CreateAPIKey when the tenant holds
// MaxActiveAPIKeys unrevoked keys.
var ErrAPIKeyLimit = errors.New("too many api keys")

// APIKey is a key's record; the secret itself is never stored.
type APIKey struct {
	ID, TenantID, Name string
	Roles              []string
	ReadOnly           bool
	CreatedBy          string
	CreatedAt          time.Time
	ExpiresAt          time.Time // zero: never
	LastUsedAt         time.Time // zero: never
	RotatedAt          time.Time
	// SecretHash is the SHA-256 of the current secret; PreviousHash, until
	// PreviousExpiresAt, of the one before the last rotation.
	SecretHash        []byte
	PreviousHash      []byte
	PreviousExpiresAt time.Time
	RevokedAt         time.Time
}

// Revoked reports whether the key has been revoked.
func (k APIKey) Revoked() bool { return !k.RevokedAt.IsZero() }

// Prefix is what logs and secret scanners show of the key.
func (k APIKey) Prefix() string { return identity.APIKeyPrefix + k.ID }

// APIKeyStore persists API keys. Every method but LookupAPIKey is scoped to
// one tenant.
type APIKeyStore interface {
	// CreateAPIKey inserts k unless its tenant holds maxActive unrevoked
	// keys (ErrAPIKeyLimit).
	CreateAPIKey(ctx context.Context, k APIKey, maxActive int) error
	// GetAPIKey returns ErrNotFound for a key of another tenant.
	GetAPIKey(ctx context.Context, tenant, id string) (APIKey, error)
	// ListAPIKeys returns up to limit keys with ID < beforeID ("" for the
	// first page), newest first.
	ListAPIKeys(ctx context.Context, tenant, beforeID string, limit int) ([]APIKey, error)
	// RotateAPIKey runs rotate on the stored, unrevoked key and stores its
	// secrets and rotation time in one transaction.
	RotateAPIKey(ctx context.Context, tenant, id string, rotate func(*APIKey) error) (APIKey, error)
	// RevokeAPIKey keeps the first revocation time.
	RevokeAPIKey(ctx context.Context, tenant, id string, now time.Time) (APIKey, error)
	// LookupAPIKey finds a key by id across tenants.
	LookupAPIKey(ctx context.Context, id string) (APIKey, error)
	// TouchAPIKey sets the last-used time to now unless it is after
	// notBefore already.
	TouchAPIKey(ctx context.Context, tenant, id string, now, notBefore time.Time) error
}

// NewAPIKey is a key to create.
type NewAPIKey struct {
	Tenant, Name string
	Roles        []string
	ReadOnly     bool
	TTL          time.Duration // 0: no expiry
}

// keyManager checks that c may manage keys of its tenant: the identity layer
// has required role admin in the tenant already.
func keyManager(c Caller) error {
	if c.APIKeyID != "" {
		return apierr.PermissionDenied(ReasonAPIKeyByAPIKey, "API keys are managed with a user's token, not with an API key").InDomain(Domain)
	}
	return nil
}

// CreateAPIKey makes a key of c's tenant and returns it with the whole key
// (shown once).
func (s *Service) CreateAPIKey(ctx context.Context, c Caller, in NewAPIKey) (APIKey, string, error) {
	if err := keyManager(c); err != nil {
		return APIKey{}, "", err
	}
	if err := checkKeyName(in.Name); err != nil {
		return APIKey{}, "", err
	}
	roles := slices.Compact(slices.Sorted(slices.Values(in.Roles)))
	for _, r := range roles {
		// Role service is a platform service's alone; any other role must
		// be the creator's own, so a key never holds more than its maker
		// (and admin of the platform tenant only from a platform admin).
		if r == identity.RoleService || !slices.Contains(c.Roles, r) {
			return APIKey{}, "", apierr.PermissionDenied(ReasonAPIKeyRoleNotHeld,
				"a key may hold only roles its creator holds, never %q; %q is not one of yours", identity.RoleService, apierr.Clip(r)).InDomain(Domain)
		}
	}
	if in.TTL != 0 && (in.TTL < MinAPIKeyTTL || in.TTL > MaxAPIKeyTTL) {
		return APIKey{}, "", apierr.InvalidArgument(ReasonAPIKeyTTLInvalid, "ttl must be %v to %v, or empty for no expiry", MinAPIKeyTTL, MaxAPIKeyTTL).InDomain(Domain)
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	id := ulid.Make().String()
	raw, hash, err := identity.NewAPIKey(id)
	if err != nil {
		return APIKey{}, "", err
	}
	k := APIKey{ID: id, TenantID: c.Tenant, Name: in.Name, Roles: roles, ReadOnly: in.ReadOnly,
		CreatedBy: c.Subject, CreatedAt: now, SecretHash: hash[:]}
	if in.TTL != 0 {
		k.ExpiresAt = now.Add(in.TTL)
	}
	err = s.store.CreateAPIKey(ctx, k, MaxActiveAPIKeys)
	if errors.Is(err, ErrAPIKeyLimit) {
		return APIKey{}, "", apierr.ResourceExhausted(ReasonAPIKeyLimit,
			"tenant %q holds %d API keys; revoke one first", c.Tenant, MaxActiveAPIKeys).InDomain(Domain)
	}
	if err != nil {
		return APIKey{}, "", fmt.Errorf("create api key: %w", err)
	}
	return k, raw, nil
}

// GetAPIKey returns one key of c's tenant.
func (s *Service) GetAPIKey(ctx context.Context, c Caller, id string) (APIKey, error) {
	if !identity.ValidAPIKeyID(id) {
		return APIKey{}, invalidKeyID(id)
	}
	k, err := s.store.GetAPIKey(ctx, c.Tenant, id)
	return k, keyErr(err, id)
}

// FindAPIKey returns a key of any tenant by id; the identity layer lets only
// platform admins call it.
func (s *Service) FindAPIKey(ctx context.Context, id string) (APIKey, error) {
	if !identity.ValidAPIKeyID(id) {
		return APIKey{}, invalidKeyID(id)
	}
	k, err := s.store.LookupAPIKey(ctx, id)
	return k, keyErr(err, id)
}

// ListAPIKeys pages through c's tenant's keys, newest first.
func (s *Service) ListAPIKeys(ctx context.Context, c Caller, req page.Request) ([]APIKey, string, error) {
	size, err := req.Size(50, 100)
	if err != nil {
		return nil, "", err
	}
	scope := "api-keys:" + c.Tenant
	before, err := page.Decode(req.PageToken, scope)
	if err != nil {
		return nil, "", err
	}
	ks, err := s.store.ListAPIKeys(ctx, c.Tenant, before, size+1)
	if err != nil {
		return nil, "", fmt.Errorf("list api keys: %w", err)
	}
	ks, next := page.Trim(ks, size, func(k APIKey) string { return k.ID }, scope)
	return ks, next, nil
}

// RotateAPIKey gives the key a new secret; the current one keeps working
// for grace. It returns the whole new key (shown once).
func (s *Service) RotateAPIKey(ctx context.Context, c Caller, id string, grace time.Duration) (APIKey, string, error) {
	if err := keyManager(c); err != nil {
		return APIKey{}, "", err
	}
	if !identity.ValidAPIKeyID(id) {
		return APIKey{}, "", invalidKeyID(id)
	}
	if grace < 0 || grace > MaxAPIKeyGrace {
		return APIKey{}, "", apierr.InvalidArgument(ReasonAPIKeyGraceInvalid, "grace_period must be 0s to %v", MaxAPIKeyGrace).InDomain(Domain)
	}
	raw, hash, err := identity.NewAPIKey(id)
	if err != nil {
		return APIKey{}, "", err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	k, err := s.store.RotateAPIKey(ctx, c.Tenant, id, func(k *APIKey) error {
		if k.Revoked() {
			return apierr.FailedPrecondition(ReasonAPIKeyRevoked, "API key %s is revoked", id).InDomain(Domain)
		}
		k.PreviousHash, k.PreviousExpiresAt = k.SecretHash, now.Add(grace)
		k.SecretHash, k.RotatedAt = hash[:], now
		return nil
	})
	if err != nil {
		return APIKey{}, "", keyErr(err, id)
	}
	return k, raw, nil
}

// RevokeAPIKey revokes a key of c's tenant; revoking twice is harmless.
func (s *Service) RevokeAPIKey(ctx context.Context, c Caller, id string) (APIKey, error) {
	if err := keyManager(c); err != nil {
		return APIKey{}, err
	}
	if !identity.ValidAPIKeyID(id) {
		return APIKey{}, invalidKeyID(id)
	}
	k, err := s.store.RevokeAPIKey(ctx, c.Tenant, id, s.now().UTC())
	return k, keyErr(err, id)
}

// LookupAPIKey is the identity layer's view of a key: ErrAPIKeyNotFound
// (identity's) unless it is live. A lookup whose presented hash matches a
// live secret moves the key's last-used time, at most once a minute.
func (s *Service) LookupAPIKey(ctx context.Context, id string, presented [sha256.Size]byte) (identity.APIKeyRecord, error) {
	if !identity.ValidAPIKeyID(id) {
		return identity.APIKeyRecord{}, identity.ErrAPIKeyNotFound
	}
	k, err := s.store.LookupAPIKey(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return identity.APIKeyRecord{}, identity.ErrAPIKeyNotFound
	}
	if err != nil {
		return identity.APIKeyRecord{}, fmt.Errorf("lookup api key: %w", err)
	}
	now := s.now().UTC()
	if k.Revoked() || (!k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt)) {
		return identity.APIKeyRecord{}, identity.ErrAPIKeyNotFound
	}
	rec := identity.APIKeyRecord{Tenant: k.TenantID, Roles: k.Roles, ReadOnly: k.ReadOnly, ExpireTime: k.ExpiresAt,
		Secrets: []identity.APIKeySecret{{Hash: k.SecretHash}}}
	used := subtle.ConstantTimeCompare(k.SecretHash, presented[:]) == 1
	if len(k.PreviousHash) > 0 && now.Before(k.PreviousExpiresAt) {
		rec.Secrets = append(rec.Secrets, identity.APIKeySecret{Hash: k.PreviousHash, ExpireTime: k.PreviousExpiresAt})
		used = subtle.ConstantTimeCompare(k.PreviousHash, presented[:]) == 1 || used
	}
	if used && now.Sub(k.LastUsedAt) >= lastUsedEvery {
		// Best effort: a failed write must not refuse a valid key.
		_ = s.store.TouchAPIKey(ctx, k.TenantID, id, now, now.Add(-lastUsedEvery))
	}
	return rec, nil
}

func checkKeyName(name string) error {
	if !text.IsName(name, MaxAPIKeyNameLen) {
		return apierr.InvalidArgument(ReasonAPIKeyNameInvalid, "name must be 1 to %d printable characters", MaxAPIKeyNameLen).InDomain(Domain)
	}
	return nil
}

func invalidKeyID(id string) error {
	return apierr.InvalidArgument(ReasonAPIKeyIDInvalid, "key id %q is not an API key id (26 characters, a ULID)", apierr.Clip(id)).InDomain(Domain)
}

// keyErr translates a store error about key id.
func keyErr(err error, id string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotFound):
		return apierr.NotFound(ReasonAPIKeyNotFound, "no API key %s here", id).InDomain(Domain)
	}
	var e *apierr.Error
	if errors.As(err, &e) {
		return e
	}
	return fmt.Errorf("api key %s: %w", id, err)
}
