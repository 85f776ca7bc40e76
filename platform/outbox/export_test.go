package outbox

import (
	"context"
	"time"

	"github.com/echopilot/echopilot/platform/store"
)

// ClaimQuery is the claim statement, for EXPLAIN.
func ClaimQuery(d store.Dialect, topics []string, now, until time.Time, limit int) (string, []any) {
	return claimQuery(d, topics, now, until, limit)
}

// Claim claims a batch as RunOnce does and then does nothing with it, like
// a relay that crashes right after claiming.
func (r *Relay) Claim(ctx context.Context) ([]Event, error) {
	claimed, _, err := r.claim(ctx)
	evs := make([]Event, len(claimed))
	for i, c := range claimed {
		evs[i] = c.Event
	}
	return evs, err
}

// SetPruneChunk makes Prune delete n rows per statement.
func (r *Relay) SetPruneChunk(n int) { r.pruneChunk = n }
