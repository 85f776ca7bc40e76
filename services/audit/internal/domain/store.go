// Package domain is the audit ledger: appending to a tenant's chained,
// Merkle-tree-backed log, verifying it, signing checkpoints and proving
// inclusion and consistency, retention, search and export. It owns the
// ledger's store port (Store).
//
// The service's two other parts are packages beside it rather than types
// here, so that each is read, and reaches, only its own store port: intake
// (inbound compliance webhooks and their secrets) appends through
// Service.AppendOnce, never this Store; outbound (webhook endpoints and
// deliveries) sees entries only as the outbox events an append writes
// (Config.Events). The SQL store satisfies all three ports.
package domain

import (
	"context"
	"errors"
	"time"

	"github.com/echopilot/echopilot/platform/outbox"
	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

// ErrNodeMissing is a tree node the log should have but has not: the
// storage was tampered with or damaged.
var ErrNodeMissing = errors.New("merkle node missing")

// Head is the state of a tenant's log that an append builds on.
type Head struct {
	Size     uint64
	LastHash string // ledger.Genesis when empty
	LastTS   time.Time
	// Range are the hashes of ledger.RangeIDs(Size).
	Range [][]byte
	// Endpoints reads the tenant's enabled webhook endpoints with their
	// filters, for Config.Events; it is called only when an entry is to be
	// delivered.
	Endpoints func() ([]Route, error)
	// Duplicate marks, in the order of the tenant's keys given to Append,
	// the entries whose idempotency key was taken before.
	Duplicate []bool
}

// KeyRetention is how long an idempotency key is remembered: longer than
// any producer keeps redelivering (the outbox keeps events 7 days).
const KeyRetention = 30 * 24 * time.Hour

// Batch is what an append writes for one tenant.
type Batch struct {
	Entries []ledger.Entry
	Nodes   []ledger.Node
	// Range are the hashes of ledger.RangeIDs of the new size, kept with
	// the head so the next append need not read them.
	Range [][]byte
	// Checkpoint is the signed checkpoint of the log after the batch.
	Checkpoint []byte
	// Events go to the outbox in the same transaction (Config.Events).
	Events []outbox.Event
}

// Route is a webhook endpoint an append's entries may go to, with its
// filter: the event types it takes (empty: every type) and the least
// severity ("": the default, high).
type Route struct {
	ID          string
	EventTypes  []string
	MinSeverity string
}

// EventsFunc makes the outbox events of entries appended to tenant's log,
// written in the append's transaction; endpoints reads the tenant's
// enabled webhook endpoints (Head.Endpoints).
type EventsFunc func(tenant string, entries []ledger.Entry, endpoints func() ([]Route, error)) ([]outbox.Event, error)

// BuildFunc computes a tenant's batch from its head, inside the append's
// transaction (the head is locked meanwhile).
type BuildFunc func(tenant string, h Head) (Batch, error)

// ScanFunc calls fn with every entry in seq order.
type ScanFunc func(fn func(ledger.Entry) error) error

// StoredCheckpoint is a signed checkpoint as kept.
type StoredCheckpoint struct {
	Size uint64
	Note string
}

// IssuedCheckpoint is a stored signed checkpoint with the time of the
// append batch that issued it.
type IssuedCheckpoint struct {
	StoredCheckpoint
	Issued time.Time
}

// Store keeps the logs: the ledger's store port.
type Store interface {
	// Append locks each tenant's head, claims its idempotency keys
	// (keys[tenant], in the order of its entries; "" for none), calls build
	// with both and writes the batch, all in one transaction.
	Append(ctx context.Context, tenants []string, keys map[string][]string, build BuildFunc) error
	// Entries returns up to limit entries after afterSeq, in order.
	Entries(ctx context.Context, tenant string, afterSeq uint64, limit int) ([]ledger.Entry, error)
	// Scan calls fn with every entry in seq order, from one snapshot.
	Scan(ctx context.Context, tenant string, fn func(ledger.Entry) error) error
	// Size is the number of the tenant's entries, as the head records it.
	Size(ctx context.Context, tenant string) (uint64, error)
	// ReadTree calls fn with the tenant's size and a fetch of its tree
	// nodes; every node of a tree of that size can be fetched, in as few
	// round trips as the store can manage.
	ReadTree(ctx context.Context, tenant string, fn func(size uint64, fetch ledger.Fetch) error) error
	// LatestCheckpoint is the largest one; false when the log is empty.
	LatestCheckpoint(ctx context.Context, tenant string) (StoredCheckpoint, bool, error)
	// VerifiedStore reads snapshots for incremental verification and keeps
	// its state.
	VerifiedStore
	// RetentionStore keeps retention settings and cuts.
	RetentionStore
	// IssuedCheckpoints returns up to limit of the tenant's signed
	// checkpoints of size fromSize or more, by size, each with the time of
	// the entry at its size (the append that issued it).
	IssuedCheckpoints(ctx context.Context, tenant string, fromSize uint64, limit int) ([]IssuedCheckpoint, error)

	// AppendOnce is Append for one tenant, done only if none of claims was
	// claimed before by the tenant; the claims are written in the same
	// transaction (none of them when it is a duplicate), and the tenant's
	// expired claims are deleted. It reports a duplicate.
	AppendOnce(ctx context.Context, tenant string, claims []Claim, build BuildFunc) (dup bool, err error)
}

// Claim is a key an append claims once in its tenant's log, remembered
// until Until: a replay key, a sender's event id, an idempotency key.
type Claim struct {
	Key   string
	Until time.Time
}
