package domain

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

// storedTree is a LogSnapshot of which only Nodes works: the nodes of a
// tree as an append stores them.
type storedTree struct {
	LogSnapshot
	nodes map[ledger.NodeID][]byte
	reads int
	asked []NodeRange
}

func (s *storedTree) Nodes(ranges []NodeRange, fn func(ledger.NodeID, []byte)) error {
	s.reads++
	s.asked = append(s.asked, ranges...)
	for _, r := range ranges {
		for i := r.From; i <= r.To; i++ {
			id := ledger.NodeID{Level: r.Level, Index: i}
			if h, ok := s.nodes[id]; ok {
				fn(id, h)
			}
		}
	}
	return nil
}

func testLeaves(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		h := sha256.Sum256(binary.BigEndian.AppendUint64(nil, uint64(i)))
		out[i] = h[:]
	}
	return out
}

// checkNodes runs a node check over leaves from..len(leaves) as a
// verification from the state of size from does, every entry covered by a
// checkpoint; it returns the failure (0 and "" when none).
func checkNodes(t *testing.T, st *storedTree, leaves [][]byte, from int) (uint64, string) {
	t.Helper()
	_, _, rng, err := ledger.Append(0, nil, leaves[:from])
	if err != nil {
		t.Fatal(err)
	}
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	tree, err := rf.NewRange(0, uint64(from), rng)
	if err != nil {
		t.Fatal(err)
	}
	var bad uint64
	var reason string
	fail := func(seq uint64, format string, args ...any) {
		if bad == 0 {
			bad, reason = seq, fmt.Sprintf(format, args...)
		}
	}
	c := newNodeCheck(st, true)
	for _, leaf := range leaves[from:] {
		if err := tree.Append(rfc6962.DefaultHasher.HashLeaf(leaf), c.visitor()); err != nil {
			t.Fatal(err)
		}
		if err := c.settle(true, fail); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.finish(fail); err != nil {
		t.Fatal(err)
	}
	return bad, reason
}

// The node check finds a damaged or missing stored node and names the
// first leaf under it, from any starting size, reading a batch of leaves'
// nodes at a time.
func TestNodeCheck(t *testing.T) {
	const n = 3000
	leaves := testLeaves(n)
	nodes, _, _, err := ledger.Append(0, nil, leaves)
	if err != nil {
		t.Fatal(err)
	}
	intact := func() *storedTree {
		st := &storedTree{nodes: map[ledger.NodeID][]byte{}}
		for _, nd := range nodes {
			if nd.ID.Stored() {
				st.nodes[nd.ID] = nd.Hash
			}
		}
		return st
	}
	for _, from := range []int{0, 1, 1000, 1024, 1500} {
		st := intact()
		if bad, reason := checkNodes(t, st, leaves, from); bad != 0 {
			t.Fatalf("from %d: intact tree found bad at %d: %s", from, bad, reason)
		}
		// Every stored node the leaves complete was read, a batch at a
		// time, and no node of a lower level.
		asked := 0
		for _, r := range st.asked {
			asked += int(r.To - r.From + 1)
			if r.Level < ledger.StoredLevel {
				t.Errorf("from %d: read level %d", from, r.Level)
			}
		}
		const per = 1 << (ledger.StoredLevel - 1) // leaves per stored node, about
		if asked < (n-from)/(2*per) || asked > (n-from+nodeBatch)/per+64 || st.reads > (n-from)/nodeBatch+2 {
			t.Errorf("from %d: %d reads of %d nodes", from, st.reads, asked)
		}
	}
	for _, c := range []struct {
		id      ledger.NodeID
		from    int
		missing bool
		seq     uint64
	}{
		{ledger.NodeID{Level: 4, Index: 2}, 0, false, 33},
		{ledger.NodeID{Level: 4, Index: 127}, 1500, false, 2033},
		{ledger.NodeID{Level: 11, Index: 0}, 1500, false, 1}, // completed by leaf 2047, covers from leaf 0
		{ledger.NodeID{Level: 5, Index: 75}, 1024, true, 2401},
		{ledger.NodeID{Level: 4, Index: 10}, 0, false, 161}, // not a hash: 31 bytes
	} {
		st := intact()
		switch {
		case c.missing:
			delete(st.nodes, c.id)
		case c.id.Index == 10:
			st.nodes[c.id] = st.nodes[c.id][:31]
		default:
			st.nodes[c.id] = make([]byte, 32)
		}
		bad, reason := checkNodes(t, st, leaves, c.from)
		want := fmt.Sprintf("stored Merkle node (level %d, index %d) ", c.id.Level, c.id.Index)
		if bad != c.seq || !strings.HasPrefix(reason, want) || !strings.HasSuffix(reason, ": the stored tree is damaged") {
			t.Errorf("%v from %d: bad at %d (%s), want %d (%s...)", c.id, c.from, bad, reason, c.seq, want)
		}
	}
	// A node of a level below ledger.StoredLevel is derived, not stored:
	// one left in the table (written before) is not the check's.
	st := intact()
	st.nodes[ledger.NodeID{Level: 1, Index: 2}] = make([]byte, 32)
	if bad, reason := checkNodes(t, st, leaves, 0); bad != 0 {
		t.Errorf("a low node was checked: bad at %d (%s)", bad, reason)
	}
	// Off, it reads nothing.
	if c := newNodeCheck(intact(), false); c.visitor() != nil || c.settle(true, nil) != nil || c.finish(nil) != nil {
		t.Error("an incremental check checks")
	}
}
