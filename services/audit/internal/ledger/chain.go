package ledger

import (
	"crypto/sha256"
	"fmt"
	"time"
)

// Break is the first problem a ChainChecker found.
type Break struct {
	Seq    uint64 // where the chain breaks: the seq expected at that point
	Reason string // starts with one of the phrases documented on Add
}

func (b *Break) Error() string { return fmt.Sprintf("entry %d: %s", b.Seq, b.Reason) }

// ChainChecker verifies a tenant's entries streamed in seq order, with
// constant memory and no allocation per entry.
type ChainChecker struct {
	next     uint64 // seq expected next
	tenant   string
	prevHash string
	prevTS   time.Time
	brk      *Break
	buf      []byte
	// sum is the hash of the entry Add last hashed, raw (LastSum).
	sum [sha256.Size]byte
}

// NewChainChecker returns a checker expecting seq 1.
func NewChainChecker() *ChainChecker {
	return &ChainChecker{next: 1, prevHash: Genesis, buf: make([]byte, 0, 512)}
}

// ResumeChainChecker returns a checker that continues a chain already
// checked up to seq next-1 of tenant, whose last entry had hash prevHash
// and timestamp prevTS (the zero time when unknown).
func ResumeChainChecker(next uint64, tenant, prevHash string, prevTS time.Time) *ChainChecker {
	if next <= 1 {
		return NewChainChecker()
	}
	return &ChainChecker{next: next, tenant: tenant, prevHash: prevHash, prevTS: NormalizeTS(prevTS), buf: make([]byte, 0, 512)}
}

// Add checks e, the next entry of the stream. The Reason of the *Break it
// returns starts with one of:
//
//	"missing entry"                 e.Seq is past the expected seq (a gap)
//	"out of order"                  e.Seq is below it (repeated or moved back)
//	"tenant mismatch"               e belongs to another tenant than entry 1
//	"hash mismatch: entry altered"  e.Hash is not the hash of e's content
//	"broken link"                   e.PrevHash is not the previous entry's hash (Genesis for seq 1)
//	"timestamp decreased"           e.TS is before the previous entry's
//
// After the first break Add keeps returning that break: whatever follows a
// break cannot be trusted to be checked against the right predecessor.
func (c *ChainChecker) Add(e Entry) error {
	if c.brk != nil {
		return c.brk
	}
	ts := NormalizeTS(e.TS)
	var reason string
	switch {
	case e.Seq > c.next:
		reason = fmt.Sprintf("missing entry (the next present is seq %d)", e.Seq)
	case e.Seq < c.next:
		reason = fmt.Sprintf("out of order (got seq %d)", e.Seq)
	case c.next > 1 && e.TenantID != c.tenant:
		reason = fmt.Sprintf("tenant mismatch (%q, the log is %q's)", e.TenantID, c.tenant)
	case !c.hashOK(e):
		reason = "hash mismatch: entry altered"
	case e.PrevHash != c.prevHash:
		reason = "broken link: prev_hash is not the previous entry's hash"
		if c.next == 1 {
			reason = "broken link: prev_hash of the first entry is not " + Genesis
		}
	case ts.Before(c.prevTS):
		reason = fmt.Sprintf("timestamp decreased (%s after %s)", ts.Format(TSLayout), c.prevTS.Format(TSLayout))
	}
	if reason != "" {
		c.brk = &Break{Seq: c.next, Reason: reason}
		return c.brk
	}
	if c.next == 1 {
		c.tenant = e.TenantID
	}
	c.next++
	c.prevHash = e.Hash
	c.prevTS = ts
	return nil
}

// hashOK reports whether e.Hash is the lower-case hex of the hash of e's
// content; it leaves the hash in c.sum.
func (c *ChainChecker) hashOK(e Entry) bool {
	c.buf = appendCanonical(c.buf[:0], e)
	c.sum = sha256.Sum256(c.buf)
	if len(e.Hash) != 2*sha256.Size {
		return false
	}
	for i, b := range c.sum {
		if e.Hash[2*i] != hexDigits[b>>4] || e.Hash[2*i+1] != hexDigits[b&0xf] {
			return false
		}
	}
	return true
}

const hexDigits = "0123456789abcdef"

// LastSum is, after an Add that returned nil, the hash of that entry as 32
// raw bytes (its Merkle leaf data), until the next Add.
func (c *ChainChecker) LastSum() *[sha256.Size]byte { return &c.sum }

// Checked is the number of entries checked OK so far (for a resumed
// checker, counting those before it resumed).
func (c *ChainChecker) Checked() uint64 { return c.next - 1 }

// Last is the hash and timestamp of the last entry checked OK.
func (c *ChainChecker) Last() (string, time.Time) { return c.prevHash, c.prevTS }

// Err is the first break, or nil.
func (c *ChainChecker) Err() *Break { return c.brk }
