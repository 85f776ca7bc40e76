package ledger

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"time"

	"github.com/transparency-dev/merkle/compact"
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

// filterLine follows the checkpoint line of a filtered export: the filter
// its entries were selected by (times in RFC 3339, "" for no bound).
type filterLine struct {
	Type      string `json:"type"`
	TenantID  string `json:"tenant_id"`
	EventType string `json:"event_type"`
	User      string `json:"user"`
	Resource  string `json:"resource"`
	Severity  string `json:"severity"`
	Since     string `json:"since"`
	Until     string `json:"until"`
}

// provenLine is an entry line of a filtered export: the entry and its
// inclusion proof (hex hashes, leaf to root) in the checkpoint's tree.
type provenLine struct {
	entryLine
	InclusionProof []string `json:"inclusion_proof"`
}

// cutLine follows the checkpoint line of the export of a log whose prefix
// retention deleted: what remains of entries 1 to size (the last one's hash
// and timestamp, the frontier's hashes in hex, and the checkpoint signed at
// the cut). The entries follow from seq size+1.
type cutLine struct {
	Type     string   `json:"type"`
	TenantID string   `json:"tenant_id"`
	Size     uint64   `json:"size"`
	LastHash string   `json:"last_hash"`
	LastTS   string   `json:"last_ts"`
	Frontier []string `json:"frontier"`
	Note     string   `json:"note"`
}

// Cut is what an export carries of a prefix retention deleted.
type Cut struct {
	Size       uint64
	LastHash   string
	LastTS     time.Time
	Frontier   [][]byte // the hashes of RangeIDs(Size)
	Checkpoint []byte   // signed at Size
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
	lineTypeFilter  = "filter"
	lineTypeCut     = "cut"
	checkpointFirst = "export: the first line must be the checkpoint line"
)

// WriteExport writes tenantID's export: the signed checkpoint, then the
// entries in seq order. entries must be exactly seq 1 to the checkpoint's
// size (an export of a log that has grown since must stop at the size).
func WriteExport(w io.Writer, tenantID string, signedCheckpoint []byte, entries iter.Seq2[Entry, error]) error {
	return writeExport(w, tenantID, signedCheckpoint, nil, entries, func(e Entry) (Entry, any) { return e, toLine(e) })
}

// WriteExportAfterCut is WriteExport of a log retention cut at cut.Size: a
// cut line after the checkpoint, then entries cut.Size+1 to the
// checkpoint's size.
func WriteExportAfterCut(w io.Writer, tenantID string, signedCheckpoint []byte, cut Cut, entries iter.Seq2[Entry, error]) error {
	frontier := make([]string, len(cut.Frontier))
	for i, h := range cut.Frontier {
		frontier[i] = hex.EncodeToString(h)
	}
	header := cutLine{Type: lineTypeCut, TenantID: tenantID, Size: cut.Size, LastHash: cut.LastHash,
		LastTS: NormalizeTS(cut.LastTS).Format(TSLayout), Frontier: frontier, Note: string(cut.Checkpoint)}
	return writeExport(w, tenantID, signedCheckpoint, header, entries, func(e Entry) (Entry, any) { return e, toLine(e) })
}

// ProvenEntry is an entry with its inclusion proof in a tree.
type ProvenEntry struct {
	Entry
	Proof [][]byte
}

// WriteFilteredExport writes the export of the entries of tenantID's log
// that f selects: the signed checkpoint, the filter line, then each entry,
// in seq order, with its inclusion proof in the checkpoint's tree (every
// entry's seq at most the checkpoint's size).
func WriteFilteredExport(w io.Writer, tenantID string, signedCheckpoint []byte, f Filter, entries iter.Seq2[ProvenEntry, error]) error {
	return writeExport(w, tenantID, signedCheckpoint, toFilterLine(tenantID, f), entries, func(e ProvenEntry) (Entry, any) {
		proof := make([]string, len(e.Proof))
		for i, h := range e.Proof {
			proof[i] = hex.EncodeToString(h)
		}
		return e.Entry, provenLine{toLine(e.Entry), proof}
	})
}

// writeExport writes the checkpoint line, the header line (unless nil),
// and the line of each entry.
func writeExport[T any](w io.Writer, tenantID string, signedCheckpoint []byte, header any, entries iter.Seq2[T, error],
	line func(T) (Entry, any)) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(checkpointLine{lineTypeCP, tenantID, string(signedCheckpoint)}); err != nil {
		return err
	}
	if header != nil {
		if err := enc.Encode(header); err != nil {
			return err
		}
	}
	for v, err := range entries {
		if err != nil {
			return err
		}
		e, l := line(v)
		if e.TenantID != tenantID {
			return fmt.Errorf("export of %q: entry %d belongs to %q", tenantID, e.Seq, e.TenantID)
		}
		if err := enc.Encode(l); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func toFilterLine(tenantID string, f Filter) filterLine {
	since, until := f.Bounds()
	return filterLine{Type: lineTypeFilter, TenantID: tenantID, EventType: f.EventType, User: f.User,
		Resource: f.Resource, Severity: f.MinSeverity, Since: since, Until: until}
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
	// Filter is set for a filtered export: its entries are the ones the
	// filter selects, each proven by itself (Entries need not be the
	// checkpoint's size, and entries the export leaves out are not checked).
	Filter *Filter
	// CutSize > 0 is an export of a log retention cut: entries 1 to CutSize
	// were deleted, and the export starts at the frontier the checkpoint
	// signed at the cut.
	CutSize uint64
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

	line := 1
	var first []byte // the second line when it is an entry line
	hasFirst := sc.Scan()
	if hasFirst {
		line++
		var fl filterLine
		if decodeStrict(sc.Bytes(), &fl) == nil && fl.Type == lineTypeFilter {
			return verifyFiltered(sc, &lc, fl, &rep, cp, haveCP, &unterminated)
		}
		first = append([]byte(nil), sc.Bytes()...)
	}
	chain := NewChainChecker()
	tree := factory.NewEmptyRange(0)
	if hasFirst {
		var cl cutLine
		if decodeStrict(first, &cl) == nil && cl.Type == lineTypeCut {
			var err error
			if chain, tree, err = startAtCut(&lc, first, cl, verifier, &rep); err != nil {
				return rep, err
			}
			first, hasFirst = nil, false
		}
	}
	tenantReported := false
	for next := hasFirst; next || sc.Scan(); next = false {
		b := first
		if !next {
			line++
			b = sc.Bytes()
		}
		e, err := lc.parseEntry(b)
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
			if err := tree.Append(LeafHash(leaf), nil); err != nil {
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
		switch checked, want := chain.Checked(), cp.Size-min(rep.CutSize, cp.Size); {
		case cp.Size < rep.CutSize:
			rep.problem("the checkpoint of size %d is older than the retention cut at %d", cp.Size, rep.CutSize)
		case rep.Entries < want:
			rep.problem("truncated: %d entries, the checkpoint covers %d", rep.CutSize+rep.Entries, cp.Size)
			rep.bad(checked + 1)
		case rep.Entries > want:
			rep.problem("%d entries after seq %d are not covered by the checkpoint", rep.Entries-want, cp.Size)
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

// verifyFiltered checks the rest of a filtered export, after its filter
// line fl: the filter line as written, then each entry line as written,
// of the export's tenant, in increasing seq order, selected by the filter,
// its hash that of its content (and, for entry 1, linked to Genesis), and
// its inclusion proof leading from its hash at its seq to the
// checkpoint's root.
func verifyFiltered(sc *bufio.Scanner, lc *lineCodec, fl filterLine, rep *Report, cp Checkpoint, haveCP bool, unterminated *bool) (Report, error) {
	line := 2
	f, err := parseFilterLine(fl)
	switch {
	case err != nil:
		rep.problem("line 2: %v", err)
	case fl.TenantID != rep.TenantID:
		rep.problem("line 2: the filter is of tenant %q, the export is %q's", fl.TenantID, rep.TenantID)
	case !lc.exact(sc.Bytes(), toFilterLine(fl.TenantID, f)):
		rep.problem("line 2: %s", errNotExact)
	}
	rep.Filter = &f
	var prev uint64
	for sc.Scan() {
		line++
		e, proof, err := lc.parseProven(sc.Bytes())
		if err != nil {
			rep.problem("line %d: %v", line, err)
			continue
		}
		rep.Entries++
		fail := func(format string, args ...any) {
			rep.problem("line %d: entry %d: %s", line, e.Seq, fmt.Sprintf(format, args...))
			rep.bad(e.Seq)
		}
		switch {
		case e.TenantID != rep.TenantID:
			fail("belongs to tenant %q, the export is %q's", e.TenantID, rep.TenantID)
			continue
		case e.Seq <= prev:
			fail("out of order (after seq %d)", prev)
			continue
		}
		prev = e.Seq
		if !f.Match(e) {
			fail("not selected by the export's filter")
		}
		if err := ResumeChainChecker(e.Seq, e.TenantID, e.PrevHash, time.Time{}).Add(e); err != nil {
			var br *Break
			if errors.As(err, &br) {
				fail("%s", br.Reason)
			}
			continue
		}
		if !haveCP {
			continue
		}
		if e.Seq > cp.Size {
			fail("not covered by the checkpoint of size %d", cp.Size)
			continue
		}
		leaf, _ := DecodeHash(e.Hash) // valid: the checker recomputed it
		if err := VerifyInclusion(e.Seq-1, cp.Size, leaf, proof, cp.Root); err != nil {
			fail("not in the tree the checkpoint of size %d signed (inclusion proof fails: rewritten)", cp.Size)
		}
	}
	if err := sc.Err(); err != nil {
		return *rep, err
	}
	if *unterminated {
		rep.problem("the last line does not end in a newline (export cut short?)")
	}
	rep.Valid = len(rep.Problems) == 0
	return *rep, nil
}

// startAtCut checks the cut line cl (line 2, as read in b) and returns the
// chain checker and tree the entries after the cut continue: the cut's
// checkpoint must be signed for the export's tenant at the cut's size, and
// its root must be the frontier's. (That the later checkpoint extends it
// follows when the tree grown from the frontier reaches that checkpoint's
// root.)
func startAtCut(lc *lineCodec, b []byte, cl cutLine, v note.Verifier, rep *Report) (*ChainChecker, *compact.Range, error) {
	rep.CutSize = cl.Size
	bad := false
	fail := func(format string, args ...any) {
		bad = true
		rep.problem("line 2: retention cut at %d: %s", cl.Size, fmt.Sprintf(format, args...))
		rep.bad(cl.Size + 1)
	}
	ts, err := time.Parse(TSLayout, cl.LastTS)
	frontier := make([][]byte, 0, len(cl.Frontier))
	for _, h := range cl.Frontier {
		raw, herr := hex.DecodeString(h)
		if herr != nil || len(raw) != 32 {
			fail("frontier hash %q is not a SHA-256 hex", h)
			return NewChainChecker(), factory.NewEmptyRange(0), nil
		}
		frontier = append(frontier, raw)
	}
	switch {
	case cl.TenantID != rep.TenantID:
		fail("the cut is of tenant %q, the export is %q's", cl.TenantID, rep.TenantID)
	case err != nil || ts.Format(TSLayout) != cl.LastTS:
		fail("last_ts %q is not in the form %s", cl.LastTS, TSLayout)
	case cl.Size == 0 || len(frontier) != len(RangeIDs(cl.Size)):
		fail("%d frontier hashes, a tree of %d entries has %d", len(frontier), cl.Size, len(RangeIDs(cl.Size)))
	case !lc.exact(b, cl):
		fail("%s", errNotExact)
	}
	if bad {
		return NewChainChecker(), factory.NewEmptyRange(0), nil
	}
	tree, err := factory.NewRange(0, cl.Size, frontier)
	if err != nil {
		return nil, nil, err
	}
	root, err := rootOf(tree)
	if err != nil {
		return nil, nil, err
	}
	cp, err := Open([]byte(cl.Note), v)
	switch {
	case err != nil:
		fail("its checkpoint does not verify: %v", err)
	case cp.Origin != Origin(rep.TenantID) || cp.Size != cl.Size:
		fail("its checkpoint is of %q at size %d", cp.Origin, cp.Size)
	case !bytes.Equal(cp.Root, root):
		fail("the frontier's root is not the one the checkpoint at the cut signed")
	}
	return ResumeChainChecker(cl.Size+1, rep.TenantID, cl.LastHash, ts), tree, nil
}

// parseFilterLine reads a filter line's filter.
func parseFilterLine(fl filterLine) (Filter, error) {
	f := Filter{EventType: fl.EventType, User: fl.User, Resource: fl.Resource, MinSeverity: fl.Severity}
	if fl.Severity != "" && !ValidSeverity(fl.Severity) {
		return f, fmt.Errorf("filter severity %q: want low, medium, high or critical", fl.Severity)
	}
	for _, b := range []struct {
		s  string
		to *time.Time
	}{{fl.Since, &f.Since}, {fl.Until, &f.Until}} {
		if b.s == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, b.s)
		if err != nil {
			return f, fmt.Errorf("filter time %q is not RFC 3339", b.s)
		}
		*b.to = t.UTC()
	}
	return f, nil
}

// parseProven reads an entry line of a filtered export.
func (lc *lineCodec) parseProven(b []byte) (Entry, [][]byte, error) {
	var l struct {
		anyLine
		InclusionProof []string `json:"inclusion_proof"`
	}
	if len(b) == 0 {
		return Entry{}, nil, errors.New("empty line")
	}
	if err := json.Unmarshal(b, &l); err != nil {
		return Entry{}, nil, err
	}
	if l.Type != lineTypeEntry || l.Note != nil {
		return Entry{}, nil, fmt.Errorf("type %q, want %q", l.Type, lineTypeEntry)
	}
	ts, err := time.Parse(TSLayout, l.TS)
	if err != nil || ts.Format(TSLayout) != l.TS {
		return Entry{}, nil, fmt.Errorf("entry %d: ts %q is not in the form %s", l.Seq, l.TS, TSLayout)
	}
	e := Entry{
		TenantID: l.TenantID, Seq: l.Seq, TS: ts, EventType: l.EventType, User: l.User,
		Action: l.Action, Resource: l.Resource, Details: l.Details, Severity: l.Severity,
		PrevHash: l.PrevHash, Hash: l.Hash,
	}
	proof := make([][]byte, len(l.InclusionProof))
	for i, h := range l.InclusionProof {
		if proof[i], err = hex.DecodeString(h); err != nil || len(proof[i]) != 32 {
			return Entry{}, nil, fmt.Errorf("entry %d: inclusion proof hash %d is not a SHA-256 hex", e.Seq, i)
		}
	}
	if l.InclusionProof == nil || !lc.exact(b, provenLine{toLine(e), l.InclusionProof}) {
		return Entry{}, nil, fmt.Errorf("entry %d: %w", e.Seq, errNotExact)
	}
	return e, proof, nil
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
