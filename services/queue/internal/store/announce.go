package store

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	pstore "github.com/echopilot/echopilot/platform/store"
)

// announceTimeout bounds one NOTIFY round.
const announceTimeout = 5 * time.Second

// announcer tells other replicas' long polls (through PostgreSQL NOTIFY,
// see Listen) which tenants have new runnable jobs.
//
// It notifies after the enqueue has committed, from a goroutine of its own,
// rather than inside the enqueue's transaction: a transaction that
// notifies takes a database-wide lock at commit, so notifying enqueues
// commit one at a time, which cost a third of the enqueue throughput.
// Tenants announced while a round is being sent are merged into the next
// round, one NOTIFY per tenant, so a busy queue sends few.
//
// Delivery is best effort: a notification that cannot be sent only delays
// the wake-up until the waiting call looks again (domain.DefaultPoll).
type announcer struct {
	db *pstore.DB

	mu      sync.Mutex
	pending map[string]bool
	running bool
}

// announce queues tenants for the next round and starts one if none runs.
func (a *announcer) announce(tenants map[string]bool) {
	if len(tenants) == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pending == nil {
		a.pending = make(map[string]bool)
	}
	maps.Copy(a.pending, tenants)
	if !a.running {
		a.running = true
		go a.run()
	}
}

// run sends rounds until nothing is pending.
func (a *announcer) run() {
	for {
		a.mu.Lock()
		if len(a.pending) == 0 {
			a.running = false
			a.mu.Unlock()
			return
		}
		tenants := slices.Collect(maps.Keys(a.pending))
		clear(a.pending)
		a.mu.Unlock()

		ctx, cancel := context.WithTimeout(context.Background(), announceTimeout)
		// Best effort, see announcer: the error is deliberately dropped.
		_, _ = a.db.ExecContext(ctx, "SELECT pg_notify($1, t) FROM unnest(CAST($2 AS text[])) AS t", notifyChannel, tenants)
		cancel()
	}
}
