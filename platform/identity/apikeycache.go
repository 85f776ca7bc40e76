package identity

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"
	"google.golang.org/grpc/codes"
)

// ErrAPIKeyNotFound is what an APIKeyLookup returns for a key id that is
// unknown, revoked or expired.
var ErrAPIKeyNotFound = errors.New("api key not found")

// APIKeyLookup resolves a key id in the key store (tenancy's LookupAPIKey,
// or tenancy's own store). presented is the hash of the secret of the
// request that missed the cache; the store moves the key's last-used time
// when it matches. Errors other than ErrAPIKeyNotFound are outages.
type APIKeyLookup func(ctx context.Context, id string, presented [sha256.Size]byte) (APIKeyRecord, error)

const (
	// APIKeyCacheTTL is how long a replica trusts what it looked up about a
	// key id, found or not. It is the worst-case delay of a revocation: a
	// revoked key is refused by every replica of every service at most this
	// long after RevokeAPIKey returns.
	APIKeyCacheTTL = 2 * time.Second
	// apiKeyRefetchEvery and apiKeyRefetchBurst bound the extra lookups of
	// a key id whose cached record refused a secret: a rotation's new
	// secret works at once on every replica, while wrong secrets (guessing,
	// a stale copy) cost the key store a few lookups, then one per id,
	// replica and interval. This is the per-key-id failure limiter; the
	// gateway's per-address limits bound the guesses themselves.
	apiKeyRefetchEvery = time.Second
	apiKeyRefetchBurst = 3
	// apiKeyCacheSize bounds the key ids remembered.
	apiKeyCacheSize = 10_000
	// ReasonKeyLookupUnavailable: the key store could not be asked; the
	// caller may retry.
	ReasonKeyLookupUnavailable = "API_KEY_LOOKUP_UNAVAILABLE"
)

// apiKeyCache verifies API keys against records looked up by key id and
// kept APIKeyCacheTTL.
type apiKeyCache struct {
	lookup APIKeyLookup
	flight singleflight.Group
	now    func() time.Time

	mu      sync.RWMutex
	entries map[string]keyEntry
}

type keyEntry struct {
	rec     APIKeyRecord
	found   bool
	fetched time.Time
	// refetch limits the lookups of mismatches; kept across refreshes.
	refetch *rate.Limiter
}

func newAPIKeyCache(lookup APIKeyLookup) *apiKeyCache {
	return &apiKeyCache{lookup: lookup, now: time.Now, entries: map[string]keyEntry{}}
}

// verify returns the principal raw proves. Its errors wrap an *apierr.Error
// like Verify's: TOKEN_INVALID, or UNAVAILABLE API_KEY_LOOKUP_UNAVAILABLE
// when the key store cannot answer (never a key accepted on stale data).
func (c *apiKeyCache) verify(ctx context.Context, raw string) (Principal, error) {
	k, err := ParseAPIKey(raw)
	if err != nil {
		return Principal{}, invalidToken(err)
	}
	now := c.now()
	c.mu.RLock()
	e, ok := c.entries[k.ID]
	c.mu.RUnlock()
	if !ok || now.Sub(e.fetched) >= APIKeyCacheTTL {
		if e, err = c.fetch(ctx, k); err != nil {
			return Principal{}, err
		}
	}
	if e.found && e.rec.match(k.Hash, now) {
		return e.principal(k.ID), nil
	}
	if e.refetch.AllowN(now, 1) {
		if e, err = c.fetch(ctx, k); err != nil {
			return Principal{}, err
		}
		if e.found && e.rec.match(k.Hash, c.now()) {
			return e.principal(k.ID), nil
		}
	}
	if !e.found {
		return Principal{}, invalidToken(fmt.Errorf("api key %s is unknown, revoked or expired", k.ID))
	}
	return Principal{}, invalidToken(fmt.Errorf("api key %s: the secret does not match, or has expired", k.ID))
}

func (e keyEntry) principal(id string) Principal {
	return Principal{Subject: APIKeySubject(id), Tenant: e.rec.Tenant, Roles: slices.Clone(e.rec.Roles), APIKeyID: id, ReadOnly: e.rec.ReadOnly}
}

// fetch looks id up once for all the requests waiting on it and caches the
// answer.
func (c *apiKeyCache) fetch(ctx context.Context, k ParsedAPIKey) (keyEntry, error) {
	v, err, _ := c.flight.Do(k.ID, func() (any, error) {
		// The entry ages from before the lookup: what it read is at most
		// APIKeyCacheTTL old when it expires, however slow the answer.
		start := c.now()
		rec, err := c.lookup(context.WithoutCancel(ctx), k.ID, k.Hash)
		e := keyEntry{rec: rec, found: err == nil, fetched: start}
		switch {
		case errors.Is(err, ErrAPIKeyNotFound):
		case err != nil:
			return keyEntry{}, fmt.Errorf("%w: %w", denial(codes.Unavailable, ReasonKeyLookupUnavailable,
				"the API key could not be checked now; retry"), err)
		case !ValidTenant(rec.Tenant):
			return keyEntry{}, invalidToken(fmt.Errorf("api key %s has malformed tenant %q", k.ID, rec.Tenant))
		}
		return c.put(k.ID, e), nil
	})
	if err != nil {
		return keyEntry{}, err
	}
	return v.(keyEntry), nil
}

func (c *apiKeyCache) put(id string, e keyEntry) keyEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, ok := c.entries[id]
	if ok {
		e.refetch = old.refetch
	} else {
		e.refetch = rate.NewLimiter(rate.Every(apiKeyRefetchEvery), apiKeyRefetchBurst)
	}
	if !ok && len(c.entries) >= apiKeyCacheSize {
		// Evict about a tenth, as tokenCache does.
		n := apiKeyCacheSize / 10
		for k := range c.entries {
			delete(c.entries, k)
			if n--; n <= 0 {
				break
			}
		}
	}
	c.entries[id] = e
	return e
}
