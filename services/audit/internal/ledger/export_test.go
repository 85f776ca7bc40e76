package ledger_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

func verify(t *testing.T, exp []byte, vkey string) ledger.Report {
	t.Helper()
	rep, err := ledger.VerifyExport(bytes.NewReader(exp), vkey)
	if err != nil {
		t.Fatalf("VerifyExport: %v", err)
	}
	if rep.Valid != (len(rep.Problems) == 0) {
		t.Fatalf("Valid = %v with problems %q", rep.Valid, rep.Problems)
	}
	return rep
}

func hasProblem(rep ledger.Report, substr string) bool {
	for _, p := range rep.Problems {
		if strings.Contains(p, substr) {
			return true
		}
	}
	return false
}

func lines(b []byte) [][]byte { return bytes.SplitAfter(b, []byte("\n")) }

func TestExportValid(t *testing.T) {
	es := genChain(t, "acme", 100)
	exp := export(t, "acme", signedCheckpoint(t, "acme", es, testSKey), es)
	rep := verify(t, exp, testVKey)
	if !rep.Valid || rep.Entries != 100 || rep.FirstBad != 0 || rep.Checkpoint.Size != 100 ||
		rep.TenantID != "acme" || rep.Checkpoint.Origin != "echopilot.audit/acme" {
		t.Fatalf("report %+v", rep)
	}
	first := string(lines(exp)[1])
	if !strings.HasPrefix(first, `{"type":"entry","tenant_id":"acme","seq":1,"ts":"2024-05-01T12:00:00.000000Z","event_type":"doc.update",`) ||
		!strings.Contains(first, `"details":"{\"n\":0,\"why\":\"test\"}","severity":"low","prev_hash":"genesis","hash":"`) {
		t.Errorf("entry line: %s", first)
	}

	// The empty log.
	rep = verify(t, export(t, "acme", signedCheckpoint(t, "acme", nil, testSKey), nil), testVKey)
	if !rep.Valid || rep.Entries != 0 {
		t.Fatalf("empty log: %+v", rep)
	}
	// Entries with awkward text survive the round trip.
	odd := vectorEntries(t)
	rep = verify(t, export(t, "t1", signedCheckpoint(t, "t1", odd, testSKey), odd), testVKey)
	if !rep.Valid {
		t.Fatalf("vector entries: %q", rep.Problems)
	}
}

func TestExportTamper(t *testing.T) {
	es := genChain(t, "acme", 100)
	signed := signedCheckpoint(t, "acme", es, testSKey)
	exp := export(t, "acme", signed, es)
	ls := lines(exp) // ls[0] is the checkpoint, ls[k] entry k, ls[101] ""

	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	without := func(k int) []byte { return join(join(ls[:k]...), join(ls[k+1:]...)) }

	rewritten := genChain(t, "acme", 100)
	for i := 59; i < 100; i++ {
		rewritten[i].Details = `{"rewritten":true}`
	}
	relink(rewritten, 59)
	longer := genChain(t, "acme", 110)

	cases := []struct {
		name     string
		exp      []byte
		vkey     string
		problem  string
		firstBad uint64
	}{
		{"edit a byte of entry 50", bytes.Replace(exp, []byte(`"documents/49"`), []byte(`"documents/40"`), 1),
			testVKey, "entry 50: hash mismatch", 50},
		{"edit the hash of entry 50", bytes.Replace(exp, []byte(es[49].Hash), []byte(es[49].Hash[:63]+"x"), 1),
			testVKey, "entry 50: hash mismatch", 50},
		{"delete entry 50", without(50), testVKey, "entry 50: missing entry", 50},
		{"swap entries 40 and 41", join(join(ls[:40]...), ls[41], ls[40], join(ls[42:]...)),
			testVKey, "entry 40: missing entry", 40},
		{"truncate the tail", join(ls[:81]...), testVKey, "truncated: 80 entries, the checkpoint covers 100", 81},
		{"cut mid-line", exp[:len(exp)-100], testVKey, "line 101", 100},
		{"wrong key", exp, otherVKey, "signature", 0},
		{"rewritten suffix, old checkpoint", export(t, "acme", signed, rewritten), testVKey, "Merkle root mismatch", 0},
		{"rewritten suffix, checkpoint signed by a forger", export(t, "acme", signedCheckpoint(t, "acme", rewritten,
			"PRIVATE+KEY+echopilot.audit.test+efe35654+ASo/WeBgEOtrjR0NZiVjytTfmWiWY7y07c39gVj5HVH7"), rewritten), testVKey, "signature", 0},
		{"entries not covered", export(t, "acme", signed, longer), testVKey, "10 entries after seq 100 are not covered", 101},
		{"another tenant's checkpoint", export(t, "acme", signedCheckpoint(t, "other", es, testSKey), es),
			testVKey, "another log's", 0},
		{"checkpoint line names another tenant", bytes.Replace(exp, []byte(`"tenant_id":"acme","note"`), []byte(`"tenant_id":"acmf","note"`), 1),
			testVKey, "belongs to tenant", 1},
		{"a second checkpoint line", join(join(ls[:51]...), ls[0], join(ls[51:]...)), testVKey, `line 52: type "checkpoint"`, 0},
		{"blank line", join(join(ls[:51]...), []byte("\n"), join(ls[51:]...)), testVKey, "line 52: empty line", 0},
		{"key case changed", bytes.Replace(exp, []byte(`"user":"user-3`), []byte(`"User":"user-3`), 1), testVKey, "reformatted", 4},
		{"CRLF", bytes.ReplaceAll(exp, []byte("\n"), []byte("\r\n")), testVKey, "reformatted", 1},
		{"no final newline", exp[:len(exp)-1], testVKey, "does not end in a newline", 0},
		{"ts not canonical", bytes.Replace(exp, []byte(`"ts":"2024-05-01T12:00:09.000000Z"`), []byte(`"ts":"2024-05-01T12:00:09Z"`), 1),
			testVKey, "line 11: entry 10: ts", 10},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep := verify(t, c.exp, c.vkey)
			if rep.Valid || !hasProblem(rep, c.problem) {
				t.Fatalf("problems %q, want one with %q", rep.Problems, c.problem)
			}
			if rep.FirstBad != c.firstBad {
				t.Errorf("FirstBad = %d, want %d (problems %q)", rep.FirstBad, c.firstBad, rep.Problems)
			}
		})
	}

	// Unusable exports are errors.
	for name, in := range map[string]string{
		"empty":               "",
		"not JSON":            "hello\n",
		"entry first":         string(ls[1]),
		"checkpoint w/o note": `{"type":"checkpoint","tenant_id":"acme"}` + "\n",
		"unknown field":       `{"type":"checkpoint","tenant_id":"acme","note":"","x":1}` + "\n",
		"two objects":         `{"type":"checkpoint","tenant_id":"acme","note":""} {}` + "\n",
		"line over the limit": strings.Repeat(" ", 5<<20),
	} {
		if rep, err := ledger.VerifyExport(strings.NewReader(in), testVKey); err == nil {
			t.Errorf("%s: no error, report %+v", name, rep)
		}
	}
	if _, err := ledger.VerifyExport(bytes.NewReader(exp), "not a key"); err == nil {
		t.Error("bad vkey: no error")
	}
	if _, err := ledger.VerifyExport(iotest.TimeoutReader(bytes.NewReader(exp)), testVKey); !errors.Is(err, iotest.ErrTimeout) {
		t.Errorf("read error: got %v", err)
	}
}

// TestExportEveryByte changes, deletes and duplicates each byte of a small
// export in turn: every variant must be rejected.
func TestExportEveryByte(t *testing.T) {
	es := genChain(t, "acme", 6)
	exp := export(t, "acme", signedCheckpoint(t, "acme", es, testSKey), es)
	if rep := verify(t, exp, testVKey); !rep.Valid {
		t.Fatal(rep.Problems)
	}
	accepted := 0
	try := func(what string, i int, b []byte) {
		rep, err := ledger.VerifyExport(bytes.NewReader(b), testVKey)
		if err == nil && rep.Valid {
			if accepted++; accepted < 10 {
				t.Errorf("%s byte %d (%q in %q): accepted", what, i, exp[i], exp[max(0, i-20):min(len(exp), i+20)])
			}
		}
	}
	for i := range exp {
		b := bytes.Clone(exp)
		if b[i] = '#'; exp[i] == '#' {
			b[i] = '%'
		}
		try("changed", i, b)
		try("deleted", i, append(bytes.Clone(exp[:i]), exp[i+1:]...))
		try("duplicated", i, append(bytes.Clone(exp[:i+1]), exp[i:]...))
		if c := exp[i]; 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
			try("upper-cased", i, b)
		}
	}
	if accepted > 0 {
		t.Errorf("%d of %d variants accepted", accepted, 4*len(exp))
	}
}

func TestWriteExportErrors(t *testing.T) {
	es := genChain(t, "acme", 3)
	var b bytes.Buffer
	if err := ledger.WriteExport(&b, "other", nil, seqOf(es)); err == nil {
		t.Error("wrote another tenant's entries")
	}
	boom := errors.New("boom")
	failing := func(yield func(ledger.Entry, error) bool) {
		if yield(es[0], nil) {
			yield(ledger.Entry{}, boom)
		}
	}
	if err := ledger.WriteExport(&b, "acme", nil, failing); !errors.Is(err, boom) {
		t.Errorf("iterator error: got %v", err)
	}
	if err := ledger.WriteExport(failWriter{}, "acme", nil, seqOf(es)); err == nil {
		t.Error("write error not returned")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, io.ErrShortWrite }
