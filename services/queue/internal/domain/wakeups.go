package domain

import "sync"

// Wakeups wakes long-polling lease calls when their tenant gets a runnable
// job: Notify closes the channel the tenant's waiters hold. Waiters
// subscribe before they look for work, so a job enqueued between their look
// and their wait still wakes them.
type Wakeups struct {
	mu      sync.Mutex
	tenants map[string]*wakeup
	stopped chan struct{}
	stop    sync.Once
}

type wakeup struct {
	ch   chan struct{}
	refs int
}

// NewWakeups returns a Wakeups with no waiters.
func NewWakeups() *Wakeups {
	return &Wakeups{tenants: make(map[string]*wakeup), stopped: make(chan struct{})}
}

// Notify wakes every current waiter of tenant.
func (w *Wakeups) Notify(tenant string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if e, ok := w.tenants[tenant]; ok {
		close(e.ch)
		delete(w.tenants, tenant)
	}
}

// NotifyAll wakes every current waiter of every tenant, to look again for
// work that may have come without a notification (after the notification
// channel was down).
func (w *Wakeups) NotifyAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for tenant, e := range w.tenants {
		close(e.ch)
		delete(w.tenants, tenant)
	}
}

// Stop wakes every waiter for good: the service is shutting down, and long
// polls should answer rather than hold up the graceful stop.
func (w *Wakeups) Stop() { w.stop.Do(func() { close(w.stopped) }) }

// Stopped is closed by Stop.
func (w *Wakeups) Stopped() <-chan struct{} { return w.stopped }

// subscribe returns a channel closed by the next Notify of tenant, and a
// function to call when no longer waiting on it.
func (w *Wakeups) subscribe(tenant string) (<-chan struct{}, func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	e, ok := w.tenants[tenant]
	if !ok {
		e = &wakeup{ch: make(chan struct{})}
		w.tenants[tenant] = e
	}
	e.refs++
	return e.ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		e.refs--
		// After a Notify the entry is gone (or replaced); only the last
		// waiter of a still-current entry removes it.
		if e.refs == 0 && w.tenants[tenant] == e {
			delete(w.tenants, tenant)
		}
	}
}
