package ledger_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

func testCheckpoint() ledger.Checkpoint {
	root := sha256.Sum256([]byte("root"))
	return ledger.Checkpoint{Origin: ledger.Origin("acme"), Size: 1234, Root: root[:]}
}

func TestCheckpointSignOpen(t *testing.T) {
	skey, vkey, err := ledger.NewKey("echopilot.audit")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	cp := testCheckpoint()
	cp.Extensions = []string{"— not a signature", "ext two"}
	signed, err := ledger.Sign(cp, signer)
	if err != nil {
		t.Fatal(err)
	}
	if want := "echopilot.audit/acme\n1234\n" + base64.StdEncoding.EncodeToString(cp.Root) + "\n— not a signature\next two\n\n— echopilot.audit "; !strings.HasPrefix(string(signed), want) {
		t.Fatalf("signed note:\n%s", signed)
	}
	got, err := ledger.Open(signed, verifier)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, cp) {
		t.Fatalf("Open = %+v, want %+v", got, cp)
	}

	// Another key of the same name.
	_, vkey2, _ := ledger.NewKey("echopilot.audit")
	other, _ := note.NewVerifier(vkey2)
	if _, err := ledger.Open(signed, other); err == nil {
		t.Error("opened with the wrong key")
	}
	// Any change to the body.
	for _, edit := range []struct{ old, new string }{
		{"\n1234\n", "\n1235\n"},
		{"acme", "acmf"},
		{"ext two", "ext twO"},
		{"\next two\n", "\n"},
	} {
		altered := bytes.Replace(signed, []byte(edit.old), []byte(edit.new), 1)
		if _, err := ledger.Open(altered, verifier); err == nil {
			t.Errorf("opened after replacing %q with %q", edit.old, edit.new)
		}
	}
	// A second signature by an unknown key is ignored; a note signed only
	// by others is rejected.
	skey3, _, _ := ledger.NewKey("witness")
	s3, _ := note.NewSigner(skey3)
	n, err := note.Open(signed, note.VerifierList(verifier))
	if err != nil {
		t.Fatal(err)
	}
	cosigned, err := note.Sign(n, s3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.Open(cosigned, verifier); err != nil {
		t.Errorf("cosigned note: %v", err)
	}
	onlyOther, _ := ledger.Sign(cp, s3)
	if _, err := ledger.Open(onlyOther, verifier); err == nil {
		t.Error("opened a note signed by another key only")
	}

	// Sign refuses what would not parse back.
	for _, bad := range []ledger.Checkpoint{
		{Origin: "", Size: 1, Root: cp.Root},
		{Origin: "a\nb", Size: 1, Root: cp.Root},
		{Origin: "a", Size: 1, Root: cp.Root[:31]},
		{Origin: "a", Size: 1, Root: cp.Root, Extensions: []string{""}},
	} {
		if _, err := ledger.Sign(bad, signer); err == nil {
			t.Errorf("signed %+v", bad)
		}
	}
}

func TestParseCheckpoint(t *testing.T) {
	root := base64.StdEncoding.EncodeToString(testCheckpoint().Root)
	good := []string{
		"echopilot.audit/acme\n1234\n" + root + "\n",
		"o\n0\n" + root + "\n",
		"o\n18446744073709551615\n" + root + "\n",
		"o\n1\n" + root + "\nextension line\nanother\n",
		"origin with spaces\n1\n" + root + "\n",
	}
	for _, b := range good {
		c, err := ledger.ParseCheckpoint([]byte(b))
		if err != nil {
			t.Errorf("%q: %v", b, err)
			continue
		}
		if got := string(c.Marshal()); got != b {
			t.Errorf("%q: Marshal = %q", b, got)
		}
	}
	bad := map[string]string{
		"empty":               "",
		"two lines":           "o\n1\n",
		"no final newline":    "o\n1\n" + root,
		"empty origin":        "\n1\n" + root + "\n",
		"leading zero":        "o\n01\n" + root + "\n",
		"plus sign":           "o\n+1\n" + root + "\n",
		"negative":            "o\n-1\n" + root + "\n",
		"size overflow":       "o\n18446744073709551616\n" + root + "\n",
		"size with space":     "o\n1 \n" + root + "\n",
		"empty size":          "o\n\n" + root + "\n",
		"hex root":            "o\n1\n" + strings.Repeat("ab", 32) + "\n",
		"short root":          "o\n1\n" + base64.StdEncoding.EncodeToString(make([]byte, 31)) + "\n",
		"long root":           "o\n1\n" + base64.StdEncoding.EncodeToString(make([]byte, 33)) + "\n",
		"unpadded root":       "o\n1\n" + strings.TrimRight(root, "=") + "\n",
		"url base64 root":     "o\n1\n" + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32)) + "\n",
		"non-canonical root":  "o\n1\n" + root[:len(root)-2] + "B=\n",
		"empty extension":     "o\n1\n" + root + "\n\n",
		"CRLF":                "o\r\n1\r\n" + root + "\r\n",
		"control character":   "o\x01\n1\n" + root + "\n",
		"invalid UTF-8":       "o\xff\n1\n" + root + "\n",
		"blank line in exts":  "o\n1\n" + root + "\na\n\nb\n",
		"signature appended":  "o\n1\n" + root + "\n\n— k abc\n",
		"trailing whitespace": "o\n1\n" + root + " \n",
	}
	for name, b := range bad {
		if c, err := ledger.ParseCheckpoint([]byte(b)); err == nil {
			t.Errorf("%s: accepted as %+v", name, c)
		}
	}

	// A tlog tree note (the Go checksum database's checkpoint) has the same
	// shape: an independent encoder agrees with ours.
	h := tlog.RecordHash([]byte("x"))
	tree := tlog.FormatTree(tlog.Tree{N: 42, Hash: h})
	c, err := ledger.ParseCheckpoint(tree)
	if err != nil || c.Size != 42 || !bytes.Equal(c.Root, h[:]) || c.Origin != "go.sum database tree" {
		t.Fatalf("tlog tree %q: %+v, %v", tree, c, err)
	}
	if !bytes.Equal(c.Marshal(), tree) {
		t.Fatalf("Marshal = %q, tlog %q", c.Marshal(), tree)
	}
}
