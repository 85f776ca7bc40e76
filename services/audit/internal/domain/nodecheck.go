package domain

import (
	"bytes"
	"fmt"

	"github.com/transparency-dev/merkle/compact"

	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

// NodeRange is the stored tree nodes of one level with index From to To
// (both included).
type NodeRange struct {
	Level    uint
	From, To uint64
}

// nodeBatch is how many leaves' nodes a node check reads at once: about
// nodeBatch/2^(ledger.StoredLevel-1) nodes, in one range per stored level
// (a statement each on SQLite, one for all on PostgreSQL).
const nodeBatch = 4096

// nodeCheck compares the stored tree nodes (audit_nodes, which inclusion
// proofs, consistency proofs and page checks are built from) with the
// nodes a full verification recomputes from the entries: the compact
// range's Append visits every node it completes, and each one of a stored
// level (ledger.StoredLevel and up; the lower ones are derived from the
// entries) must be stored with that hash. Without it a damaged stored node
// goes unnoticed until a proof that uses it fails at a client.
//
// The stored nodes are read a batch of nodeBatch leaves at a time, when
// the first leaf of the batch is visited: the ranges of a batch are known
// from its leaf indices alone (a node is completed by the append of its
// last leaf), so each level is one range read.
//
// A node that differs from the recomputed one is a finding only once the
// entries under it are known to be authentic, i.e. when a signed
// checkpoint at or after its last leaf matched the entries (settle): if
// the checkpoint does not match, the entries were rewritten (the stored
// nodes may well be the originals) and the verification reports that.
//
// A nil nodeCheck (newNodeCheck's when off) checks nothing: an incremental
// read keeps to its page check.
type nodeCheck struct {
	r LogSnapshot
	// end is the leaf index after the current batch.
	end uint64
	// The batch's stored nodes of level l, index lo[l] on: node lo[l]+k
	// has state[l][k] (nodeMissing, nodeStored, or nodeMalformed: not a
	// hash) and, when stored, hash buf[l][32k:32k+32].
	lo     [64]uint64
	state  [64][]uint8
	buf    [64][]byte
	levels int
	// The first stored node found to differ from (or missing beside) the
	// recomputed one, not settled yet.
	pending *ledger.NodeID
	missing bool
	err     error
}

// States of a stored node in a batch.
const (
	nodeMissing uint8 = iota
	nodeStored
	nodeMalformed
)

func newNodeCheck(r LogSnapshot, on bool) *nodeCheck {
	if !on {
		return nil
	}
	return &nodeCheck{r: r}
}

// visitor is the compact range visitor that checks each node it is given;
// nil when c is off, so an incremental verification pays nothing.
func (c *nodeCheck) visitor() compact.VisitFn {
	if c == nil {
		return nil
	}
	return c.visit
}

func (c *nodeCheck) visit(id compact.NodeID, hash []byte) {
	if c.err != nil || c.pending != nil {
		return
	}
	if id.Level == 0 && id.Index >= c.end {
		if c.err = c.fetch(id.Index); c.err != nil {
			return
		}
	}
	if !ledger.NodeID(id).Stored() {
		return
	}
	state := nodeMissing
	l, k := id.Level, id.Index-c.lo[id.Level]
	if l < uint(c.levels) && id.Index >= c.lo[l] && k < uint64(len(c.state[l])) {
		state = c.state[l][k]
	}
	if state != nodeStored || !bytes.Equal(c.buf[l][32*k:32*k+32], hash) {
		c.pending, c.missing = &ledger.NodeID{Level: id.Level, Index: id.Index}, state == nodeMissing
	}
}

// fetch reads the stored nodes completed by the leaves of the batch that
// starts at leaf from: at level l, those whose last leaf (i+1)·2^l - 1 is
// in [from, end).
func (c *nodeCheck) fetch(from uint64) error {
	end := (from/nodeBatch + 1) * nodeBatch
	c.end = end
	var ranges []NodeRange
	c.levels = 0
	for l := uint(0); l < 64 && end>>l > 0; l++ {
		lo, hi := ((from+1)+(uint64(1)<<l)-1)>>l-1, end>>l-1 // ceil((from+1)/2^l)-1, end/2^l-1
		c.lo[l], c.state[l] = lo, c.state[l][:0]
		c.levels = int(l) + 1
		if lo > hi || !(ledger.NodeID{Level: l}).Stored() {
			continue
		}
		ranges = append(ranges, NodeRange{Level: l, From: lo, To: hi})
		n := int(hi - lo + 1)
		if cap(c.state[l]) < n {
			c.state[l], c.buf[l] = make([]uint8, n), make([]byte, 32*n)
		}
		c.state[l] = c.state[l][:n]
		clear(c.state[l])
	}
	err := c.r.Nodes(ranges, func(id ledger.NodeID, hash []byte) {
		l := id.Level
		if l >= uint(c.levels) || id.Index < c.lo[l] || id.Index-c.lo[l] >= uint64(len(c.state[l])) {
			return
		}
		k := id.Index - c.lo[l]
		if len(hash) != 32 {
			c.state[l][k] = nodeMalformed
			return
		}
		c.state[l][k] = nodeStored
		copy(c.buf[l][32*k:], hash)
	})
	if err != nil {
		return fmt.Errorf("stored tree nodes: %w", err)
	}
	return nil
}

// settle is called after each entry; covered reports that a signed
// checkpoint at the tree's current size matched the entries, which makes a
// pending difference a finding (reported with fail). It returns a read
// error.
func (c *nodeCheck) settle(covered bool, fail func(seq uint64, format string, args ...any)) error {
	if c == nil {
		return nil
	}
	if c.pending != nil && covered {
		c.report(fail, "the stored tree is damaged")
	}
	return c.err
}

// finish reports a difference no checkpoint settled (the chunk or the log
// ended first) and returns a read error.
func (c *nodeCheck) finish(fail func(seq uint64, format string, args ...any)) error {
	if c == nil {
		return nil
	}
	if c.pending != nil {
		c.report(fail, "the entries were rewritten or the stored tree is damaged")
	}
	return c.err
}

// report fails at the first entry under the pending node.
func (c *nodeCheck) report(fail func(seq uint64, format string, args ...any), cause string) {
	id := *c.pending
	c.pending = nil
	what := "does not match the entries"
	if c.missing {
		what = "is missing"
	}
	fail(id.Index<<id.Level+1, "stored Merkle node (level %d, index %d) %s: %s", id.Level, id.Index, what, cause)
}
