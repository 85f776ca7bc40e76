package main

import (
	"bytes"
	"iter"
	"testing"

	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

// filteredExport is the export of the entries of es that f selects, each
// with its inclusion proof, under the checkpoint of es signed by k; edit,
// when set, changes each proven entry before it is written.
func filteredExport(t *testing.T, k logKey, es []ledger.Entry, f ledger.Filter, edit func(*ledger.ProvenEntry)) []byte {
	t.Helper()
	leaves := make([][]byte, len(es))
	for i, e := range es {
		leaves[i], _ = ledger.DecodeHash(e.Hash)
	}
	nodes, _, _, err := ledger.Append(0, nil, leaves)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[ledger.NodeID][]byte{}
	for _, n := range nodes {
		stored[n.ID] = n.Hash
	}
	fetch := func(ids []ledger.NodeID) ([][]byte, error) {
		out := make([][]byte, len(ids))
		for i, id := range ids {
			out[i] = stored[id]
		}
		return out, nil
	}
	var seq iter.Seq2[ledger.ProvenEntry, error] = func(yield func(ledger.ProvenEntry, error) bool) {
		for _, e := range es {
			if !f.Match(e) {
				continue
			}
			proof, err := ledger.InclusionProof(e.Seq-1, uint64(len(es)), fetch)
			p := ledger.ProvenEntry{Entry: e, Proof: proof}
			if edit != nil {
				edit(&p)
			}
			if !yield(p, err) {
				return
			}
		}
	}
	var b bytes.Buffer
	if err := ledger.WriteFilteredExport(&b, tenant, sign(t, k, tenant, es), f, seq); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// A filtered export verifies entry by entry: each is selected by the
// filter, hashes to its hash and is proven in the signed tree.
func TestFilteredExport(t *testing.T) {
	k := newKey(t, keyName)
	es := genChain(t, tenant, 12, "a")
	f := ledger.Filter{User: "user-1@example.com"}
	file := writeFile(t, "acme.jsonl", filteredExport(t, k, es, f, nil))
	runCmd(t, nil, "--key", k.vkey, file).want(t, 0,
		`OK: 4 entries of tenant acme selected by filter user="user-1@example.com", each in the tree of checkpoint 12 signed by `+keyName+"+")
	runCmd(t, nil, "--key", k.vkey, "--json", file).want(t, 0, `"filter": {`, `"user": "user-1@example.com"`, `"entries": 4`)

	rewritten := filteredExport(t, k, es, f, func(p *ledger.ProvenEntry) {
		if p.Seq == 5 {
			p.Action = "delete"
			p.Hash = ledger.ComputeHash(p.Entry)
		}
	})
	runCmd(t, nil, "--key", k.vkey, writeFile(t, "rewritten.jsonl", rewritten)).want(t, 1,
		"INVALID: entry 5: not in the tree the checkpoint of size 12 signed (inclusion proof fails: rewritten) (line 4)")
	edited := filteredExport(t, k, es, f, func(p *ledger.ProvenEntry) {
		if p.Seq == 8 {
			p.Action = "delete"
		}
	})
	runCmd(t, nil, "--key", k.vkey, writeFile(t, "edited.jsonl", edited)).want(t, 1, "INVALID: entry 8: hash mismatch")

	// A held checkpoint needs the whole log.
	cp := writeFile(t, "cp.txt", sign(t, k, tenant, es))
	runCmd(t, nil, "--key", k.vkey, "--checkpoint", cp, file).want(t, 1, "against a filtered export: export the whole log")
}
