// Command audit-verify checks an export of a tenant's audit log offline,
// with the log's note verifier key and nothing else:
//
//	audit-verify --key <verifier key | @file> [--checkpoint <file>]... [--json] <export file | ->
//
// It checks the export's signed checkpoint, the hash chain, the entry count
// and the Merkle root (ledger.VerifyExport), and, with --checkpoint, the
// export against signed checkpoints obtained separately (GET
// /api/audit/checkpoint, kept from earlier or fetched later): one larger
// than the export shows a rolled-back or truncated log, one whose root is
// not the root of the export's first <size> entries shows rewritten
// history. A filtered export (GET /api/audit/export with filters) is
// checked entry by entry: each exported entry selected by the filter, its
// hash recomputed and its inclusion proof checked against the signed root.
// Exit status 0: valid; 1: invalid; 2: usage or I/O error. See README.md.
//
// With --follow it monitors a live log through the gateway instead
// (follow.go): every round the signed checkpoint must extend the one kept
// in --checkpoint-dir, by a consistency proof.
package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/echopilot/echopilot/platform/config"
	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, errInvalid) { // an invalid export's report is on stdout already
			fmt.Fprintln(os.Stderr, "audit-verify:", err)
		}
		os.Exit(exitCode(err))
	}
}

// Exit statuses.
const (
	exitValid   = 0
	exitInvalid = 1
	exitError   = 2 // usage or I/O
)

// errInvalid is run's error when the export was read and found invalid.
var errInvalid = errors.New("the export is not valid")

// exitCode maps run's error to the exit status.
func exitCode(err error) int {
	switch {
	case err == nil:
		return exitValid
	case errors.Is(err, errInvalid):
		return exitInvalid
	default:
		return exitError
	}
}

const usageHead = `Usage: audit-verify --key <verifier key | @file> [--checkpoint <file>]... [--json] <export file | ->
       audit-verify --follow --checkpoint-dir <dir> --key <key | @file> [--once] [--interval 1m] [--alert-webhook <url>] <gateway URL>

Checks an export of a tenant's audit log (GET /api/audit/export) offline:
the signature of its checkpoint with the log's verifier key (GetCheckpoint's
verifier_key), the origin (the tenant's log), every entry's hash and link
(no edits, gaps, reordering), the entry count, and the Merkle root of the
entries against the signed root. "-" reads the export from stdin.

--checkpoint (repeatable) also checks the export against a signed checkpoint
obtained separately, e.g. saved from GET /api/audit/checkpoint (the note, or
the whole JSON response): it must verify with the same key and name the
same tenant; if it covers more entries than the export, the log was rolled
back or the export truncated; if not, the root of the export's first <size>
entries must be its root, or history was rewritten since.

Prints "OK: ..." or one "INVALID: entry <seq>: <reason>" line per problem
(--json: a JSON report).

Exit status: 0 valid, 1 invalid, 2 usage or I/O error (nothing was checked).

--follow monitors a live log instead: every --interval it fetches the
tenant's signed checkpoint from the gateway (GET /api/audit/checkpoint,
token from --token or ECHOPILOT_TOKEN), checks its signature and that it is
consistent with the last one kept in --checkpoint-dir (a consistency proof,
GET /api/audit/proofs/consistency), and keeps it. An inconsistency (bad
signature, smaller tree, another root at the same size, a proof that fails)
is reported (and POSTed to --alert-webhook) and exits 1; --once does one
round. Errors reaching the gateway exit 2 with --once, and are retried at
the next round otherwise.

Flags:
`

// Config is the whole configuration of audit-verify.
type Config struct {
	Key         string   // verifier key text, or @file
	Checkpoints []string // files of separately obtained signed checkpoints
	JSON        bool
	Export      string // file, or "-" for stdin

	// Follow runs the monitor (follow.go) against the gateway at URL
	// instead of checking an export.
	Follow        bool
	URL           string
	CheckpointDir string
	Interval      time.Duration
	Once          bool
	AlertWebhook  string
	Token         string
	Tenant        string
	TrustFirstKey bool
}

// usageError is a bad command line: exit 2 with the usage hint.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg + " (-h for usage)" }

func parseConfig(args []string, stderr io.Writer) (Config, error) {
	var c Config
	l := config.New("audit-verify")
	l.FS.SetOutput(stderr)
	l.FS.Usage = func() {
		fmt.Fprint(l.FS.Output(), usageHead)
		l.FS.PrintDefaults()
	}
	l.String(&c.Key, "key", "ECHOPILOT_AUDIT_VERIFIER_KEY", "", "the log's note verifier key (<name>+<hash>+<key>), or @file holding it")
	cps := &fileList{}
	l.Var(cps, "checkpoint", "ECHOPILOT_AUDIT_CHECKPOINT", "file with a signed checkpoint obtained separately (the note, or GET /api/audit/checkpoint's JSON); repeatable; "+
		"in the environment, files separated by "+strconv.QuoteRune(os.PathListSeparator))
	l.Bool(&c.JSON, "json", "ECHOPILOT_AUDIT_VERIFY_JSON", false, "print the report as JSON")
	l.Bool(&c.Follow, "follow", "ECHOPILOT_AUDIT_FOLLOW", false, "monitor a live log through the gateway at URL instead of checking an export (see README.md)")
	l.String(&c.CheckpointDir, "checkpoint-dir", "ECHOPILOT_AUDIT_CHECKPOINT_DIR", "", "--follow: directory keeping the last verified checkpoint (required)")
	l.Duration(&c.Interval, "interval", "ECHOPILOT_AUDIT_INTERVAL", time.Minute, "--follow: time between rounds")
	l.Bool(&c.Once, "once", "ECHOPILOT_AUDIT_ONCE", false, "--follow: one round, then exit (for a CronJob)")
	l.String(&c.AlertWebhook, "alert-webhook", "ECHOPILOT_AUDIT_ALERT_WEBHOOK", "", "--follow: URL to POST a JSON alert to on an inconsistency")
	l.Secret(&c.Token, "token", "ECHOPILOT_TOKEN", "--follow: bearer token for the gateway")
	l.String(&c.Tenant, "tenant", "ECHOPILOT_TENANT", "", "--follow: tenant whose log to follow (X-Tenant-ID; a platform admin may name another tenant); the checkpoint's origin must name it")
	l.Bool(&c.TrustFirstKey, "trust-on-first-use", "ECHOPILOT_AUDIT_TRUST_ON_FIRST_USE", false,
		"--follow without --key: take the verifier key the service returns on the first round and pin it in --checkpoint-dir")
	if err := l.Parse(args); err != nil {
		return Config{}, err
	}
	c.Checkpoints = cps.files
	if c.Follow {
		return followConfig(c, l.FS.Args())
	}
	switch n := l.FS.NArg(); {
	case n == 0:
		return Config{}, &usageError{"no export file given (\"-\" for stdin)"}
	case n > 1:
		return Config{}, &usageError{fmt.Sprintf("one export file, got %q", l.FS.Args())}
	}
	c.Export = l.FS.Arg(0)
	if c.Key == "" {
		return Config{}, &usageError{"--key is required (GetCheckpoint's verifier_key, or ECHOPILOT_AUDIT_VERIFIER_KEY)"}
	}
	return c, nil
}

// fileList is a repeatable flag; values from the environment are replaced,
// not extended, by the first flag.
type fileList struct {
	files   []string
	fromEnv bool
}

// SetEnv takes ECHOPILOT_AUDIT_CHECKPOINT: files separated like PATH.
func (l *fileList) SetEnv(raw string) error {
	l.files, l.fromEnv = nil, true
	for _, f := range filepath.SplitList(raw) {
		if f != "" {
			l.files = append(l.files, f)
		}
	}
	return nil
}

func (l *fileList) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(l.files, string(os.PathListSeparator))
}

func (l *fileList) Set(v string) error {
	if v == "" {
		return errors.New("empty file name")
	}
	if l.fromEnv {
		l.files, l.fromEnv = nil, false
	}
	l.files = append(l.files, v)
	return nil
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, stderr)
	if errors.Is(err, flag.ErrHelp) || errors.Is(err, config.ErrPrinted) {
		return nil
	}
	if err != nil {
		return err
	}
	if cfg.Follow {
		return follow(cfg, stdout, stderr)
	}
	vkey, err := readKey(cfg.Key)
	if err != nil {
		return err
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return fmt.Errorf("--key: not a note verifier key: %w", err)
	}
	held := make([]heldCheckpoint, 0, len(cfg.Checkpoints))
	for _, f := range cfg.Checkpoints {
		signed, err := readCheckpointFile(f)
		if err != nil {
			return err
		}
		held = append(held, heldCheckpoint{file: f, signed: signed})
	}

	in := stdin
	name := "stdin"
	if cfg.Export != "-" {
		f, err := os.Open(cfg.Export)
		if err != nil {
			return err
		}
		defer f.Close()
		in, name = f, cfg.Export
	}
	res, err := verify(in, verifier, vkey, held)
	if err != nil {
		return fmt.Errorf("reading %s: %w", name, err)
	}
	if cfg.JSON {
		err = writeJSON(stdout, res)
	} else {
		err = writeText(stdout, res)
	}
	if err != nil {
		return err
	}
	if !res.valid() {
		return errInvalid
	}
	return nil
}

// readKey returns the key text of --key: the value itself, or the content
// of the file after "@".
func readKey(v string) (string, error) {
	file, ok := strings.CutPrefix(v, "@")
	if !ok {
		return strings.TrimSpace(v), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("--key: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// readCheckpointFile returns the signed note in file: either the note as
// saved (a trailing newline added or doubled by the saving tool is
// tolerated: it is outside the signed text), or GetCheckpoint's JSON
// response, whose "checkpoint" field is the note.
func readCheckpointFile(file string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--checkpoint: %w", err)
	}
	text := string(b)
	if strings.HasPrefix(strings.TrimSpace(text), "{") {
		var resp struct {
			Checkpoint *string `json:"checkpoint"`
		}
		if err := json.Unmarshal(b, &resp); err != nil || resp.Checkpoint == nil {
			return nil, fmt.Errorf("--checkpoint %s: a JSON file must be GetCheckpoint's response, with a \"checkpoint\" string", file)
		}
		text = *resp.Checkpoint
	}
	text = strings.TrimRight(text, "\n")
	if text == "" {
		return nil, fmt.Errorf("--checkpoint %s: empty", file)
	}
	return []byte(text + "\n"), nil
}

// heldCheckpoint is a --checkpoint and what checking it found.
type heldCheckpoint struct {
	file   string
	signed []byte

	cp      ledger.Checkpoint // valid when the signature verified
	openErr error             // why it did not
	result  string            // one of the result* constants
}

// Results of a --checkpoint.
const (
	resultMatch        = "match"         // the export's first Size entries have its root
	resultMismatch     = "mismatch"      // they do not: history rewritten
	resultBeyondExport = "beyond_export" // it covers entries the export does not have
	resultBadSignature = "bad_signature" // not signed by the key (or not a checkpoint)
	resultWrongOrigin  = "wrong_origin"  // another log's
	resultUnchecked    = "unchecked"     // the export's entries could not be read up to its size
)

// problem is one INVALID line: the entry it names (0: none) and why.
type problem struct {
	seq    uint64
	reason string
}

func (p problem) String() string {
	if p.seq == 0 {
		return p.reason
	}
	return fmt.Sprintf("entry %d: %s", p.seq, p.reason)
}

// result is everything verify found.
type result struct {
	keyName  string // <name>+<hash>
	report   ledger.Report
	held     []heldCheckpoint // sorted by size (unverified ones last)
	problems []problem
	firstBad uint64 // the first entry shown bad or missing, 0 when none or not known
}

func (r *result) valid() bool { return len(r.problems) == 0 }

func (r *result) bad(seq uint64) {
	if seq != 0 && (r.firstBad == 0 || seq < r.firstBad) {
		r.firstBad = seq
	}
}

// verify reads the export once: ledger.VerifyExport reads it through a tee
// that computes the Merkle roots of the prefixes the held checkpoints need,
// so memory stays O(log n) and stdin works. The error is for unreadable
// input only; everything wrong with what was read is in the result.
func verify(in io.Reader, verifier note.Verifier, vkey string, held []heldCheckpoint) (*result, error) {
	res := &result{keyName: fmt.Sprintf("%s+%08x", verifier.Name(), verifier.KeyHash()), held: held}
	var sizes []uint64
	for i := range held {
		h := &held[i]
		cp, err := ledger.Open(h.signed, verifier)
		if err != nil {
			h.openErr = err
			continue
		}
		h.cp = cp
		sizes = append(sizes, cp.Size)
	}
	prefix := newPrefixRoots(sizes)
	src := &recordErr{r: in}
	rep, err := ledger.VerifyExport(io.TeeReader(src, prefix), vkey)
	if src.err != nil {
		return nil, src.err
	}
	prefix.finish()
	res.report = rep
	if err != nil {
		// Read to the end, the input is no export: no checkpoint line, or a
		// line too long to be an entry. Nothing to compare the held
		// checkpoints with.
		res.problems = append(res.problems, problem{reason: err.Error()})
		for i := range res.held {
			res.held[i].result = resultUnchecked
		}
		return res, nil
	}
	for _, p := range rep.Problems {
		res.problems = append(res.problems, ledgerProblem(p))
	}
	res.bad(rep.FirstBad)
	if rep.Filter != nil {
		// A filtered export has only some entries: no prefix of the log
		// to compare a held checkpoint with.
		for i := range res.held {
			res.held[i].result = resultUnchecked
			res.problems = append(res.problems, problem{reason: fmt.Sprintf(
				"cannot check checkpoint %s against a filtered export: export the whole log", res.held[i].file)})
		}
	} else {
		checkHeld(res, prefix)
	}
	if rep.FirstBad != 0 && !slices.ContainsFunc(res.problems, func(p problem) bool { return p.seq == rep.FirstBad }) {
		res.problems = append(res.problems, problem{seq: rep.FirstBad, reason: "the first entry missing or not as signed"})
	}
	return res, nil
}

// entryProblem matches VerifyExport's problems about one entry line.
var entryProblem = regexp.MustCompile(`^line (\d+): entry (\d+):? (.*)$`)

// ledgerProblem turns "line L: entry S: reason" into entry S's problem
// "reason (line L)"; other problems name no entry.
func ledgerProblem(s string) problem {
	m := entryProblem.FindStringSubmatch(s)
	if m == nil {
		return problem{reason: s}
	}
	seq, err := strconv.ParseUint(m[2], 10, 64)
	if err != nil {
		return problem{reason: s}
	}
	return problem{seq: seq, reason: fmt.Sprintf("%s (line %s)", m[3], m[1])}
}

// checkHeld compares the verified held checkpoints with the export, in
// size order, so that a mismatch can name the range after the last one
// that matched.
func checkHeld(res *result, prefix *prefixRoots) {
	slices.SortStableFunc(res.held, func(a, b heldCheckpoint) int {
		switch {
		case (a.openErr == nil) != (b.openErr == nil): // verified ones first
			if a.openErr == nil {
				return -1
			}
			return 1
		case a.cp.Size < b.cp.Size:
			return -1
		case a.cp.Size > b.cp.Size:
			return 1
		}
		return 0
	})
	tenant := res.report.TenantID
	have := prefix.base + prefix.entries // the last entry in the export (after a retention cut at base)
	size := have                         // entries the export says it has: its checkpoint's size
	if res.report.Checkpoint.Origin != "" {
		size = res.report.Checkpoint.Size
	}
	var lastGood uint64 // size of the largest held checkpoint that matched
	for i := range res.held {
		h := &res.held[i]
		switch {
		case h.openErr != nil:
			h.result = resultBadSignature
			res.problems = append(res.problems, problem{reason: fmt.Sprintf("checkpoint %s: %v", h.file, h.openErr)})
			continue
		case h.cp.Origin != ledger.Origin(tenant):
			h.result = resultWrongOrigin
			res.problems = append(res.problems, problem{reason: fmt.Sprintf(
				"checkpoint %s is another log's (origin %q), the export is tenant %q's", h.file, h.cp.Origin, tenant)})
			continue
		case h.cp.Size > have && h.cp.Size > size:
			h.result = resultBeyondExport
			from := min(have, size) + 1
			res.bad(from)
			res.problems = append(res.problems, problem{seq: from, reason: fmt.Sprintf(
				"missing: the export ends at entry %d, but the log signed checkpoint %s covering %d entries (entries %d to %d: log rolled back or export truncated)",
				from-1, h.file, h.cp.Size, from, h.cp.Size)})
			continue
		case h.cp.Size < prefix.base:
			h.result = resultUnchecked
			res.problems = append(res.problems, problem{reason: fmt.Sprintf(
				"cannot check checkpoint %s (size %d): retention deleted entries 1 to %d, so the export starts after it; check a later checkpoint, or its consistency with the log's",
				h.file, h.cp.Size, prefix.base)})
			continue
		case h.cp.Size > have:
			// The export's own checkpoint covers these entries, but lines are
			// missing: VerifyExport has reported where.
			h.result = resultUnchecked
			res.problems = append(res.problems, problem{reason: fmt.Sprintf(
				"cannot check checkpoint %s (size %d): the export has %d entry lines", h.file, h.cp.Size, have)})
			continue
		}
		root, ok := prefix.root(h.cp.Size)
		if !ok {
			h.result = resultUnchecked
			res.problems = append(res.problems, problem{seq: prefix.unreadable, reason: fmt.Sprintf(
				"cannot check checkpoint %s (size %d): this entry line has no readable hash", h.file, h.cp.Size)})
			continue
		}
		if !equalBytes(root, h.cp.Root) {
			h.result = resultMismatch
			res.bad(lastGood + 1)
			res.problems = append(res.problems, problem{seq: lastGood + 1, reason: fmt.Sprintf(
				"entries %d to %d are not the ones checkpoint %s (size %d) signed: history rewritten",
				lastGood+1, h.cp.Size, h.file, h.cp.Size)})
			continue
		}
		h.result = resultMatch
		lastGood = h.cp.Size
	}
}

func equalBytes(a, b []byte) bool { return string(a) == string(b) }

// recordErr remembers a read error other than EOF: I/O, not the export's
// fault.
type recordErr struct {
	r   io.Reader
	err error
}

func (r *recordErr) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}

func writeText(w io.Writer, res *result) error {
	var b strings.Builder
	rep := res.report
	if res.valid() && rep.Filter != nil {
		fmt.Fprintf(&b, "OK: %d entries of tenant %s selected by %s, each in the tree of checkpoint %d signed by %s\n",
			rep.Entries, rep.TenantID, filterText(*rep.Filter), rep.Checkpoint.Size, res.keyName)
	} else if res.valid() && rep.CutSize > 0 {
		fmt.Fprintf(&b, "OK: entries %d to %d of tenant %s (1 to %d deleted by retention, their frontier matches the checkpoint signed at the cut), chain and tree match checkpoint %d signed by %s\n",
			rep.CutSize+1, rep.CutSize+rep.Entries, rep.TenantID, rep.CutSize, rep.Checkpoint.Size, res.keyName)
		for _, h := range res.held {
			fmt.Fprintf(&b, "OK: entries 1 to %d match checkpoint %s (size %d)\n", h.cp.Size, h.file, h.cp.Size)
		}
	} else if res.valid() {
		fmt.Fprintf(&b, "OK: %d entries of tenant %s, chain and tree match checkpoint %d signed by %s\n",
			rep.Entries, rep.TenantID, rep.Checkpoint.Size, res.keyName)
		for _, h := range res.held {
			fmt.Fprintf(&b, "OK: entries 1 to %d match checkpoint %s (size %d)\n", h.cp.Size, h.file, h.cp.Size)
		}
	}
	for _, p := range res.problems {
		fmt.Fprintf(&b, "INVALID: %s\n", p)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// filterText describes f: "event_type=x severity>=high since=…".
func filterText(f ledger.Filter) string {
	var parts []string
	for _, kv := range [][2]string{{"event_type=", f.EventType}, {"user=", f.User}, {"resource=", f.Resource},
		{"severity>=", f.MinSeverity}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+strconv.Quote(kv[1]))
		}
	}
	since, until := f.Bounds()
	for _, kv := range [][2]string{{"since=", since}, {"until=", until}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+kv[1])
		}
	}
	if len(parts) == 0 {
		return "an empty filter"
	}
	return "filter " + strings.Join(parts, " ")
}

// The JSON report.
type jsonReport struct {
	Valid           bool             `json:"valid"`
	TenantID        string           `json:"tenant_id"`
	Entries         uint64           `json:"entries"`
	Key             string           `json:"key"`
	Checkpoint      *jsonCheckpoint  `json:"checkpoint"` // as signed, or as claimed when the signature failed; null when unreadable
	HeldCheckpoints []jsonCheckpoint `json:"held_checkpoints"`
	Filter          *jsonFilter      `json:"filter,omitempty"` // a filtered export's filter
	FirstInvalidSeq uint64           `json:"first_invalid_seq"`
	Problems        []string         `json:"problems"`
}

type jsonFilter struct {
	EventType string `json:"event_type"`
	User      string `json:"user"`
	Resource  string `json:"resource"`
	Severity  string `json:"severity"`
	Since     string `json:"since"`
	Until     string `json:"until"`
}

type jsonCheckpoint struct {
	File       string   `json:"file,omitempty"`
	Origin     string   `json:"origin"`
	Size       uint64   `json:"size"`
	RootHash   string   `json:"root_hash"` // hex, as GetCheckpoint shows it
	Extensions []string `json:"extensions,omitempty"`
	Result     string   `json:"result,omitempty"` // held checkpoints: match, mismatch, beyond_export, bad_signature, wrong_origin, unchecked
}

func toJSONCheckpoint(cp ledger.Checkpoint) jsonCheckpoint {
	return jsonCheckpoint{Origin: cp.Origin, Size: cp.Size, RootHash: hex.EncodeToString(cp.Root), Extensions: cp.Extensions}
}

func writeJSON(w io.Writer, res *result) error {
	rep := res.report
	out := jsonReport{
		Valid: res.valid(), TenantID: rep.TenantID, Entries: rep.Entries, Key: res.keyName,
		HeldCheckpoints: []jsonCheckpoint{}, FirstInvalidSeq: res.firstBad, Problems: []string{},
	}
	if rep.Checkpoint.Origin != "" {
		cp := toJSONCheckpoint(rep.Checkpoint)
		out.Checkpoint = &cp
	}
	if f := rep.Filter; f != nil {
		since, until := f.Bounds()
		out.Filter = &jsonFilter{EventType: f.EventType, User: f.User, Resource: f.Resource, Severity: f.MinSeverity,
			Since: since, Until: until}
	}
	for _, h := range res.held {
		cp := toJSONCheckpoint(h.cp)
		cp.File, cp.Result = h.file, h.result
		out.HeldCheckpoints = append(out.HeldCheckpoints, cp)
	}
	for _, p := range res.problems {
		out.Problems = append(out.Problems, p.String())
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(out)
}
