package domain

import (
	"bytes"
	"sync"

	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

// witness is the service's memory of each tenant's log: the largest signed
// checkpoint this process has seen match the log's entries (in a full
// verification, a scrub or an incremental read that passed). A database
// restored from an older copy is consistent in itself, its verified state
// included, so only a checkpoint kept outside it shows the rollback; the
// scrubber and full verifications check the log against the witness as
// against a checkpoint a client held (verifyChunk's held): the log must
// still reach that size and have that root there.
//
// It holds one small record per tenant (a size and a 32-byte root), and
// only while the process lives: a restart forgets it, and so does a replica
// that never read the log. Across restarts, the `audit-verify --follow`
// monitor, which keeps every checkpoint it verified in its checkpoint dir,
// is what catches a rollback.
type witness struct {
	mu   sync.Mutex
	kept map[string]ledger.Checkpoint
}

// held is the checkpoint the witness keeps for tenant when it is beyond
// size (a full verification from the state of that size must reach it).
func (w *witness) held(tenant string, size uint64) (ledger.Checkpoint, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	cp, ok := w.kept[tenant]
	return cp, ok && cp.Size > size
}

// add appends the witness's checkpoint of tenant to cps when it is beyond
// size and thorough (a full verification or a scrub chunk) holds.
func (w *witness) add(tenant string, cps []ledger.Checkpoint, size uint64, thorough bool) []ledger.Checkpoint {
	if !thorough {
		return cps
	}
	if cp, ok := w.held(tenant, size); ok {
		cps = append(cps, cp)
	}
	return cps
}

// saw keeps the checkpoint of cps (sorted by size) of size matched, if it
// is larger than the one kept: a verification that passed matched every
// checkpoint of cps up to that size with the entries.
func (w *witness) saw(tenant string, cps []ledger.Checkpoint, matched uint64) {
	if matched == 0 {
		return
	}
	for i := len(cps) - 1; i >= 0; i-- {
		if cps[i].Size > matched {
			continue
		}
		if cps[i].Size == matched {
			w.keep(tenant, cps[i])
		}
		return
	}
}

func (w *witness) keep(tenant string, cp ledger.Checkpoint) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.kept == nil {
		w.kept = map[string]ledger.Checkpoint{}
	}
	if old, ok := w.kept[tenant]; ok && (old.Size > cp.Size || old.Size == cp.Size && bytes.Equal(old.Root, cp.Root)) {
		return
	}
	w.kept[tenant] = ledger.Checkpoint{Origin: cp.Origin, Size: cp.Size, Root: bytes.Clone(cp.Root)}
}
