package identity

import (
	"crypto/sha256"
	"sync"
	"time"
)

// tokenCache remembers tokens that verified, so a client sending the same
// token on every request pays for one signature check, not one per call
// (ES256 costs ~80 µs, HS256 ~7 µs on the CI machine). An entry lives until
// the token's exp or maxAge after it was checked, whichever comes first, so a
// key withdrawn from the JWKS stops being honoured within maxAge. Keys are
// SHA-256 digests of the exact token bytes: only a byte-identical token that
// already passed every check can hit.
type tokenCache struct {
	mu      sync.RWMutex
	entries map[[sha256.Size]byte]cached
	max     int
	maxAge  time.Duration
}

type cached struct {
	p     Principal
	until time.Time
}

func newTokenCache(max int, maxAge time.Duration) *tokenCache {
	if max <= 0 {
		return nil
	}
	return &tokenCache{entries: make(map[[sha256.Size]byte]cached, max), max: max, maxAge: maxAge}
}

func (c *tokenCache) get(key [sha256.Size]byte, now time.Time) (Principal, bool) {
	c.mu.RLock()
	e, ok := c.entries[key]
	c.mu.RUnlock()
	if !ok || !now.Before(e.until) {
		return Principal{}, false
	}
	return e.p, true
}

func (c *tokenCache) put(key [sha256.Size]byte, p Principal, exp, now time.Time) {
	until := now.Add(c.maxAge)
	if exp.Before(until) {
		until = exp
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		// Evict about a tenth, expired or not; map order is random, which is
		// good enough and keeps this O(1) amortised with no bookkeeping.
		n := c.max / 10
		for k := range c.entries {
			delete(c.entries, k)
			if n--; n <= 0 {
				break
			}
		}
	}
	c.entries[key] = cached{p: p, until: until}
}
