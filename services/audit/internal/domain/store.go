// Package domain holds the audit use cases: appending to a tenant's
// chained, Merkle-tree-backed log, verifying it, signing checkpoints and
// proving inclusion and consistency. It owns the Store interface.
package domain

import (
	"context"
	"errors"
	"time"

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
}

// Batch is what an append writes for one tenant.
type Batch struct {
	Entries []ledger.Entry
	Nodes   []ledger.Node
	// Checkpoint is the signed checkpoint of the log after the batch.
	Checkpoint []byte
}

// BuildFunc computes a tenant's batch from its head, inside the append's
// transaction (the head is locked meanwhile).
type BuildFunc func(tenant string, h Head) (Batch, error)

// StoredCheckpoint is a signed checkpoint as kept.
type StoredCheckpoint struct {
	Size uint64
	Note string
}

// Store keeps the logs.
type Store interface {
	// Append locks each tenant's head, calls build with it and writes the
	// batch, all in one transaction.
	Append(ctx context.Context, tenants []string, build BuildFunc) error
	// Entries returns up to limit entries after afterSeq, in order.
	Entries(ctx context.Context, tenant string, afterSeq uint64, limit int) ([]ledger.Entry, error)
	// Scan calls fn with every entry in seq order, from one snapshot.
	Scan(ctx context.Context, tenant string, fn func(ledger.Entry) error) error
	// Size counts the tenant's entries.
	Size(ctx context.Context, tenant string) (uint64, error)
	// Nodes returns the hashes of ids (ErrNodeMissing when one is absent).
	Nodes(ctx context.Context, tenant string, ids []ledger.NodeID) ([][]byte, error)
	// Checkpoints lists the tenant's signed checkpoints by size.
	Checkpoints(ctx context.Context, tenant string) ([]StoredCheckpoint, error)
	// LatestCheckpoint is the largest one; false when the log is empty.
	LatestCheckpoint(ctx context.Context, tenant string) (StoredCheckpoint, bool, error)
}
