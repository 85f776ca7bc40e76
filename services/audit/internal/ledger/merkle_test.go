package ledger_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

// tlogTree is the same log built with golang.org/x/mod/sumdb/tlog, an
// independent RFC 6962 implementation, to check ours against.
type tlogTree struct {
	n      int64
	stored map[int64]tlog.Hash
}

func (tt *tlogTree) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		h, ok := tt.stored[x]
		if !ok {
			return nil, fmt.Errorf("tlog hash %d missing", x)
		}
		out[i] = h
	}
	return out, nil
}

func (tt *tlogTree) add(t *testing.T, leaf []byte) {
	hs, err := tlog.StoredHashes(tt.n, leaf, tt)
	if err != nil {
		t.Fatal(err)
	}
	base := tlog.StoredHashIndex(0, tt.n)
	for i, h := range hs {
		tt.stored[base+int64(i)] = h
	}
	tt.n++
}

func toTlog(p [][]byte) []tlog.Hash {
	out := make([]tlog.Hash, len(p))
	for i, h := range p {
		out[i] = tlog.Hash(h)
	}
	return out
}

func randLeaf(rnd *rand.Rand) []byte {
	var b [32]byte
	for i := range b {
		b[i] = byte(rnd.Uint32())
	}
	return b[:]
}

func TestLeafHashMatchesTlog(t *testing.T) {
	rnd := rand.New(rand.NewPCG(7, 7))
	for range 10 {
		leaf := randLeaf(rnd)
		want := sha256.Sum256(append([]byte{0}, leaf...))
		if got := tlog.RecordHash(leaf); got != want {
			t.Fatal("tlog.RecordHash is not SHA-256(0x00||data)")
		}
		if got := ledger.LeafHash(leaf); !bytes.Equal(got, want[:]) || !bytes.Equal(got, rfc6962.DefaultHasher.HashLeaf(leaf)) {
			t.Fatal("LeafHash is not SHA-256(0x00||data)")
		}
	}
	empty, _ := tlog.TreeHash(0, nil)
	if !bytes.Equal(ledger.EmptyRoot(), empty[:]) {
		t.Fatal("empty root differs from tlog's")
	}
	root, err := ledger.Root(0, newMemTree().fetch)
	if err != nil || !bytes.Equal(root, empty[:]) {
		t.Fatalf("Root(0) = %x, %v", root, err)
	}
}

func TestMerkleAgainstTlog(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 1))
	inclusionChecks, consistencyChecks := 0, 0
	for trial := range 24 {
		size := 1 + rnd.IntN(2000)
		if trial < 4 {
			size = []int{1, 2, 1024, 1025}[trial] // edges: single leaf, powers of two
		}
		ours, theirs := newMemTree(), &tlogTree{stored: map[int64]tlog.Hash{}}
		var data [][]byte // the leaves themselves: the tree stores only their hashes
		for ours.size < uint64(size) {
			batch := min(1+rnd.IntN(64), size-int(ours.size))
			if rnd.IntN(4) == 0 {
				batch = 1
			}
			leaves := make([][]byte, batch)
			for i := range leaves {
				leaves[i] = randLeaf(rnd)
				theirs.add(t, leaves[i])
			}
			data = append(data, leaves...)
			root := ours.append(t, leaves)
			want, err := tlog.TreeHash(theirs.n, theirs)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(root, want[:]) {
				t.Fatalf("size %d: Append root %x, tlog %x", ours.size, root, want)
			}
			got, err := ledger.Root(ours.size, ours.fetch)
			if err != nil || !bytes.Equal(got, want[:]) {
				t.Fatalf("size %d: Root %x (%v), tlog %x", ours.size, got, err, want)
			}
		}
		// Every stored node is tlog's stored hash at the same coordinates,
		// and we store exactly as many.
		if got, want := len(ours.nodes), tlog.StoredHashCount(int64(size)); int64(got) != want {
			t.Fatalf("size %d: %d nodes stored, tlog stores %d", size, got, want)
		}
		for id, h := range ours.nodes {
			if th := theirs.stored[tlog.StoredHashIndex(int(id.Level), int64(id.Index))]; !bytes.Equal(h, th[:]) {
				t.Fatalf("node %+v differs from tlog's", id)
			}
		}

		// Proofs for any size up to the tree's, from the same stored nodes.
		for range 10 {
			n := 1 + rnd.Uint64N(uint64(size))
			idx := rnd.Uint64N(n)
			rootN, _ := tlog.TreeHash(int64(n), theirs)
			p, err := ledger.InclusionProof(idx, n, ours.fetch)
			if err != nil {
				t.Fatalf("InclusionProof(%d, %d): %v", idx, n, err)
			}
			leafHash := theirs.stored[tlog.StoredHashIndex(0, int64(idx))]
			if err := tlog.CheckRecord(toTlog(p), int64(n), rootN, int64(idx), leafHash); err != nil {
				t.Fatalf("InclusionProof(%d, %d) rejected by tlog: %v", idx, n, err)
			}
			tp, _ := tlog.ProveRecord(int64(n), int64(idx), theirs)
			if fmt.Sprint(toTlog(p)) != fmt.Sprint(tp) {
				t.Fatalf("InclusionProof(%d, %d) differs from tlog.ProveRecord", idx, n)
			}
			if err := ledger.VerifyInclusion(idx, n, data[idx], p, rootN[:]); err != nil {
				t.Fatalf("VerifyInclusion(%d, %d): %v", idx, n, err)
			}
			inclusionChecks++

			m := 1 + rnd.Uint64N(n)
			rootM, _ := tlog.TreeHash(int64(m), theirs)
			cp, err := ledger.ConsistencyProof(m, n, ours.fetch)
			if err != nil {
				t.Fatalf("ConsistencyProof(%d, %d): %v", m, n, err)
			}
			if err := tlog.CheckTree(toTlog(cp), int64(n), rootN, int64(m), rootM); err != nil {
				t.Fatalf("ConsistencyProof(%d, %d) rejected by tlog: %v", m, n, err)
			}
			if err := ledger.VerifyConsistency(m, n, cp, rootM[:], rootN[:]); err != nil {
				t.Fatalf("VerifyConsistency(%d, %d): %v", m, n, err)
			}
			// And a proof against the wrong old root fails.
			if m < n {
				bogus := rootM
				bogus[0] ^= 1
				if tlog.CheckTree(toTlog(cp), int64(n), rootN, int64(m), bogus) == nil ||
					ledger.VerifyConsistency(m, n, cp, bogus[:], rootN[:]) == nil {
					t.Fatalf("ConsistencyProof(%d, %d) accepted a wrong old root", m, n)
				}
			}
			consistencyChecks++
		}
	}
	if inclusionChecks < 200 || consistencyChecks < 200 {
		t.Fatalf("only %d inclusion and %d consistency checks", inclusionChecks, consistencyChecks)
	}
}

func TestInclusionDetectsTampering(t *testing.T) {
	es := genChain(t, "acme", 300)
	m := newMemTree()
	root := m.append(t, leavesOf(t, es))
	leaf, _ := ledger.DecodeHash(es[123].Hash)
	p, err := ledger.InclusionProof(123, 300, m.fetch)
	if err != nil {
		t.Fatal(err)
	}
	if err := ledger.VerifyInclusion(123, 300, leaf, p, root); err != nil {
		t.Fatal(err)
	}
	other, _ := ledger.DecodeHash(es[124].Hash)
	if ledger.VerifyInclusion(123, 300, other, p, root) == nil {
		t.Error("proof accepted for another entry")
	}
	if ledger.VerifyInclusion(124, 300, leaf, p, root) == nil {
		t.Error("proof accepted at another index")
	}
	p[2][5] ^= 1
	if ledger.VerifyInclusion(123, 300, leaf, p, root) == nil {
		t.Error("altered proof accepted")
	}
	if ledger.VerifyInclusion(123, 300, rfc6962.DefaultHasher.HashLeaf(leaf), p, root) == nil {
		t.Error("a leaf hash passed as entry hash was accepted")
	}
}

func TestMerkleErrors(t *testing.T) {
	m := newMemTree()
	rnd := rand.New(rand.NewPCG(3, 3))
	m.append(t, [][]byte{randLeaf(rnd), randLeaf(rnd), randLeaf(rnd)})
	rng, _ := m.fetch(ledger.RangeIDs(3))
	keep := fmt.Sprint(rng)
	if _, _, _, err := ledger.Append(3, rng, [][]byte{randLeaf(rnd), randLeaf(rnd)}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(rng) != keep {
		t.Error("Append modified rangeHashes")
	}
	if _, _, _, err := ledger.Append(3, rng[:1], nil); err == nil {
		t.Error("Append accepted a short range")
	}
	if _, _, _, err := ledger.Append(3, [][]byte{rng[0], rng[1][:31]}, nil); err == nil {
		t.Error("Append accepted a 31-byte range hash")
	}
	if _, _, _, err := ledger.Append(3, rng, [][]byte{make([]byte, 31)}); err == nil {
		t.Error("Append accepted a 31-byte leaf")
	}
	if _, err := ledger.InclusionProof(3, 3, m.fetch); err == nil {
		t.Error("InclusionProof accepted index == size")
	}
	if _, err := ledger.InclusionProof(0, 4, m.fetch); err == nil {
		t.Error("InclusionProof of a size never stored succeeded")
	}
	if _, err := ledger.ConsistencyProof(3, 2, m.fetch); err == nil {
		t.Error("ConsistencyProof accepted m > n")
	}
	if p, err := ledger.ConsistencyProof(3, 3, m.fetch); err != nil || len(p) != 0 {
		t.Errorf("ConsistencyProof(3, 3) = %v, %v", p, err)
	}
	short := func(ids []ledger.NodeID) ([][]byte, error) { h, err := m.fetch(ids); return h[:len(h)-1], err }
	if _, err := ledger.Root(3, short); err == nil {
		t.Error("Root accepted a fetch returning too few hashes")
	}
	if got := ledger.RangeIDs(13); fmt.Sprint(got) != "[{3 0} {2 2} {0 12}]" {
		t.Errorf("RangeIDs(13) = %v", got)
	}
}

// LeafHash and HashChildren are rfc6962's, for hashes of any length.
func TestHashesAreRFC6962(t *testing.T) {
	rnd := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{32, 0, 31, 33, 64} {
		a, b := make([]byte, n), make([]byte, 32)
		for i := range a {
			a[i] = byte(rnd.Uint32())
		}
		copy(b, randLeaf(rnd))
		if got, want := ledger.LeafHash(a), rfc6962.DefaultHasher.HashLeaf(a); !bytes.Equal(got, want) {
			t.Errorf("LeafHash of %d bytes = %x, want %x", n, got, want)
		}
		for _, lr := range [][2][]byte{{a, b}, {b, a}, {b, b}} {
			if got, want := ledger.HashChildren(lr[0], lr[1]), rfc6962.DefaultHasher.HashChildren(lr[0], lr[1]); !bytes.Equal(got, want) {
				t.Errorf("HashChildren of %d and %d bytes = %x, want %x", len(lr[0]), len(lr[1]), got, want)
			}
		}
	}
}
