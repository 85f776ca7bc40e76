package ledger

// StoredLevel is the lowest level of the tree read from stored nodes. A
// node below it covers at most 2^(StoredLevel-1) leaves and is computed from
// the entries' hashes when a proof needs it ([Derive]); a full verification
// compares only the stored nodes of StoredLevel and up with the ones it
// recomputes, about n/2^(StoredLevel-1) for n entries instead of 2n. The
// entries themselves are what a verification authenticates, so a node
// derived from them is as trustworthy as the entries a reader is shown;
// the price is that a rewritten entry makes the proofs of its neighbours
// under one stored node fail too (a block of 2^StoredLevel entries).
const StoredLevel = 4

// Stored reports whether id is read from the stored nodes; the others are
// derived.
func (id NodeID) Stored() bool { return id.Level >= StoredLevel }

// Leaves are the leaf indices id covers: [first, end).
func (id NodeID) Leaves() (first, end uint64) {
	return id.Index << id.Level, (id.Index + 1) << id.Level
}

// Derive computes the hash of id from below: a leaf from its entry hash
// (sum gives the 32 raw bytes of leaf i's entry hash, false when that entry
// is not kept), an interior node from its two children. Where a part cannot
// be computed so (its entries were deleted by a retention cut) the stored
// node stands in for it (stored; false when there is none). false when
// neither works. A part that can be computed is never taken from stored: a
// node under the entries is only as good as they are.
func Derive(id NodeID, sum func(leaf uint64) ([]byte, bool), stored func(NodeID) ([]byte, bool)) ([]byte, bool) {
	if id.Level == 0 {
		if s, ok := sum(id.Index); ok && len(s) == 32 {
			return LeafHash(s), true
		}
		return stored(id)
	}
	l, lok := Derive(NodeID{Level: id.Level - 1, Index: 2 * id.Index}, sum, stored)
	if lok {
		if r, rok := Derive(NodeID{Level: id.Level - 1, Index: 2*id.Index + 1}, sum, stored); rok {
			return HashChildren(l, r), true
		}
	}
	return stored(id)
}
