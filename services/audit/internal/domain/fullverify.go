package domain

import (
	"strconv"
	"sync"
	"time"

	"github.com/echopilot/echopilot/platform/apierr"
)

// Reasons of a refused verify=full.
const (
	ReasonFullVerifyNotAllowed  = "FULL_VERIFY_NOT_ALLOWED"
	ReasonFullVerifyRateLimited = "FULL_VERIFY_RATE_LIMITED"
)

// FullVerifyInterval is how often a tenant's log may be verified fully on
// request.
const FullVerifyInterval = time.Minute

// fullLimiter remembers when each tenant's last requested full
// verification started. It is per process: with several replicas a tenant
// gets at most one per minute per replica, which bounds the cost all the
// same. Entries older than the interval are dropped as it goes.
type fullLimiter struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// take reports whether tenant may start a full verification at now, and
// if not, how long until it may.
func (l *fullLimiter) take(tenant string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last = map[string]time.Time{}
	}
	if t, ok := l.last[tenant]; ok && now.Sub(t) < FullVerifyInterval {
		return false, FullVerifyInterval - now.Sub(t)
	}
	if len(l.last) > 10_000 {
		for k, t := range l.last {
			if now.Sub(t) >= FullVerifyInterval {
				delete(l.last, k)
			}
		}
	}
	l.last[tenant] = now
	return true, 0
}

// AllowFull checks that c may ask for a full verification of tenant's log
// now (a platform admin, or an admin of the tenant; once a minute per
// tenant) and takes the tenant's turn.
func (s *Service) AllowFull(c Caller, tenant string) error {
	if !c.Admin {
		return apierr.PermissionDenied(ReasonFullVerifyNotAllowed,
			"verify=full is for a platform admin or an admin of the tenant").InDomain(Domain)
	}
	ok, wait := s.full.take(tenant, s.cfg.Now())
	if !ok {
		secs := int((wait + time.Second - 1) / time.Second)
		return apierr.ResourceExhausted(ReasonFullVerifyRateLimited,
			"a full verification of this log ran less than a minute ago; retry in %d s", secs).
			InDomain(Domain).With("retry_after_seconds", strconv.Itoa(secs))
	}
	return nil
}
