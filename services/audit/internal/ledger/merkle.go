package ledger

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// NodeID addresses a node of the tree: level 0 holds leaf hashes, node
// (l, i) covers leaves [i<<l, (i+1)<<l).
type NodeID struct {
	Level uint
	Index uint64
}

// Node is a complete node and its hash, to be stored by the caller.
type Node struct {
	ID   NodeID
	Hash []byte
}

// Fetch returns the hashes of ids, in order; an error if any is missing.
type Fetch func(ids []NodeID) ([][]byte, error)

var (
	hasher  = rfc6962.DefaultHasher
	factory = &compact.RangeFactory{Hash: HashChildren}
)

// LeafHash is the RFC 6962 leaf hash of an entry hash given as 32 raw bytes:
// SHA-256(0x00 || entryHash). rfc6962.Hasher's, without a hash.Hash per
// call: a full verification computes a million of them and as many
// HashChildren.
func LeafHash(entryHash []byte) []byte {
	if len(entryHash) != sha256.Size {
		return hasher.HashLeaf(entryHash)
	}
	var b [1 + sha256.Size]byte // 0x00 || entryHash
	copy(b[1:], entryHash)
	h := sha256.Sum256(b[:])
	return h[:]
}

// HashChildren is the RFC 6962 interior node hash SHA-256(0x01 || l || r),
// as LeafHash: the hash of every compact.Range this package and the domain
// build.
func HashChildren(l, r []byte) []byte {
	if len(l) != sha256.Size || len(r) != sha256.Size {
		return hasher.HashChildren(l, r)
	}
	var b [1 + 2*sha256.Size]byte
	b[0] = 1
	copy(b[1:], l)
	copy(b[1+sha256.Size:], r)
	h := sha256.Sum256(b[:])
	return h[:]
}

// EmptyRoot is the root of the empty tree.
func EmptyRoot() []byte { return hasher.EmptyRoot() }

// RangeIDs are the nodes of the compact range [0, size): the roots of the
// perfect subtrees the tree of size is made of, largest (leftmost) first;
// one per set bit of size. Append needs their hashes, Root folds them.
func RangeIDs(size uint64) []NodeID {
	return fromCompact(compact.RangeNodes(0, size, nil))
}

// Append adds leaves (entry hashes, 32 raw bytes each) to the tree of size
// `size` whose compact range hashes, in RangeIDs(size) order, are given.
// It returns every node that becomes complete (the new leaf hashes and the
// interior nodes they complete: the caller stores them all) and the root of
// the tree of size+len(leaves), and the compact range hashes of that tree
// (what the next Append needs). Appending leaf i adds
// 1+trailing_zeros(i+1) nodes, about 2 per leaf. rangeHashes is not
// modified.
func Append(size uint64, rangeHashes [][]byte, leaves [][]byte) (nodes []Node, root []byte, next [][]byte, err error) {
	if err := checkHashes(rangeHashes); err != nil {
		return nil, nil, nil, fmt.Errorf("range: %w", err)
	}
	// Range.Append reuses the slice it was given, so hand it a copy.
	r, err := factory.NewRange(0, size, append([][]byte(nil), rangeHashes...))
	if err != nil {
		return nil, nil, nil, err
	}
	nodes = make([]Node, 0, 2*len(leaves)+1)
	visit := func(id compact.NodeID, hash []byte) {
		nodes = append(nodes, Node{ID: NodeID(id), Hash: hash})
	}
	for i, leaf := range leaves {
		if len(leaf) != sha256.Size {
			return nil, nil, nil, fmt.Errorf("leaf %d: %d bytes, want %d", i, len(leaf), sha256.Size)
		}
		if err := r.Append(LeafHash(leaf), visit); err != nil {
			return nil, nil, nil, err
		}
	}
	root, err = rootOf(r)
	if err != nil {
		return nil, nil, nil, err
	}
	return nodes, root, r.Hashes(), nil
}

// Root computes the root of the tree of size from its stored nodes.
func Root(size uint64, fetch Fetch) ([]byte, error) {
	ids := RangeIDs(size)
	hashes, err := fetchChecked(fetch, ids)
	if err != nil {
		return nil, err
	}
	r, err := factory.NewRange(0, size, hashes)
	if err != nil {
		return nil, err
	}
	return rootOf(r)
}

func rootOf(r *compact.Range) ([]byte, error) {
	if r.End() == 0 {
		return hasher.EmptyRoot(), nil
	}
	return r.GetRootHash(nil)
}

// InclusionProof proves that leaf index is in the tree of size: the RFC 6962
// audit path, leaf to root.
func InclusionProof(index, size uint64, fetch Fetch) ([][]byte, error) {
	n, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, err
	}
	return proofHashes(n, fetch)
}

// ConsistencyProof proves that the tree of size m is a prefix of the tree
// of size n (m <= n); empty when m is 0 or m == n.
func ConsistencyProof(m, n uint64, fetch Fetch) ([][]byte, error) {
	p, err := proof.Consistency(m, n)
	if err != nil {
		return nil, err
	}
	return proofHashes(p, fetch)
}

// proofHashes fetches a proof's stored nodes and folds those standing for a
// node that is not complete in the tree (the "ephemeral" node) into it.
func proofHashes(n proof.Nodes, fetch Fetch) ([][]byte, error) {
	if len(n.IDs) == 0 {
		return [][]byte{}, nil
	}
	hashes, err := fetchChecked(fetch, fromCompact(n.IDs))
	if err != nil {
		return nil, err
	}
	return n.Rehash(hashes, HashChildren)
}

// fetchChecked calls fetch and returns a fresh slice of its hashes (callers
// rewrite it in place), checking there is one 32-byte hash per id.
func fetchChecked(fetch Fetch, ids []NodeID) ([][]byte, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	hashes, err := fetch(ids)
	if err != nil {
		return nil, err
	}
	if len(hashes) != len(ids) {
		return nil, fmt.Errorf("fetch: got %d hashes for %d nodes", len(hashes), len(ids))
	}
	if err := checkHashes(hashes); err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	return append([][]byte(nil), hashes...), nil
}

func checkHashes(hashes [][]byte) error {
	for i, h := range hashes {
		if len(h) != sha256.Size {
			return fmt.Errorf("hash %d: %d bytes, want %d", i, len(h), sha256.Size)
		}
	}
	return nil
}

func fromCompact(ids []compact.NodeID) []NodeID {
	out := make([]NodeID, len(ids))
	for i, id := range ids {
		out[i] = NodeID(id)
	}
	return out
}

// VerifyInclusion checks proof that the entry with hash entryHash (32 raw
// bytes: the leaf data, not the leaf hash) is leaf index of the tree of
// size with root.
func VerifyInclusion(index, size uint64, entryHash []byte, proofHashes [][]byte, root []byte) error {
	if len(entryHash) != sha256.Size {
		return fmt.Errorf("entry hash: %d bytes, want %d", len(entryHash), sha256.Size)
	}
	return proof.VerifyInclusion(hasher, index, size, hasher.HashLeaf(entryHash), proofHashes, root)
}

// VerifyConsistency checks proof that the tree of size m with rootM is a
// prefix of the tree of size n with rootN.
func VerifyConsistency(m, n uint64, proofHashes [][]byte, rootM, rootN []byte) error {
	return proof.VerifyConsistency(hasher, m, n, proofHashes, rootM, rootN)
}

// ErrRangeMismatch is a run of leaves that, with the stored nodes of the
// rest of the tree, does not hash to the root it was checked against.
var ErrRangeMismatch = errors.New("leaves and stored nodes do not hash to the root")

// VerifyRange checks that leaves (entry hashes, 32 raw bytes each) are the
// leaves [begin, begin+len(leaves)) of the tree of size whose root is root:
// it folds them with the stored compact ranges [0, begin) and [end, size)
// (one fetch of at most ~2·log2(size) nodes) and compares the result with
// root, so a stored node that lies only makes the check fail. It returns
// ErrRangeMismatch when the roots differ.
func VerifyRange(begin, size uint64, leaves [][]byte, root []byte, fetch Fetch) error {
	end := begin + uint64(len(leaves))
	if end > size {
		return fmt.Errorf("leaves [%d, %d) are beyond the tree size %d", begin, end, size)
	}
	if err := checkHashes(leaves); err != nil {
		return fmt.Errorf("leaves: %w", err)
	}
	left := compact.RangeNodes(0, begin, nil)
	right := compact.RangeNodes(end, size, nil)
	hashes, err := fetchChecked(fetch, fromCompact(append(append([]compact.NodeID(nil), left...), right...)))
	if err != nil {
		return err
	}
	// Append grows the slice it was given: the left range gets its own.
	r, err := factory.NewRange(0, begin, append([][]byte(nil), hashes[:len(left)]...))
	if err != nil {
		return err
	}
	for _, leaf := range leaves {
		if err := r.Append(LeafHash(leaf), nil); err != nil {
			return err
		}
	}
	rest, err := factory.NewRange(end, size, hashes[len(left):])
	if err != nil {
		return err
	}
	if err := r.AppendRange(rest, nil); err != nil {
		return err
	}
	got, err := rootOf(r)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, root) {
		return ErrRangeMismatch
	}
	return nil
}
