package ledger_test

import (
	"bytes"
	"iter"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

// filteredExport writes the export of the entries of es that f selects,
// each with its inclusion proof in the tree of es, under a checkpoint of
// es signed with testSKey. proven, when set, edits each proven entry
// before it is written.
func filteredExport(t *testing.T, es []ledger.Entry, f ledger.Filter, edit func(*ledger.ProvenEntry)) []byte {
	t.Helper()
	m := newMemTree()
	root := m.append(t, leavesOf(t, es))
	signer, err := note.NewSigner(testSKey)
	if err != nil {
		t.Fatal(err)
	}
	tenant := es[0].TenantID
	signed, err := ledger.Sign(ledger.Checkpoint{Origin: ledger.Origin(tenant), Size: uint64(len(es)), Root: root}, signer)
	if err != nil {
		t.Fatal(err)
	}
	var seq iter.Seq2[ledger.ProvenEntry, error] = func(yield func(ledger.ProvenEntry, error) bool) {
		for _, e := range es {
			if !f.Match(e) {
				continue
			}
			proof, err := ledger.InclusionProof(e.Seq-1, uint64(len(es)), m.fetch)
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
	if err := ledger.WriteFilteredExport(&b, tenant, signed, f, seq); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// A filtered export carries the filter and each selected entry with its
// inclusion proof; the verifier checks each entry by itself against the
// signed root, and that it is one the filter selects.
func TestFilteredExport(t *testing.T) {
	es := genChain(t, "acme", 40)
	f := ledger.Filter{MinSeverity: ledger.SeverityHigh, Since: t0.Add(5e9)}
	exp := filteredExport(t, es, f, nil)
	rep := verify(t, exp, testVKey)
	if !rep.Valid || rep.Filter == nil || rep.Filter.MinSeverity != "high" || rep.Entries != 18 || rep.Checkpoint.Size != 40 {
		t.Fatalf("report %+v", rep)
	}
	if !bytes.Contains(lines(exp)[1], []byte(`{"type":"filter","tenant_id":"acme","event_type":"","user":"","resource":"","severity":"high","since":"`)) {
		t.Fatalf("filter line %s", lines(exp)[1])
	}
	for _, c := range []struct {
		name    string
		edit    func(*ledger.ProvenEntry)
		problem string
	}{
		{"edited", func(p *ledger.ProvenEntry) {
			if p.Seq == 12 {
				p.User = "mallory"
			}
		}, "entry 12: hash mismatch"},
		{"re-hashed", func(p *ledger.ProvenEntry) {
			if p.Seq == 12 {
				p.User = "mallory"
				p.Hash = ledger.ComputeHash(p.Entry)
			}
		}, "entry 12: not in the tree"},
		{"proof of another entry", func(p *ledger.ProvenEntry) {
			if p.Seq == 12 {
				p.Seq = 13
			}
		}, "entry 13: "},
		{"not selected", func(p *ledger.ProvenEntry) {
			if p.Seq == 12 {
				p.Severity = ledger.SeverityLow
				p.Hash = ledger.ComputeHash(p.Entry)
			}
		}, "entry 12: not selected by the export's filter"},
	} {
		rep := verify(t, filteredExport(t, es, f, c.edit), testVKey)
		if rep.Valid || !hasProblem(rep, c.problem) || rep.FirstBad == 0 {
			t.Errorf("%s: %+v, want a problem %q", c.name, rep, c.problem)
		}
	}
	// Lines moved, dropped from the proof, or the filter changed.
	ls := lines(exp)
	swapped := bytes.Join([][]byte{ls[0], ls[1], ls[3], ls[2]}, nil)
	if rep := verify(t, swapped, testVKey); rep.Valid || !hasProblem(rep, "out of order") {
		t.Errorf("swapped: %+v", rep)
	}
	wider := bytes.Replace(exp, []byte(`"severity":"high","since"`), []byte(`"severity":"low","since"`), 1)
	if rep := verify(t, wider, testVKey); !rep.Valid {
		t.Errorf("a wider filter still selects every entry: %+v", rep)
	}
	narrower := bytes.Replace(exp, []byte(`"severity":"high","since"`), []byte(`"severity":"critical","since"`), 1)
	if rep := verify(t, narrower, testVKey); rep.Valid || !hasProblem(rep, "not selected") {
		t.Errorf("narrower filter: %+v", rep)
	}
	if rep := verify(t, bytes.Replace(exp, []byte(`"inclusion_proof":["`), []byte(`"inclusion_proof":["00`), 1), testVKey); rep.Valid {
		t.Errorf("bad proof hash accepted")
	}
	// Every byte changed, deleted or duplicated is caught.
	small := filteredExport(t, es[:6], ledger.Filter{EventType: "doc.update", MinSeverity: ledger.SeverityMedium}, nil)
	accepted := 0
	for i := range small {
		for _, b := range [][]byte{
			append(append(bytes.Clone(small[:i]), '#'), small[i+1:]...),
			append(bytes.Clone(small[:i]), small[i+1:]...),
			append(bytes.Clone(small[:i+1]), small[i:]...),
		} {
			if bytes.Equal(b, small) {
				continue
			}
			if rep, err := ledger.VerifyExport(bytes.NewReader(b), testVKey); err == nil && rep.Valid {
				if accepted++; accepted < 5 {
					t.Errorf("byte %d variant accepted: %q", i, small[max(0, i-20):min(len(small), i+20)])
				}
			}
		}
	}
	if accepted > 0 {
		t.Errorf("%d variants accepted", accepted)
	}
	if strings.Count(string(small), "\n") != 2+4 {
		t.Errorf("small export: %s", small)
	}
}
