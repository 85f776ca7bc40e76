package ledger

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// Export line shapes (see the package comment). Field order is the output
// order.
type checkpointLine struct {
	Type     string `json:"type"`
	TenantID string `json:"tenant_id"`
	Note     string `json:"note"`
}

type entryLine struct {
	Type      string `json:"type"`
	TenantID  string `json:"tenant_id"`
	Seq       uint64 `json:"seq"`
	TS        string `json:"ts"`
	EventType string `json:"event_type"`
	User      string `json:"user"`
	Action    string `json:"action"`
	Resource  string `json:"resource"`
	Details   string `json:"details"`
	Severity  string `json:"severity"`
	PrevHash  string `json:"prev_hash"`
	Hash      string `json:"hash"`
}

// anyLine reads either shape; unknown fields are rejected.
type anyLine struct {
	entryLine
	Note *string `json:"note"`
}

const (
	maxExportLine   = 4 << 20 // far above any entry the service accepts
	maxProblems     = 100     // the report stays small whatever the input
	lineTypeCP      = "checkpoint"
	lineTypeEntry   = "entry"
	checkpointFirst = "export: the first line must be the checkpoint line"
)

// WriteExport writes tenantID's export: the signed checkpoint, then the
// entries in seq order. entries must be exactly seq 1 to the checkpoint's
// size (an export of a log that has grown since must stop at the size).
func WriteExport(w io.Writer, tenantID string, signedCheckpoint []byte, entries iter.Seq2[Entry, error]) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(checkpointLine{lineTypeCP, tenantID, string(signedCheckpoint)}); err != nil {
		return err
	}
	for e, err := range entries {
		if err != nil {
			return err
		}
		if e.TenantID != tenantID {
			return fmt.Errorf("export of %q: entry %d belongs to %q", tenantID, e.Seq, e.TenantID)
		}
		if err := enc.Encode(toLine(e)); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func toLine(e Entry) entryLine {
	return entryLine{
		Type: lineTypeEntry, TenantID: e.TenantID, Seq: e.Seq, TS: NormalizeTS(e.TS).Format(TSLayout),
		EventType: e.EventType, User: e.User, Action: e.Action, Resource: e.Resource,
		Details: e.Details, Severity: e.Severity, PrevHash: e.PrevHash, Hash: e.Hash,
	}
}

// Report is the outcome of VerifyExport.
type Report struct {
	TenantID   string     // from the checkpoint line
	Entries    uint64     // entry lines that parsed
	Checkpoint Checkpoint // as signed (or, if the signature failed, as claimed)
	Valid      bool       // no problems
	Problems   []string   // in the order found, at most ~100
	// FirstBad is the seq of the first entry shown bad or missing; 0 when
	// valid, and also when the problem cannot be pinned to an entry (a bad
	// signature, or a Merkle root mismatch: the root says the history is not
	// the signed one, not where it diverges).
	FirstBad uint64
}

func (r *Report) problem(format string, args ...any) {
	switch n := len(r.Problems); {
	case n < maxProblems:
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	case n == maxProblems:
		r.Problems = append(r.Problems, "more problems not listed")
	}
}

func (r *Report) bad(seq uint64) {
	if r.FirstBad == 0 {
		r.FirstBad = seq
	}
}

// VerifyExport checks an export offline against the log's note verifier
// key vkey (see the package comment for what is checked). Memory is
// O(log n): entries are streamed, the tree is kept as a compact range.
// Every integrity problem goes into the Report; the error is only for an
// unreadable input, an unusable vkey, or a first line that is not a
// checkpoint line.
func VerifyExport(r io.Reader, vkey string) (Report, error) {
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return Report{}, fmt.Errorf("verifier key: %w", err)
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4<<10), maxExportLine)
	unterminated := false
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		// Like bufio.ScanLines but keeps "\r" (a CRLF export is not the
		// one written) and notes a last line without "\n" (cut short).
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			return i + 1, data[:i], nil
		}
		if atEOF && len(data) > 0 {
			unterminated = true
			return len(data), data, nil
		}
		return 0, nil, nil
	})
	var rep Report
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return rep, err
		}
		return rep, errors.New("export: empty")
	}
	var head anyLine
	if err := decodeStrict(sc.Bytes(), &head); err != nil {
		return rep, fmt.Errorf("%s: %w", checkpointFirst, err)
	}
	if head.Type != lineTypeCP || head.Note == nil {
		return rep, errors.New(checkpointFirst)
	}
	rep.TenantID = head.TenantID
	var lc lineCodec
	if !lc.exact(sc.Bytes(), checkpointLine{lineTypeCP, head.TenantID, *head.Note}) {
		rep.problem("line 1: %s", errNotExact)
	}

	cp, haveCP := openCheckpoint(*head.Note, verifier, &rep)
	rep.Checkpoint = cp
	if haveCP && cp.Origin != Origin(head.TenantID) {
		rep.problem("checkpoint origin %q is not %q: the checkpoint is another log's", cp.Origin, Origin(head.TenantID))
	}

	chain := NewChainChecker()
	tree := factory.NewEmptyRange(0)
	tenantReported := false
	for line := 1; sc.Scan(); {
		line++
		e, err := lc.parseEntry(sc.Bytes())
		if err != nil {
			rep.problem("line %d: %v", line, err)
			continue // the chain reports the gap
		}
		rep.Entries++
		if e.TenantID != head.TenantID && !tenantReported {
			tenantReported = true
			rep.problem("line %d: entry %d belongs to tenant %q, the export is %q's", line, e.Seq, e.TenantID, head.TenantID)
			rep.bad(e.Seq)
		}
		if chain.Err() != nil {
			continue
		}
		if err := chain.Add(e); err != nil {
			rep.problem("line %d: %v", line, err)
			rep.bad(chain.Err().Seq)
			continue
		}
		// Only entries the chain accepted feed the tree, and only up to the
		// checkpoint's size: the root is compared at exactly that size.
		if haveCP && tree.End() < cp.Size {
			leaf, _ := DecodeHash(e.Hash) // valid: the chain checked it is a SHA-256 hex
			if err := tree.Append(hasher.HashLeaf(leaf), nil); err != nil {
				return rep, err // cannot happen: the range is built here
			}
		}
	}
	if err := sc.Err(); err != nil {
		return rep, err
	}
	if unterminated {
		rep.problem("the last line does not end in a newline (export cut short?)")
	}

	if haveCP {
		switch checked := chain.Checked(); {
		case rep.Entries < cp.Size:
			rep.problem("truncated: %d entries, the checkpoint covers %d", rep.Entries, cp.Size)
			rep.bad(checked + 1)
		case rep.Entries > cp.Size:
			rep.problem("%d entries after seq %d are not covered by the checkpoint", rep.Entries-cp.Size, cp.Size)
			rep.bad(cp.Size + 1)
		}
		if tree.End() == cp.Size {
			root, err := rootOf(tree)
			if err != nil {
				return rep, err
			}
			if !bytes.Equal(root, cp.Root) {
				rep.problem("Merkle root mismatch: entries 1..%d are not the ones the checkpoint signed (history rewritten)", cp.Size)
			}
		}
	}
	rep.Valid = len(rep.Problems) == 0
	return rep, nil
}

// openCheckpoint verifies and parses the note. On a bad signature it still
// parses the claimed body, so the rest of the export gets checked against
// it and reported, but the report is invalid.
func openCheckpoint(signed string, v note.Verifier, rep *Report) (Checkpoint, bool) {
	cp, err := Open([]byte(signed), v)
	if err == nil {
		return cp, true
	}
	rep.problem("%v", err)
	// With no verifiers every signature is unknown, so note.Open hands back
	// the text of any well-formed note inside its error.
	_, err = note.Open([]byte(signed), nil)
	var unverified *note.UnverifiedNoteError
	if !errors.As(err, &unverified) {
		return Checkpoint{}, false
	}
	cp, err = ParseCheckpoint([]byte(unverified.Note.Text))
	return cp, err == nil
}

func (lc *lineCodec) parseEntry(b []byte) (Entry, error) {
	var l anyLine
	if len(b) == 0 {
		return Entry{}, errors.New("empty line")
	}
	// Unknown fields, like every other deviation, fail the exact check.
	if err := json.Unmarshal(b, &l); err != nil {
		return Entry{}, err
	}
	if l.Type != lineTypeEntry || l.Note != nil {
		return Entry{}, fmt.Errorf("type %q, want %q", l.Type, lineTypeEntry)
	}
	// Only the canonical form: a ts with more digits would show a value
	// other than the one hashed.
	ts, err := time.Parse(TSLayout, l.TS)
	if err != nil || ts.Format(TSLayout) != l.TS {
		return Entry{}, fmt.Errorf("entry %d: ts %q is not in the form %s", l.Seq, l.TS, TSLayout)
	}
	e := Entry{
		TenantID: l.TenantID, Seq: l.Seq, TS: ts, EventType: l.EventType, User: l.User,
		Action: l.Action, Resource: l.Resource, Details: l.Details, Severity: l.Severity,
		PrevHash: l.PrevHash, Hash: l.Hash,
	}
	if !lc.exact(b, toLine(e)) {
		return Entry{}, fmt.Errorf("entry %d: %w", e.Seq, errNotExact)
	}
	return e, nil
}

var errNotExact = errors.New("not byte for byte as WriteExport writes it (reformatted or edited)")

// exact reports whether line is exactly how WriteExport encodes v. Only
// one spelling is accepted so that any change to an export's bytes is
// reported, even one encoding/json would read the same way (a key's letter
// case, a duplicate key, spacing, escapes).
func (lc *lineCodec) exact(line []byte, v any) bool {
	if lc.enc == nil {
		lc.enc = json.NewEncoder(&lc.buf)
		lc.enc.SetEscapeHTML(false)
	}
	lc.buf.Reset()
	if lc.enc.Encode(v) != nil {
		return false
	}
	return bytes.Equal(bytes.TrimSuffix(lc.buf.Bytes(), []byte("\n")), line)
}

// lineCodec re-encodes lines into one reused buffer.
type lineCodec struct {
	buf bytes.Buffer
	enc *json.Encoder
}

// decodeStrict decodes exactly one JSON object with known fields.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON object")
	}
	return nil
}
