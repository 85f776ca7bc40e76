package ledger_test

import (
	"bytes"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

// A remembered note is only ever the exact bytes verified before: an
// altered copy, or one signed by another key, is checked and refused.
func TestOpenerRemembersOnlyVerifiedBytes(t *testing.T) {
	skey, vkey, err := ledger.NewKey("test-log")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	o := ledger.NewOpener(2, verifier)
	cp := ledger.Checkpoint{Origin: ledger.Origin("acme"), Size: 3, Root: bytes.Repeat([]byte{7}, 32)}
	signed, err := ledger.Sign(cp, signer)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // first verified, then remembered
		got, err := o.Open(signed)
		if err != nil || got.Size != 3 || !bytes.Equal(got.Root, cp.Root) {
			t.Fatalf("Open = %+v, %v", got, err)
		}
	}
	altered := bytes.Replace(signed, []byte("\n3\n"), []byte("\n4\n"), 1)
	if bytes.Equal(altered, signed) {
		t.Fatal("test note not altered")
	}
	if _, err := o.Open(altered); err == nil {
		t.Fatal("an altered copy of a remembered note was accepted")
	}
	otherKey, _, _ := ledger.NewKey("test-log")
	otherSigner, _ := note.NewSigner(otherKey)
	forged, _ := ledger.Sign(cp, otherSigner)
	if _, err := o.Open(forged); err == nil {
		t.Fatal("a note signed by another key was accepted")
	}
	// Beyond max the memory starts over; opening still works.
	for size := uint64(10); size < 15; size++ {
		n, _ := ledger.Sign(ledger.Checkpoint{Origin: cp.Origin, Size: size, Root: cp.Root}, signer)
		if got, err := o.Open(n); err != nil || got.Size != size {
			t.Fatalf("Open(size %d) = %+v, %v", size, got, err)
		}
	}
}
