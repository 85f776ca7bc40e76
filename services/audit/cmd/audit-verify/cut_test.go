package main

import (
	"bytes"
	"testing"

	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

// cutExport is the export of es after a retention cut at cut: the cut line
// carries frontier's subtree hashes and a checkpoint of frontier signed by
// k (frontier is es[:cut] unless a forgery is wanted), then es[cut:].
func cutExport(t *testing.T, k logKey, es []ledger.Entry, cut int, frontier []ledger.Entry) []byte {
	t.Helper()
	leaves := make([][]byte, len(frontier))
	for i, e := range frontier {
		leaves[i], _ = ledger.DecodeHash(e.Hash)
	}
	_, _, hashes, err := ledger.Append(0, nil, leaves)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	c := ledger.Cut{Size: uint64(cut), LastHash: es[cut-1].Hash, LastTS: es[cut-1].TS, Frontier: hashes,
		Checkpoint: sign(t, k, tenant, frontier)}
	if err := ledger.WriteExportAfterCut(&b, tenant, sign(t, k, tenant, es), c, seqOf(es[cut:])); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// An export of a log retention cut verifies from the cut's frontier; held
// checkpoints after the cut are checked, one before it cannot be; a
// frontier of another history is caught.
func TestCutExport(t *testing.T) {
	k := newKey(t, keyName)
	es := genChain(t, tenant, 20, "a")
	exp := writeFile(t, "cut.jsonl", cutExport(t, k, es, 8, es[:8]))
	cp12 := writeFile(t, "cp12.txt", sign(t, k, tenant, es[:12]))
	cp5 := writeFile(t, "cp5.txt", sign(t, k, tenant, es[:5]))

	runCmd(t, nil, "--key", k.vkey, exp).want(t, 0,
		"OK: entries 9 to 20 of tenant acme (1 to 8 deleted by retention, their frontier matches the checkpoint signed at the cut), chain and tree match checkpoint 20")
	runCmd(t, nil, "--key", k.vkey, "--checkpoint", cp12, exp).want(t, 0, "OK: entries 1 to 12 match checkpoint "+cp12)
	runCmd(t, nil, "--key", k.vkey, "--checkpoint", cp5, exp).want(t, 1,
		"INVALID: cannot check checkpoint "+cp5+" (size 5): retention deleted entries 1 to 8")

	// The frontier (and its signed checkpoint) of another history: the
	// cut line holds up alone, but the later checkpoint's root does not
	// grow from it.
	other := genChain(t, tenant, 8, "b")
	forged := writeFile(t, "forged.jsonl", cutExport(t, k, es, 8, other))
	runCmd(t, nil, "--key", k.vkey, forged).want(t, 1, "INVALID", "Merkle root mismatch")

	// A cut line edited by hand: the frontier no longer matches its
	// checkpoint.
	ls := lines(cutExport(t, k, es, 8, es[:8]))
	at := bytes.Index(ls[1], []byte(`"frontier":["`)) + len(`"frontier":["`)
	ls[1][at] = "01"[(ls[1][at]-'0'+1)%2] // another hex digit
	edited := writeFile(t, "edited.jsonl", bytes.Join(ls, nil))
	runCmd(t, nil, "--key", k.vkey, edited).want(t, 1, "INVALID: line 2: retention cut at 8: the frontier's root is not the one the checkpoint at the cut signed", "INVALID: entry 9")
}
