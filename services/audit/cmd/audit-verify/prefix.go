package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"slices"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

// maxLine bounds the line kept in memory; ledger.VerifyExport refuses
// longer lines (4 MiB) anyway.
const maxLine = 4<<20 + 1

// prefixRoots is an io.Writer fed the export's bytes as they are read. It
// takes every line after the first (the checkpoint line) as an entry, in
// file order, and records the RFC 6962 root of the first n entries for each
// wanted n: the roots checkpoints of those sizes must have. Memory is one
// line and a compact range, O(log n) hashes. It checks nothing else:
// ledger.VerifyExport, reading the same bytes, checks the lines.
type prefixRoots struct {
	want  []uint64          // sizes still to reach, ascending
	roots map[uint64][]byte // by size
	tree  *compact.Range
	// base > 0 is the size of a retention cut the export starts after (its
	// second line): the tree starts from the cut's frontier.
	base uint64

	line     []byte
	tooLong  bool
	lines    uint64 // lines ended so far
	entries  uint64 // entry lines so far
	stopped  bool   // an entry line without a readable hash: no roots beyond it
	finished bool

	unreadable uint64 // position (1-based entry line) of the first entry line without a readable hash
}

func newPrefixRoots(sizes []uint64) *prefixRoots {
	want := slices.Clone(sizes)
	slices.Sort(want)
	want = slices.Compact(want)
	p := &prefixRoots{
		want:  want,
		roots: map[uint64][]byte{},
		tree:  (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0),
	}
	p.record()
	return p
}

// Write never fails: it must not disturb the verifier reading through it.
func (p *prefixRoots) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			p.add(b)
			break
		}
		p.add(b[:i])
		p.endLine()
		b = b[i+1:]
	}
	return n, nil
}

func (p *prefixRoots) add(b []byte) {
	if p.tooLong {
		return
	}
	if len(p.line)+len(b) > maxLine {
		p.tooLong = true
		p.line = p.line[:0]
		return
	}
	p.line = append(p.line, b...)
}

// finish takes a last line without "\n" (ledger.VerifyExport reads it as
// an entry too, and reports the missing newline).
func (p *prefixRoots) finish() {
	if p.finished {
		return
	}
	p.finished = true
	if len(p.line) > 0 || p.tooLong {
		p.endLine()
	}
}

func (p *prefixRoots) endLine() {
	p.lines++
	line, tooLong := p.line, p.tooLong
	p.line, p.tooLong = p.line[:0], false
	if p.lines == 1 {
		return // the checkpoint line
	}
	if p.lines == 2 && p.startAtCut(line, tooLong) {
		return
	}
	p.entries++
	if p.stopped {
		return
	}
	leaf, ok := leafOf(line, tooLong)
	if !ok {
		p.stopped = true
		p.unreadable = p.entries
		return
	}
	if err := p.tree.Append(ledger.LeafHash(leaf), nil); err != nil {
		// Cannot happen: the range is built here, from 0.
		p.stopped = true
		p.unreadable = p.entries
		return
	}
	p.record()
}

// startAtCut starts the tree from the frontier of a cut line; false when
// line is not a readable one (VerifyExport judges it either way).
func (p *prefixRoots) startAtCut(line []byte, tooLong bool) bool {
	var c struct {
		Type     string   `json:"type"`
		Size     uint64   `json:"size"`
		Frontier []string `json:"frontier"`
	}
	if tooLong || json.Unmarshal(line, &c) != nil || c.Type != "cut" || c.Size == 0 {
		return false
	}
	hashes := make([][]byte, len(c.Frontier))
	for i, h := range c.Frontier {
		var err error
		if hashes[i], err = hex.DecodeString(h); err != nil || len(hashes[i]) != 32 {
			return false
		}
	}
	tree, err := (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewRange(0, c.Size, hashes)
	if err != nil {
		return false
	}
	p.tree, p.base = tree, c.Size
	for len(p.want) > 0 && p.want[0] < c.Size {
		p.want = p.want[1:] // before the cut: no root to compute
	}
	p.record()
	return true
}

// record keeps the root if the tree has a wanted size.
func (p *prefixRoots) record() {
	for len(p.want) > 0 && p.want[0] <= p.tree.End() {
		size := p.want[0]
		p.want = p.want[1:]
		if size != p.tree.End() {
			continue // unreachable: sizes are reached one by one
		}
		if size == 0 {
			p.roots[0] = ledger.EmptyRoot()
			continue
		}
		root, err := p.tree.GetRootHash(nil)
		if err == nil {
			p.roots[size] = root
		}
	}
}

// root is the root of the first size entry lines, if they all had a
// readable hash and size was wanted.
func (p *prefixRoots) root(size uint64) ([]byte, bool) {
	r, ok := p.roots[size]
	return r, ok
}

// leafOf is the Merkle leaf data of an entry line: its "hash" decoded.
// Whether the line is otherwise right is VerifyExport's business.
func leafOf(line []byte, tooLong bool) ([]byte, bool) {
	if tooLong {
		return nil, false
	}
	var e struct {
		Hash string `json:"hash"`
	}
	if json.Unmarshal(line, &e) != nil {
		return nil, false
	}
	leaf, err := ledger.DecodeHash(e.Hash)
	return leaf, err == nil
}
