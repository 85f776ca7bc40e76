package domain

import (
	"context"
	"sync"
	"time"
)

// reachedStates keeps, per tenant, the latest verified state a read of
// this process reached, which a background writer stores. A read used
// to store it in its own write transaction before it answered: on
// PostgreSQL half a dozen round trips and a commit's flush, on SQLite a
// wait for the process's one writer behind the appends, and every reader of
// a busy tenant queued on that row. Now one writer per tenant stores the
// latest state in the background, and a read of this process starts from
// the state kept here when it is ahead of the one its snapshot shows stored
// (and within the log the snapshot sees), so it does not verify again what
// another read has just verified, whether or not the writer has stored it
// yet. Losing a state (a crash, a failed write) loses work, never a
// finding: failures and full verifications are still stored before the
// read answers.
type reachedStates struct {
	mu      sync.Mutex
	latest  map[string]VerifiedState
	writing map[string]bool
}

// maxReachedStates bounds the tenants kept; beyond it the states already
// stored are dropped (about 2 KiB each at most).
const maxReachedStates = 4096

// ahead returns tenant's latest state when it is ahead of st and
// within a log of size entries.
func (r *reachedStates) ahead(tenant string, st VerifiedState, size uint64) (VerifiedState, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.latest[tenant]
	if !ok || p.Size <= st.Size || p.Size > size {
		return VerifiedState{}, false
	}
	return p, true
}

// put makes reached tenant's latest state (unless a larger one is) and
// starts the tenant's writer unless it runs; store stores a state.
func (r *reachedStates) put(tenant string, reached VerifiedState, store func(context.Context, VerifiedState) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.latest == nil {
		r.latest, r.writing = map[string]VerifiedState{}, map[string]bool{}
	}
	if p, ok := r.latest[tenant]; ok && p.Size >= reached.Size {
		return
	}
	if len(r.latest) >= maxReachedStates {
		for t := range r.latest {
			if !r.writing[t] {
				delete(r.latest, t)
			}
		}
	}
	r.latest[tenant] = reached
	if r.writing[tenant] {
		return // the writer stores it after the one it is storing
	}
	r.writing[tenant] = true
	go r.write(tenant, store)
}

// write stores tenant's latest state until it has stored the latest.
func (r *reachedStates) write(tenant string, store func(context.Context, VerifiedState) error) {
	for {
		r.mu.Lock()
		st := r.latest[tenant]
		r.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := store(ctx, st)
		cancel()
		r.mu.Lock()
		if p := r.latest[tenant]; err != nil || p.Size == st.Size {
			if err != nil {
				// Lost: reads verify from the stored state again.
				delete(r.latest, tenant)
			}
			delete(r.writing, tenant)
			r.mu.Unlock()
			return
		}
		r.mu.Unlock() // a larger one came meanwhile
	}
}
