package grpcapi

import (
	"context"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/services/queue/internal/domain"
)

// ReasonWorkerRateLimited refuses a worker call over its tenant's budget.
const ReasonWorkerRateLimited = "WORKER_RATE_LIMITED"

// maxLimitedTenants bounds the buckets one replica keeps. Past it the map
// starts afresh: every tenant gets a full bucket again, which is lenient
// for one refill and keeps memory bounded against a flood of tenant ids
// (only verified callers get here, so that flood is already unlikely).
const maxLimitedTenants = 10_000

// WorkerLimit is a per-tenant token bucket for the worker RPCs (lease,
// heartbeat, complete, fail). Edge workers reach those RPCs through an
// edge route that does not pass the REST gateway's per-tenant limits, so
// the queue holds its own. The budget is per replica: N replicas admit up
// to N times it. A nil *WorkerLimit admits everything.
type WorkerLimit struct {
	rate  rate.Limit
	burst int
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

// NewWorkerLimit returns a limit of perSecond calls per tenant with bursts
// of burst (0: twice perSecond), or nil when perSecond is 0 (no limit).
func NewWorkerLimit(perSecond, burst int) *WorkerLimit {
	if perSecond <= 0 {
		return nil
	}
	if burst <= 0 {
		burst = 2 * perSecond
	}
	return &WorkerLimit{rate: rate.Limit(perSecond), burst: burst, now: time.Now, buckets: map[string]*rate.Limiter{}}
}

// admit spends one call of tenant's budget, or says when to retry.
func (l *WorkerLimit) admit(tenant string) error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	b, ok := l.buckets[tenant]
	if !ok {
		if len(l.buckets) >= maxLimitedTenants {
			clear(l.buckets)
		}
		b = rate.NewLimiter(l.rate, l.burst)
		l.buckets[tenant] = b
	}
	l.mu.Unlock()
	now := l.now()
	r := b.ReserveN(now, 1)
	delay := r.DelayFrom(now)
	if delay == 0 {
		return nil
	}
	r.CancelAt(now) // refused calls do not spend the budget
	return apierr.ResourceExhausted(ReasonWorkerRateLimited,
		"worker calls of this tenant exceed %g per second on this replica; retry after %v", float64(l.rate), delay.Round(time.Millisecond)).
		InDomain(domain.Domain).With("retry_after_ms", strconv.FormatInt(max(delay.Milliseconds(), 1), 10))
}

// workerTenant is tenant for the worker RPCs: the tenant, once its worker
// budget admits the call.
func (s *Server) workerTenant(ctx context.Context) (string, error) {
	t, err := s.tenant(ctx)
	if err != nil {
		return "", err
	}
	return t, s.limit.admit(t)
}
