package ledger_test

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

// Derive computes every node below StoredLevel as Append completed it,
// from the leaves alone; where leaves are gone (a retention cut) from the
// stored nodes that stand in for them, never from a stored node where the
// leaves are there; and fails when neither covers a part.
func TestDerive(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	const n = 100
	leaves := make([][]byte, n)
	for i := range leaves {
		leaves[i] = randLeaf(rnd)
	}
	nodes, _, _, err := ledger.Append(0, nil, leaves)
	if err != nil {
		t.Fatal(err)
	}
	all := map[ledger.NodeID][]byte{}
	for _, nd := range nodes {
		all[nd.ID] = nd.Hash
	}
	read := 0
	for _, nd := range nodes {
		if nd.ID.Stored() {
			read++
		}
	}
	if read != 6+3+1 { // levels 4, 5, 6 of 100 leaves
		t.Errorf("%d of %d nodes read from the store, want 10", read, len(nodes))
	}
	noStored := func(ledger.NodeID) ([]byte, bool) { return nil, false }
	sums := func(from uint64) func(uint64) ([]byte, bool) {
		return func(i uint64) ([]byte, bool) {
			if i < from || i >= n {
				return nil, false
			}
			return leaves[i], true
		}
	}
	for _, nd := range nodes {
		if nd.ID.Stored() {
			continue
		}
		if h, ok := ledger.Derive(nd.ID, sums(0), noStored); !ok || !bytes.Equal(h, nd.Hash) {
			t.Errorf("node %v derived %x (%v), want %x", nd.ID, h, ok, nd.Hash)
		}
	}
	// Leaves 0 to 5 cut: node (3, 0) is (2, 0) and (1, 2), the cut's
	// frontier, stored, with (1, 3) derived.
	frontier := map[ledger.NodeID][]byte{}
	for _, id := range ledger.RangeIDs(6) {
		frontier[id] = all[id]
	}
	fromFrontier := func(id ledger.NodeID) ([]byte, bool) { h, ok := frontier[id]; return h, ok }
	id := ledger.NodeID{Level: 3, Index: 0}
	if h, ok := ledger.Derive(id, sums(6), fromFrontier); !ok || !bytes.Equal(h, all[id]) {
		t.Errorf("node %v across a cut derived %x (%v), want %x", id, h, ok, all[id])
	}
	if h, ok := ledger.Derive(id, sums(6), noStored); ok {
		t.Errorf("node %v derived %x without the leaves or the frontier", id, h)
	}
	if h, ok := ledger.Derive(ledger.NodeID{Level: 3, Index: 13}, sums(0), noStored); ok {
		t.Errorf("node past the leaves derived: %x", h)
	}
	// A stored node that lies does not override the leaves under it.
	lie := func(ledger.NodeID) ([]byte, bool) { return make([]byte, 32), true }
	if h, ok := ledger.Derive(id, sums(0), lie); !ok || !bytes.Equal(h, all[id]) {
		t.Errorf("node %v with lying stored nodes: %x (%v), want %x", id, h, ok, all[id])
	}
	// A leaf that is not 32 bytes is not a leaf.
	short := func(i uint64) ([]byte, bool) { return leaves[i][:31], true }
	if h, ok := ledger.Derive(ledger.NodeID{Level: 0, Index: 1}, short, noStored); ok {
		t.Errorf("a 31-byte entry hash derived leaf %x", h)
	}
}
