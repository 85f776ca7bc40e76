package domain

import (
	"context"
	"sync"
)

// Live counts the decisions this process made that are not stored yet, so
// stats include a caller's latest decisions (its own current call among
// them) without a database write on the request path. Decisions are stored
// in batches by Persist; Stats adds what is still pending to what is stored.
type Live struct {
	// view orders stats reads against batch writes: a read never sees a
	// batch both stored and pending, or neither.
	view    sync.RWMutex
	mu      sync.Mutex // guards pending
	pending map[string]counts
}

type counts struct{ total, denied, crossDenied int64 }

func (c *counts) apply(d Decision, sign int64) {
	c.total += sign
	if !d.Allowed {
		c.denied += sign
	}
	if d.CrossTenantDenied() {
		c.crossDenied += sign
	}
}

// NewLive returns an empty Live.
func NewLive() *Live { return &Live{pending: map[string]counts{}} }

// Add counts d as pending. It runs on the request path: no I/O.
func (l *Live) Add(d Decision) {
	l.mu.Lock()
	c := l.pending[d.TenantID]
	c.apply(d, 1)
	l.pending[d.TenantID] = c
	l.mu.Unlock()
}

// Drop forgets pending decisions that will never be stored (their loss is
// counted by the reporter's metrics).
func (l *Live) Drop(ds []Decision) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, d := range ds {
		c := l.pending[d.TenantID]
		c.apply(d, -1)
		if c.total == 0 {
			delete(l.pending, d.TenantID)
		} else {
			l.pending[d.TenantID] = c
		}
	}
}

// Persist stores a batch of pending decisions with record and stops
// counting them as pending. record is the store write; Stats cannot see the batch both stored and
// pending, as the write and the drop happen under the view lock.
func (l *Live) Persist(ctx context.Context, record func(context.Context, []Decision) error, ds []Decision) error {
	l.view.Lock()
	defer l.view.Unlock()
	if err := record(ctx, ds); err != nil {
		return err
	}
	l.Drop(ds)
	return nil
}

// Stats returns the stored counters within scope plus the pending ones.
func (l *Live) Stats(ctx context.Context, st Store, scope Scope) (Stats, error) {
	l.view.RLock()
	defer l.view.RUnlock()
	s, err := st.Stats(ctx, scope)
	if err != nil {
		return Stats{}, err
	}
	if s.PerTenant == nil {
		s.PerTenant = map[string]int64{}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for tenant, c := range l.pending {
		if !scope.AllTenants && tenant != scope.Tenant {
			continue
		}
		s.Total += c.total
		s.Denied += c.denied
		s.CrossTenantDenied += c.crossDenied
		s.PerTenant[tenant] += c.total
	}
	return s, nil
}
