package ledger

import (
	"crypto/sha256"
	"sync"

	"golang.org/x/mod/sumdb/note"
)

// Opener opens signed checkpoints with a log's verifier keys and remembers the
// notes it has opened: a log's stored checkpoints are re-checked on every
// verification, and an Ed25519 check costs far more than hashing the
// note. A remembered note is one whose every byte was verified before (the
// key is its SHA-256), so a forged or altered note is still checked, and
// fails. Safe for concurrent use.
type Opener struct {
	verifiers []note.Verifier
	max       int

	mu     sync.Mutex
	opened map[[sha256.Size]byte]Checkpoint
}

// NewOpener returns an Opener accepting signatures of any of verifiers and
// remembering up to max notes (it forgets them all when full, which bounds
// its memory without bookkeeping per note).
func NewOpener(max int, verifiers ...note.Verifier) *Opener {
	return &Opener{verifiers: verifiers, max: max, opened: make(map[[sha256.Size]byte]Checkpoint)}
}

// Open is the package's Open with o's key, remembering successes.
func (o *Opener) Open(signed []byte) (Checkpoint, error) {
	key := sha256.Sum256(signed)
	o.mu.Lock()
	cp, ok := o.opened[key]
	o.mu.Unlock()
	if ok {
		return cp, nil
	}
	cp, err := Open(signed, o.verifiers...)
	if err != nil {
		return Checkpoint{}, err
	}
	o.mu.Lock()
	if len(o.opened) >= o.max {
		clear(o.opened)
	}
	o.opened[key] = cp
	o.mu.Unlock()
	return cp, nil
}
