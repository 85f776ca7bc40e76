package ledger_test

import (
	"bytes"
	"flag"
	"fmt"
	"iter"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

// -update rewrites testdata/vectors.json, the vector-*.canonical files and
// the fuzz seed corpora from the current code. Review the diff: a changed
// vector means every stored hash changes.
var update = flag.Bool("update", false, "rewrite golden test vectors and seed corpora")

// A fixed test key, so that checked-in seed exports verify. Not a secret.
const (
	testSKey = "PRIVATE+KEY+echopilot.audit.test+617bb586+AW3GQaakTdgKYu48s3bTBnzyyxkD2FE82mitJTKU3DhP"
	testVKey = "echopilot.audit.test+617bb586+AVIDXe8x2GZ9iK+LlqvvlR8sX8DQz3bz/MLCFwDaeBOM"
	// Same name, another key.
	otherVKey = "echopilot.audit.test+efe35654+AWM01OEuh4ZsygVZHXxY0GrEZF1hknAwYphr9dA3lA+4"
)

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

var severities = []string{ledger.SeverityLow, ledger.SeverityMedium, ledger.SeverityHigh, ledger.SeverityCritical}

// genChain links n entries of tenant, one second apart, with varied fields.
func genChain(t testing.TB, tenant string, n int) []ledger.Entry {
	t.Helper()
	out := make([]ledger.Entry, 0, n)
	var prev *ledger.Entry
	for i := range n {
		e, err := ledger.Link(prev, ledger.Entry{
			TenantID:  tenant,
			Seq:       uint64(i + 1),
			TS:        t0.Add(time.Duration(i) * time.Second),
			EventType: "doc.update",
			User:      fmt.Sprintf("user-%d@example.com", i%7),
			Action:    "update",
			Resource:  fmt.Sprintf("documents/%d", i),
			Details:   fmt.Sprintf(`{"n":%d,"why":"test"}`, i),
			Severity:  severities[i%4],
		})
		if err != nil {
			t.Fatalf("Link entry %d: %v", i+1, err)
		}
		out = append(out, e)
		prev = &out[len(out)-1]
	}
	return out
}

// relink recomputes PrevHash and Hash from entry index from on, bypassing
// Link's checks: what a forger with database access would do.
func relink(es []ledger.Entry, from int) {
	for i := from; i < len(es); i++ {
		if i == 0 {
			es[i].PrevHash = ledger.Genesis
		} else {
			es[i].PrevHash = es[i-1].Hash
		}
		es[i].Hash = ledger.ComputeHash(es[i])
	}
}

// check runs a ChainChecker over es and returns its first error.
func check(es []ledger.Entry) (*ledger.ChainChecker, error) {
	c := ledger.NewChainChecker()
	var first error
	for _, e := range es {
		if err := c.Add(e); err != nil && first == nil {
			first = err
		}
	}
	return c, first
}

// memTree is a node store in a map, as the service's table would be.
type memTree struct {
	size  uint64
	nodes map[ledger.NodeID][]byte
}

func newMemTree() *memTree { return &memTree{nodes: map[ledger.NodeID][]byte{}} }

func (m *memTree) fetch(ids []ledger.NodeID) ([][]byte, error) {
	out := make([][]byte, len(ids))
	for i, id := range ids {
		h, ok := m.nodes[id]
		if !ok {
			return nil, fmt.Errorf("node %+v missing", id)
		}
		out[i] = h
	}
	return out, nil
}

// append adds leaves the way the service would: fetch the compact range,
// Append, store every returned node.
func (m *memTree) append(t testing.TB, leaves [][]byte) []byte {
	t.Helper()
	rng, err := m.fetch(ledger.RangeIDs(m.size))
	if err != nil {
		t.Fatal(err)
	}
	nodes, root, next, err := ledger.Append(m.size, rng, leaves)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if old, ok := m.nodes[n.ID]; ok && !bytes.Equal(old, n.Hash) {
			t.Fatalf("node %+v rewritten", n.ID)
		}
		m.nodes[n.ID] = n.Hash
	}
	m.size += uint64(len(leaves))
	// The range Append hands back is the stored range of the new size.
	want, err := m.fetch(ledger.RangeIDs(m.size))
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != len(next) {
		t.Fatalf("size %d: next range has %d hashes, want %d", m.size, len(next), len(want))
	}
	for i := range want {
		if !bytes.Equal(want[i], next[i]) {
			t.Fatalf("size %d: next range hash %d differs from the stored node", m.size, i)
		}
	}
	return root
}

func leavesOf(t testing.TB, es []ledger.Entry) [][]byte {
	t.Helper()
	out := make([][]byte, len(es))
	for i, e := range es {
		b, err := ledger.DecodeHash(e.Hash)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = b
	}
	return out
}

// signedCheckpoint builds the tree of es and signs its checkpoint.
func signedCheckpoint(t testing.TB, tenant string, es []ledger.Entry, skey string) []byte {
	t.Helper()
	m := newMemTree()
	root := m.append(t, leavesOf(t, es))
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := ledger.Sign(ledger.Checkpoint{Origin: ledger.Origin(tenant), Size: uint64(len(es)), Root: root}, signer)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

func seqOf(es []ledger.Entry) iter.Seq2[ledger.Entry, error] {
	return func(yield func(ledger.Entry, error) bool) {
		for _, e := range es {
			if !yield(e, nil) {
				return
			}
		}
	}
}

func export(t testing.TB, tenant string, signed []byte, es []ledger.Entry) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := ledger.WriteExport(&b, tenant, signed, seqOf(es)); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
