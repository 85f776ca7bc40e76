package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

const (
	tenant  = "acme"
	keyName = "echopilot.audit.test"
)

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// logKey is the log's signing key pair.
type logKey struct {
	skey, vkey string
	signer     note.Signer
}

func newKey(t *testing.T, name string) logKey {
	t.Helper()
	skey, vkey, err := ledger.NewKey(name)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return logKey{skey, vkey, signer}
}

// genChain links n entries of tenant, one second apart; tag varies the
// content, so that two chains with different tags are two histories.
func genChain(t *testing.T, tenant string, n int, tag string) []ledger.Entry {
	t.Helper()
	out := make([]ledger.Entry, 0, n)
	var prev *ledger.Entry
	for i := range n {
		e, err := ledger.Link(prev, ledger.Entry{
			TenantID:  tenant,
			Seq:       uint64(i + 1),
			TS:        t0.Add(time.Duration(i) * time.Second),
			EventType: "doc.update",
			User:      fmt.Sprintf("user-%d@example.com", i%3),
			Action:    "update",
			Resource:  fmt.Sprintf("documents/%d", i),
			Details:   fmt.Sprintf(`{"n":%d,"tag":%q}`, i, tag),
			Severity:  ledger.SeverityLow,
		})
		if err != nil {
			t.Fatalf("Link entry %d: %v", i+1, err)
		}
		out = append(out, e)
		prev = &out[len(out)-1]
	}
	return out
}

// sign signs the checkpoint of es (all of them) for tenant.
func sign(t *testing.T, k logKey, tenant string, es []ledger.Entry) []byte {
	t.Helper()
	leaves := make([][]byte, len(es))
	for i, e := range es {
		b, err := ledger.DecodeHash(e.Hash)
		if err != nil {
			t.Fatal(err)
		}
		leaves[i] = b
	}
	_, root, _, err := ledger.Append(0, nil, leaves)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := ledger.Sign(ledger.Checkpoint{Origin: ledger.Origin(tenant), Size: uint64(len(es)), Root: root}, k.signer)
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

// export is the export of es with their checkpoint signed by k.
func export(t *testing.T, k logKey, tenant string, es []ledger.Entry) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := ledger.WriteExport(&b, tenant, sign(t, k, tenant, es), seqOf(es)); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// lines splits an export: lines[0] is the checkpoint line, lines[k] entry
// k's, each with its "\n".
func lines(b []byte) [][]byte {
	ls := bytes.SplitAfter(b, []byte("\n"))
	return ls[:len(ls)-1] // the "" after the last "\n"
}

type outcome struct {
	code           int
	stdout, stderr string
}

func runCmd(t *testing.T, stdin io.Reader, args ...string) outcome {
	t.Helper()
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	var stdout, stderr bytes.Buffer
	err := run(args, stdin, &stdout, &stderr)
	o := outcome{code: exitCode(err), stdout: stdout.String(), stderr: stderr.String()}
	if err != nil {
		o.stderr += err.Error()
	}
	return o
}

func (o outcome) want(t *testing.T, code int, contains ...string) {
	t.Helper()
	if o.code != code {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", o.code, code, o.stdout, o.stderr)
	}
	for _, s := range contains {
		if !strings.Contains(o.stdout, s) {
			t.Errorf("stdout lacks %q:\n%s", s, o.stdout)
		}
	}
}

func TestValidExport(t *testing.T) {
	k := newKey(t, keyName)
	es := genChain(t, tenant, 8, "a")
	exp := export(t, k, tenant, es)
	file := writeFile(t, "acme.jsonl", exp)
	okLine := "OK: 8 entries of tenant acme, chain and tree match checkpoint 8 signed by " + keyName + "+"

	o := runCmd(t, nil, "--key", k.vkey, file)
	o.want(t, 0, okLine)
	if strings.Contains(o.stdout, "INVALID") || strings.Count(o.stdout, "\n") != 1 {
		t.Errorf("stdout:\n%s", o.stdout)
	}
	// The key from a file (with its newline), the export from stdin, read
	// a byte at a time.
	keyFile := writeFile(t, "vkey", []byte(k.vkey+"\n"))
	runCmd(t, iotest.OneByteReader(bytes.NewReader(exp)), "--key=@"+keyFile, "-").want(t, 0, okLine)
	// The key from the environment.
	t.Setenv("ECHOPILOT_AUDIT_VERIFIER_KEY", k.vkey)
	runCmd(t, nil, file).want(t, 0, okLine)

	// The empty log.
	empty := writeFile(t, "empty.jsonl", export(t, k, tenant, nil))
	runCmd(t, nil, empty).want(t, 0, "OK: 0 entries of tenant acme, chain and tree match checkpoint 0")
}

func TestTamperedExport(t *testing.T) {
	k := newKey(t, keyName)
	es := genChain(t, tenant, 8, "a")
	exp := export(t, k, tenant, es)
	ls := lines(exp)
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

	edited := bytes.Clone(exp)
	at := bytes.Index(edited, []byte(`"documents/3"`)) // entry 4's resource
	edited[at+len(`"documents/`)] = '9'

	swapped := join(join(ls[:4]...), ls[5], ls[4], join(ls[6:]...)) // entries 4 and 5

	// History rewritten from entry 6 on, re-hashed and re-signed, but with
	// another key (of the same name) than the log's.
	rewritten := genChain(t, tenant, 8, "a")
	for i := 5; i < 8; i++ {
		rewritten[i].Details = `{"rewritten":true}`
		if i > 0 {
			rewritten[i].PrevHash = rewritten[i-1].Hash
		}
		rewritten[i].Hash = ledger.ComputeHash(rewritten[i])
	}
	forged := export(t, newKey(t, keyName), tenant, rewritten)
	// The same, with the log's real key: only a held checkpoint can tell.
	resigned := export(t, k, tenant, rewritten)

	for _, tc := range []struct {
		name     string
		export   []byte
		contains []string
	}{
		{"edited byte", edited, []string{"INVALID: entry 4: hash mismatch: entry altered (line 5)"}},
		{"deleted line", join(join(ls[:4]...), join(ls[5:]...)), []string{
			"INVALID: entry 4: missing entry (the next present is seq 5)",
			"INVALID: truncated: 7 entries, the checkpoint covers 8",
		}},
		{"swapped lines", swapped, []string{"INVALID: entry 4: missing entry (the next present is seq 5)"}},
		{"truncated tail", join(ls[:6]...), []string{
			"INVALID: truncated: 5 entries, the checkpoint covers 8",
			"INVALID: entry 6: ",
		}},
		{"cut mid-line", exp[:len(exp)-10], []string{"INVALID: ", "does not end in a newline"}},
		{"re-signed with another key", forged, []string{"INVALID: checkpoint signature"}},
		{"checkpoint line removed", join(ls[1:]...), []string{"INVALID: export: the first line must be the checkpoint line"}},
		{"empty", nil, []string{"INVALID: export: empty"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := writeFile(t, "acme.jsonl", tc.export)
			o := runCmd(t, nil, "--key", k.vkey, file)
			o.want(t, 1, tc.contains...)
			if strings.Contains(o.stdout, "OK:") {
				t.Errorf("OK printed:\n%s", o.stdout)
			}
		})
	}
	// Self-consistent and signed with the real key, it passes on its own...
	resignedFile := writeFile(t, "resigned.jsonl", resigned)
	runCmd(t, nil, "--key", k.vkey, resignedFile).want(t, 0, "OK: 8 entries")
	// ... but not against a checkpoint kept from before the rewrite.
	held := writeFile(t, "cp8.txt", sign(t, k, tenant, es))
	runCmd(t, nil, "--key", k.vkey, "--checkpoint", held, resignedFile).
		want(t, 1, "INVALID: entry 1: entries 1 to 8 are not the ones checkpoint "+held+" (size 8) signed: history rewritten")
}

func TestHeldCheckpoints(t *testing.T) {
	k := newKey(t, keyName)
	es := genChain(t, tenant, 8, "a")
	full := writeFile(t, "full.jsonl", export(t, k, tenant, es))
	first5 := writeFile(t, "first5.jsonl", export(t, k, tenant, es[:5]))
	cpFile := func(name string, k logKey, tenant string, es []ledger.Entry) string {
		return writeFile(t, name, sign(t, k, tenant, es))
	}
	cp8 := cpFile("cp8.txt", k, tenant, es)
	cp5 := cpFile("cp5.txt", k, tenant, es[:5])
	cp2 := cpFile("cp2.txt", k, tenant, es[:2])

	t.Run("matching", func(t *testing.T) {
		runCmd(t, nil, "--key", k.vkey, "--checkpoint", cp5, "--checkpoint", cp8, "--checkpoint", cp2, full).want(t, 0,
			"OK: 8 entries of tenant acme",
			"OK: entries 1 to 2 match checkpoint "+cp2+" (size 2)",
			"OK: entries 1 to 5 match checkpoint "+cp5+" (size 5)",
			"OK: entries 1 to 8 match checkpoint "+cp8+" (size 8)")
		runCmd(t, nil, "--key", k.vkey, "--checkpoint", cp5, first5).want(t, 0, "OK: entries 1 to 5 match")
		// Saved with jq -r (one more newline), and the whole JSON response.
		signed := sign(t, k, tenant, es[:5])
		jq := writeFile(t, "cp5-jq.txt", append(bytes.Clone(signed), '\n'))
		resp, _ := json.Marshal(map[string]any{"ok": true, "tree_size": 5, "checkpoint": string(signed), "verifier_key": k.vkey})
		respFile := writeFile(t, "checkpoint.json", resp)
		runCmd(t, nil, "--key", k.vkey, "--checkpoint", jq, "--checkpoint", respFile, full).want(t, 0, "OK: entries 1 to 5 match checkpoint "+respFile)
		// From the environment, a list.
		t.Setenv("ECHOPILOT_AUDIT_CHECKPOINT", cp2+string(os.PathListSeparator)+cp5)
		runCmd(t, nil, "--key", k.vkey, full).want(t, 0, "match checkpoint "+cp2, "match checkpoint "+cp5)
		// A flag replaces the environment's list.
		o := runCmd(t, nil, "--key", k.vkey, "--checkpoint", cp8, full)
		o.want(t, 0, "match checkpoint "+cp8)
		if strings.Contains(o.stdout, cp2) {
			t.Errorf("the environment's checkpoints were checked too:\n%s", o.stdout)
		}
	})

	t.Run("rollback", func(t *testing.T) {
		// The export (of a log rolled back to 5 entries, with its own valid
		// checkpoint at 5) is fine on its own, not against checkpoint 8.
		runCmd(t, nil, "--key", k.vkey, first5).want(t, 0, "OK: 5 entries")
		o := runCmd(t, nil, "--key", k.vkey, "--checkpoint", cp8, first5)
		o.want(t, 1, "INVALID: entry 6: missing: the export ends at entry 5, but the log signed checkpoint "+cp8+" covering 8 entries (entries 6 to 8")
		if strings.Contains(o.stdout, "OK") {
			t.Errorf("OK printed:\n%s", o.stdout)
		}
	})

	t.Run("rewritten", func(t *testing.T) {
		// The log's history from entry 3 on was rewritten and the whole of
		// it re-signed with the real key; the export is self-consistent.
		other := genChain(t, tenant, 8, "a")
		copy(other[:2], es[:2])
		other = append(other[:2], genChain(t, tenant, 8, "b")[2:]...)
		for i := 2; i < 8; i++ {
			other[i].PrevHash = other[i-1].Hash
			other[i].Hash = ledger.ComputeHash(other[i])
		}
		rewritten := writeFile(t, "rewritten.jsonl", export(t, k, tenant, other))
		runCmd(t, nil, "--key", k.vkey, rewritten).want(t, 0, "OK: 8 entries")
		o := runCmd(t, nil, "--key", k.vkey, "--checkpoint", cp2, "--checkpoint", cp5, rewritten)
		o.want(t, 1, "INVALID: entry 3: entries 3 to 5 are not the ones checkpoint "+cp5+" (size 5) signed: history rewritten")
		if strings.Contains(o.stdout, "OK") || strings.Contains(o.stdout, cp2) {
			t.Errorf("stdout:\n%s", o.stdout)
		}
		// Without the one that matched, only the range 1..5 can be named.
		runCmd(t, nil, "--key", k.vkey, "--checkpoint", cp5, rewritten).want(t, 1, "INVALID: entry 1: entries 1 to 5 are not")
	})

	t.Run("not the log's", func(t *testing.T) {
		forged := cpFile("forged.txt", newKey(t, keyName), tenant, es)
		runCmd(t, nil, "--key", k.vkey, "--checkpoint", forged, full).want(t, 1, "INVALID: checkpoint "+forged+": checkpoint signature")
		otherTenant := cpFile("globex.txt", k, "globex", genChain(t, "globex", 3, "a"))
		runCmd(t, nil, "--key", k.vkey, "--checkpoint", otherTenant, full).want(t, 1,
			`INVALID: checkpoint `+otherTenant+` is another log's (origin "echopilot.audit/globex"), the export is tenant "acme"'s`)
		garbage := writeFile(t, "garbage.txt", []byte("not a note\n"))
		runCmd(t, nil, "--key", k.vkey, "--checkpoint", garbage, full).want(t, 1, "INVALID: checkpoint "+garbage)
	})

	t.Run("lines missing", func(t *testing.T) {
		// A deleted line is VerifyExport's finding; checkpoint 8, which
		// the export's own checkpoint also covers, cannot be checked, and
		// is no sign of a rollback.
		ls := lines(export(t, k, tenant, es))
		file := writeFile(t, "deleted.jsonl", append(bytes.Join(ls[:4], nil), bytes.Join(ls[5:], nil)...))
		o := runCmd(t, nil, "--key", k.vkey, "--checkpoint", cp8, "--checkpoint", cp2, file)
		o.want(t, 1,
			"INVALID: entry 4: missing entry",
			"INVALID: cannot check checkpoint "+cp8+" (size 8): the export has 7 entry lines")
		if strings.Contains(o.stdout, "rolled back") || strings.Contains(o.stdout, "OK:") {
			t.Errorf("stdout:\n%s", o.stdout)
		}
		// Cut short and rolled back: the missing entries are named from
		// the end of what is there.
		file = writeFile(t, "cut.jsonl", bytes.Join(ls[:6], nil))
		cp10 := cpFile("cp10.txt", k, tenant, genChain(t, tenant, 10, "a"))
		runCmd(t, nil, "--key", k.vkey, "--checkpoint", cp10, file).want(t, 1,
			"INVALID: truncated: 5 entries, the checkpoint covers 8",
			"INVALID: entry 6: missing: the export ends at entry 5, but the log signed checkpoint "+cp10+" covering 10 entries (entries 6 to 10")
	})

	t.Run("unreadable entry", func(t *testing.T) {
		exp := export(t, k, tenant, es)
		ls := lines(exp)
		ls[3] = []byte("{\"type\":\"entry\"}\n")
		file := writeFile(t, "broken.jsonl", bytes.Join(ls, nil))
		o := runCmd(t, nil, "--key", k.vkey, "--checkpoint", cp2, "--checkpoint", cp5, file)
		o.want(t, 1, "INVALID: entry 3: cannot check checkpoint "+cp5+" (size 5)")
		if strings.Contains(o.stdout, "cannot check checkpoint "+cp2) {
			t.Errorf("checkpoint 2 not checked:\n%s", o.stdout)
		}
	})
}

func TestJSONReport(t *testing.T) {
	k := newKey(t, keyName)
	es := genChain(t, tenant, 8, "a")
	full := writeFile(t, "full.jsonl", export(t, k, tenant, es))
	first5 := writeFile(t, "first5.jsonl", export(t, k, tenant, es[:5]))
	cp8 := writeFile(t, "cp8.txt", sign(t, k, tenant, es))

	var rep jsonReport
	decode := func(o outcome) {
		t.Helper()
		rep = jsonReport{}
		dec := json.NewDecoder(strings.NewReader(o.stdout))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rep); err != nil {
			t.Fatalf("stdout is not the JSON report: %v\n%s", err, o.stdout)
		}
	}

	o := runCmd(t, nil, "--key", k.vkey, "--json", "--checkpoint", cp8, full)
	o.want(t, 0)
	decode(o)
	if !rep.Valid || rep.TenantID != tenant || rep.Entries != 8 || rep.FirstInvalidSeq != 0 || len(rep.Problems) != 0 ||
		!strings.HasPrefix(rep.Key, keyName+"+") || rep.Checkpoint == nil || rep.Checkpoint.Size != 8 ||
		rep.Checkpoint.Origin != "echopilot.audit/acme" || len(rep.Checkpoint.RootHash) != 64 ||
		len(rep.HeldCheckpoints) != 1 || rep.HeldCheckpoints[0].Result != resultMatch ||
		rep.HeldCheckpoints[0].RootHash != rep.Checkpoint.RootHash || rep.HeldCheckpoints[0].File != cp8 {
		t.Errorf("valid report: %+v", rep)
	}

	o = runCmd(t, nil, "--key", k.vkey, "--json", "--checkpoint", cp8, first5)
	o.want(t, 1)
	decode(o)
	if rep.Valid || rep.Entries != 5 || rep.FirstInvalidSeq != 6 || len(rep.Problems) != 1 ||
		!strings.HasPrefix(rep.Problems[0], "entry 6: missing") ||
		len(rep.HeldCheckpoints) != 1 || rep.HeldCheckpoints[0].Result != resultBeyondExport || rep.HeldCheckpoints[0].Size != 8 {
		t.Errorf("rollback report: %+v", rep)
	}

	// History rewritten from entry 4 on: checkpoint 3 still matches,
	// checkpoint 8 does not.
	other := append(slices.Clone(es[:3]), genChain(t, tenant, 8, "b")[3:]...)
	for i := 3; i < 8; i++ {
		other[i].PrevHash = other[i-1].Hash
		other[i].Hash = ledger.ComputeHash(other[i])
	}
	cp3 := writeFile(t, "cp3.txt", sign(t, k, tenant, es[:3]))
	o = runCmd(t, nil, "--key", k.vkey, "--json", "--checkpoint", cp8, "--checkpoint", cp3, writeFile(t, "rw.jsonl", export(t, k, tenant, other)))
	o.want(t, 1)
	decode(o)
	if rep.Valid || rep.FirstInvalidSeq != 4 || len(rep.Problems) != 1 || !strings.HasPrefix(rep.Problems[0], "entry 4: entries 4 to 8 are not") ||
		len(rep.HeldCheckpoints) != 2 || rep.HeldCheckpoints[0].Result != resultMatch || rep.HeldCheckpoints[1].Result != resultMismatch {
		t.Errorf("rewritten report: %+v", rep)
	}

	ls := lines(export(t, k, tenant, es))
	edited := writeFile(t, "edited.jsonl", bytes.Join(append(ls[:3:3], bytes.Replace(ls[3], []byte("user-"), []byte("usr--"), 1), bytes.Join(ls[4:], nil)), nil))
	o = runCmd(t, nil, "--key", k.vkey, "--json", edited)
	o.want(t, 1)
	decode(o)
	if rep.Valid || rep.FirstInvalidSeq != 3 || len(rep.Problems) == 0 || !strings.HasPrefix(rep.Problems[0], "entry 3: hash mismatch") {
		t.Errorf("edited report: %+v", rep)
	}
}

func TestUsage(t *testing.T) {
	k := newKey(t, keyName)
	file := writeFile(t, "acme.jsonl", export(t, k, tenant, genChain(t, tenant, 3, "a")))
	missing := filepath.Join(t.TempDir(), "missing")
	for name, args := range map[string][]string{
		"no export":             {"--key", k.vkey},
		"two exports":           {"--key", k.vkey, file, file},
		"no key":                {file},
		"unknown flag":          {"--key", k.vkey, "--strict", file},
		"bad key":               {"--key", "not-a-key", file},
		"private key given":     {"--key", k.skey, file},
		"key file missing":      {"--key", "@" + missing, file},
		"export missing":        {"--key", k.vkey, missing},
		"checkpoint missing":    {"--key", k.vkey, "--checkpoint", missing, file},
		"checkpoint empty":      {"--key", k.vkey, "--checkpoint", writeFile(t, "empty", nil), file},
		"checkpoint other JSON": {"--key", k.vkey, "--checkpoint", writeFile(t, "err.json", []byte(`{"code":16}`)), file},
		"bad json env":          {"--key", k.vkey, file},
	} {
		t.Run(name, func(t *testing.T) {
			if name == "bad json env" {
				t.Setenv("ECHOPILOT_AUDIT_VERIFY_JSON", "maybe")
			}
			o := runCmd(t, nil, args...)
			if o.code != 2 || o.stdout != "" {
				t.Errorf("exit %d, want 2; stdout %q; stderr:\n%s", o.code, o.stdout, o.stderr)
			}
		})
	}

	var stderr bytes.Buffer
	if err := run([]string{"-h"}, strings.NewReader(""), io.Discard, &stderr); err != nil {
		t.Errorf("-h: %v", err)
	}
	for _, s := range []string{"Usage: audit-verify --key", "Exit status: 0 valid, 1 invalid, 2 usage or I/O error", "-checkpoint", "ECHOPILOT_AUDIT_VERIFIER_KEY"} {
		if !strings.Contains(stderr.String(), s) {
			t.Errorf("usage lacks %q:\n%s", s, stderr.String())
		}
	}
}

// An export read from a failing stdin is an I/O error (2), not INVALID.
func TestReadError(t *testing.T) {
	k := newKey(t, keyName)
	exp := export(t, k, tenant, genChain(t, tenant, 3, "a"))
	r := io.MultiReader(bytes.NewReader(exp[:len(exp)/2]), iotest.ErrReader(io.ErrUnexpectedEOF))
	o := runCmd(t, r, "--key", k.vkey, "-")
	if o.code != 2 || o.stdout != "" || !strings.Contains(o.stderr, "unexpected EOF") {
		t.Errorf("exit %d stdout %q stderr %q", o.code, o.stdout, o.stderr)
	}
}

// The prefix roots are the roots of the trees of those sizes, however the
// bytes arrive.
func TestPrefixRoots(t *testing.T) {
	k := newKey(t, keyName)
	es := genChain(t, tenant, 13, "a")
	exp := export(t, k, tenant, es)
	sizes := []uint64{13, 0, 1, 4, 7, 4, 12, 14}
	for _, chunk := range []int{1, 7, 4096} {
		p := newPrefixRoots(sizes)
		for b := exp; len(b) > 0; {
			n := min(chunk, len(b))
			p.Write(b[:n])
			b = b[n:]
		}
		p.finish()
		if p.entries != 13 {
			t.Fatalf("chunk %d: %d entries", chunk, p.entries)
		}
		for _, size := range sizes {
			got, ok := p.root(size)
			if size > 13 {
				if ok {
					t.Errorf("chunk %d: a root for size %d", chunk, size)
				}
				continue
			}
			cp, err := ledger.Open(sign(t, k, tenant, es[:size]), mustVerifier(t, k.vkey))
			if err != nil {
				t.Fatal(err)
			}
			if !ok || !bytes.Equal(got, cp.Root) {
				t.Errorf("chunk %d: root of size %d = %x, %v; want %x", chunk, size, got, ok, cp.Root)
			}
		}
	}
}

func mustVerifier(t *testing.T, vkey string) note.Verifier {
	t.Helper()
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
