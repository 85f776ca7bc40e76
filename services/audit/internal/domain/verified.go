package domain

import (
	"context"
	"time"

	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

// VerifiedState is what verifications of a tenant's log established and
// found: the state a read continues from, the sticky failure, and the last
// full verification's result.
type VerifiedState struct {
	// Size entries were verified; Root is their tree's root, LastHash and
	// LastTS the last one's hash and timestamp, Range the hashes of
	// ledger.RangeIDs(Size). At is when (zero when never).
	Size     uint64
	Root     []byte
	LastHash string
	LastTS   time.Time
	Range    [][]byte
	At       time.Time
	// Partial marks a state in the middle of a chunked verification, whose
	// entries matched signed checkpoints only up to Covered (a stored state
	// is always covered up to its size).
	Partial bool
	Covered uint64
	// Keys are the note verifier keys trusted when the state was reached:
	// it holds only while every one of them is still trusted.
	Keys []string
	// CutCheckpoint is set on a state that starts at a retention cut (never
	// stored): the signed checkpoint its root must match. Retention is the
	// setting and cut it comes from.
	CutCheckpoint string
	Retention     Retention
	// FailedSeq > 0 is the first bad entry a verification found: every
	// read reports it until a later full verification passes.
	FailedSeq    uint64
	FailedReason string
	FailedAt     time.Time
	// The last full verification (the scrubber's or a verify=full read's);
	// FullAt is zero when there was none.
	FullAt       time.Time
	FullValid    bool
	FullFirstBad uint64
	FullReason   string
}

// LogSnapshot reads one snapshot of a tenant's log: everything it returns
// agrees, whatever commits meanwhile.
type LogSnapshot interface {
	// Verified is the stored verified state; false when there is none.
	Verified() (VerifiedState, bool, error)
	// Size is the number of entries as the head records it.
	Size() (uint64, error)
	// Checkpoints are the signed checkpoints of size > after, by size.
	Checkpoints(after uint64) ([]StoredCheckpoint, error)
	// Scan calls fn with every entry of seq > after, in seq order.
	Scan(after uint64, fn func(ledger.Entry) error) error
	// Entries returns up to limit entries after afterSeq, in order.
	Entries(afterSeq uint64, limit int) ([]ledger.Entry, error)
	// Search returns the entries q selects, in q's order.
	Search(q Query) ([]ledger.Entry, error)
	// Fetch fetches stored tree nodes.
	Fetch(ids []ledger.NodeID) ([][]byte, error)
	// Nodes calls fn with each stored tree node in ranges (a missing one
	// is left out), in no particular order; hash is valid only during the
	// call. It may be called while a Scan runs, from fn or from another
	// goroutine.
	Nodes(ranges []NodeRange, fn func(id ledger.NodeID, hash []byte)) error
	// Retention is the tenant's retention setting and cut (the zero
	// Retention when none).
	Retention() (Retention, error)
	// LastBefore is the largest seq of an entry older than t (0: none).
	LastBefore(t time.Time) (uint64, error)
}

// VerifiedStore keeps verification state.
type VerifiedStore interface {
	// ReadSnapshot calls fn with one snapshot of tenant's log.
	ReadSnapshot(ctx context.Context, tenant string, fn func(LogSnapshot) error) error
	// UpdateVerified calls fn with tenant's stored state (false when none)
	// in a write transaction that holds it, and stores what fn returns
	// unless fn returns false.
	UpdateVerified(ctx context.Context, tenant string, fn func(cur VerifiedState, ok bool) (VerifiedState, bool)) error
	// LogTenants lists up to limit tenants that have a log, in order,
	// after the tenant after ("" for the first).
	LogTenants(ctx context.Context, after string, limit int) ([]string, error)
}

// covered is the size up to which st's entries matched a signed checkpoint.
func (st VerifiedState) covered() uint64 {
	if st.Partial {
		return st.Covered
	}
	return st.Size
}

// restart is st without the verified state (a verification from base, the
// start of the retained log), keeping the failure and the last full
// verification.
func (st VerifiedState) restart(base VerifiedState) VerifiedState {
	z := base
	z.FailedSeq, z.FailedReason, z.FailedAt = st.FailedSeq, st.FailedReason, st.FailedAt
	z.FullAt, z.FullValid, z.FullFirstBad, z.FullReason = st.FullAt, st.FullValid, st.FullFirstBad, st.FullReason
	return z
}

// progressTo is st with the verified state of p (its size, root, frontier,
// last entry, when and by which keys), keeping st's failure and last full
// verification.
func (st VerifiedState) progressTo(p VerifiedState) VerifiedState {
	st.Size, st.Root, st.LastHash, st.LastTS, st.Range = p.Size, p.Root, p.LastHash, p.LastTS, p.Range
	st.Keys, st.At = p.Keys, p.At
	return st
}
