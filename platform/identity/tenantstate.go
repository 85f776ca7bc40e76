package identity

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"
	"google.golang.org/grpc/codes"

	"github.com/echopilot/echopilot/platform/apierr"
)

// TenantState is a tenant's lifecycle state in tenancy's registry.
type TenantState int

// The states; the zero value is active, which is also what a tenant that
// is not registered (ErrTenantNotFound) counts as.
const (
	TenantActive TenantState = iota
	TenantSuspended
	TenantOffboarding
	TenantDeleted
)

// Active reports whether the tenant's writes are served.
func (s TenantState) Active() bool { return s == TenantActive }

// ErrTenantNotFound is what a TenantStateLookup returns for a tenant the
// registry does not hold: such a tenant is served as active.
var ErrTenantNotFound = errors.New("tenant not registered")

// TenantStateLookup reads a tenant's state from the registry (tenancy's
// GetTenantState, or tenancy's own store). Errors other than
// ErrTenantNotFound are outages.
type TenantStateLookup func(ctx context.Context, tenant string) (TenantState, error)

const (
	// TenantStateCacheTTL is how long a replica trusts the state it read:
	// the worst-case delay of a suspension (or resumption) on every replica
	// of every service, counted from SuspendTenant's answer.
	TenantStateCacheTTL = 2 * time.Second
	// tenantStateCacheSize bounds the tenants remembered.
	tenantStateCacheSize = 10_000
	// ReasonTenantSuspended: a suspended tenant's write.
	ReasonTenantSuspended = "TENANT_SUSPENDED"
	// ReasonTenantNotActive: a write of a tenant being offboarded or deleted.
	ReasonTenantNotActive = "TENANT_NOT_ACTIVE"
)

// TenantStates is a cached view of the registry's tenant states, polled on
// demand: a state is read on the first use after TenantStateCacheTTL, once
// for all the requests waiting on it. When the registry cannot be asked,
// the last state read is kept (a tenant never read is served as active):
// suspension is a billing measure, and a tenancy outage must not stop every
// tenant's writes.
type TenantStates struct {
	lookup TenantStateLookup
	log    *zap.Logger
	flight singleflight.Group
	now    func() time.Time

	mu      sync.RWMutex
	entries map[string]stateEntry
}

type stateEntry struct {
	state   TenantState
	fetched time.Time
}

// NewTenantStates returns a cache over lookup; log (nil: discarded) hears
// of outages.
func NewTenantStates(lookup TenantStateLookup, log *zap.Logger) *TenantStates {
	if log == nil {
		log = zap.NewNop()
	}
	return &TenantStates{lookup: lookup, log: log, now: time.Now, entries: map[string]stateEntry{}}
}

// State returns tenant's state, at most TenantStateCacheTTL old while the
// registry answers.
func (c *TenantStates) State(ctx context.Context, tenant string) TenantState {
	c.mu.RLock()
	e, ok := c.entries[tenant]
	c.mu.RUnlock()
	if ok && c.now().Sub(e.fetched) < TenantStateCacheTTL {
		return e.state
	}
	v, _, _ := c.flight.Do(tenant, func() (any, error) {
		// The entry ages from before the lookup, as the API key cache's.
		start := c.now()
		st, err := c.lookup(context.WithoutCancel(ctx), tenant)
		switch {
		case errors.Is(err, ErrTenantNotFound):
			st = TenantActive
		case err != nil:
			c.log.Warn("tenant state lookup failed; serving the last known state", zap.String("tenant_id", tenant), zap.Error(err))
			return e.state, nil // the zero entry's state is active
		}
		c.put(tenant, stateEntry{state: st, fetched: start})
		return st, nil
	})
	return v.(TenantState)
}

func (c *TenantStates) put(tenant string, e stateEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[tenant]; !ok && len(c.entries) >= tenantStateCacheSize {
		n := tenantStateCacheSize / 10 // evict about a tenth, as tokenCache does
		for k := range c.entries {
			delete(c.entries, k)
			if n--; n <= 0 {
				break
			}
		}
	}
	c.entries[tenant] = e
}

// CheckWrite refuses a write of caller c when its tenant is not active:
// FAILED_PRECONDITION TENANT_SUSPENDED (or TENANT_NOT_ACTIVE). Platform
// admins and platform services are never refused: an admin acts for the
// platform, not for the tenant, and services carry the platform's own work
// (the audit entries of the suspension itself, for one).
func (c *TenantStates) CheckWrite(ctx context.Context, caller Caller) *apierr.Error {
	if c == nil || caller.IsPlatformAdmin() || caller.Service != "" {
		return nil
	}
	switch c.State(ctx, caller.Tenant) {
	case TenantActive:
		return nil
	case TenantSuspended:
		return denial(codes.FailedPrecondition, ReasonTenantSuspended,
			"tenant %q is suspended: its data can be read, not changed", caller.Tenant)
	}
	return denial(codes.FailedPrecondition, ReasonTenantNotActive, "tenant %q is not active: its data cannot be changed", caller.Tenant)
}
