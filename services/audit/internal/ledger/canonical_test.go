package ledger_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

// vectorFile is testdata/vectors.json: worked examples of the v1 encoding
// for other implementations. Each entry is in the export's entry form; the
// canonical bytes are in the named file, hash = hex SHA-256 of them.
type vectorFile struct {
	Spec    string   `json:"spec"`
	Vectors []vector `json:"vectors"`
}

type vector struct {
	Name          string   `json:"name"`
	Entry         vecEntry `json:"entry"`
	CanonicalFile string   `json:"canonical_file"`
	Hash          string   `json:"hash"`
}

type vecEntry struct {
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

func (v vecEntry) entry(t *testing.T) ledger.Entry {
	ts, err := time.Parse(ledger.TSLayout, v.TS)
	if err != nil {
		t.Fatal(err)
	}
	return ledger.Entry{TenantID: v.TenantID, Seq: v.Seq, TS: ts, EventType: v.EventType, User: v.User,
		Action: v.Action, Resource: v.Resource, Details: v.Details, Severity: v.Severity, PrevHash: v.PrevHash, Hash: v.Hash}
}

// vectorEntries are the inputs of the golden vectors, linked in order.
func vectorEntries(t *testing.T) []ledger.Entry {
	in := []ledger.Entry{
		// The example in the package comment.
		{TenantID: "t1", Seq: 1, TS: time.Date(2024, 5, 1, 12, 0, 0, 1000, time.UTC),
			EventType: "login", User: "alice", Severity: "low"},
		// Details, a non-UTC zone and nanoseconds that are truncated away.
		{TenantID: "t1", Seq: 2, TS: time.Date(2024, 5, 1, 14, 30, 5, 123456789, time.FixedZone("CEST", 2*3600)),
			EventType: "invoice.create", User: "bob@example.com", Action: "create", Resource: "invoices/42",
			Details: `{"z": 1, "a": {"y": [1, 2.50, "x"], "b": null}, "amount": 12.30}`, Severity: "medium"},
		// Bytes that would confuse a naive encoding: separators, newlines,
		// digits, and multi-byte UTF-8 (lengths count bytes).
		{TenantID: "t1", Seq: 3, TS: time.Date(2024, 5, 1, 12, 30, 5, 999999000, time.UTC),
			EventType: "5:x\n", User: "Zoë 😀", Action: "a:b", Resource: "", Details: `{"msg":"line1\nline2 <b>"}`, Severity: "critical"},
	}
	out := make([]ledger.Entry, len(in))
	var prev *ledger.Entry
	for i, e := range in {
		var err error
		if out[i], err = ledger.Link(prev, e); err != nil {
			t.Fatal(err)
		}
		prev = &out[i]
	}
	return out
}

func TestVectors(t *testing.T) {
	es := vectorEntries(t)
	path := filepath.Join("testdata", "vectors.json")
	if *update {
		vf := vectorFile{Spec: "echopilot-audit-entry/v1, specified in services/audit/internal/ledger/doc.go; hash = lower-case hex SHA-256 of the canonical_file bytes"}
		for i, e := range es {
			name := fmt.Sprintf("vector-%d.canonical", i+1)
			if err := os.WriteFile(filepath.Join("testdata", name), ledger.Canonical(e), 0o644); err != nil {
				t.Fatal(err)
			}
			vf.Vectors = append(vf.Vectors, vector{Name: fmt.Sprint(i + 1), Entry: vecEntry{
				TenantID: e.TenantID, Seq: e.Seq, TS: e.TS.Format(ledger.TSLayout), EventType: e.EventType, User: e.User,
				Action: e.Action, Resource: e.Resource, Details: e.Details, Severity: e.Severity, PrevHash: e.PrevHash, Hash: e.Hash,
			}, CanonicalFile: name, Hash: e.Hash})
		}
		b, _ := json.MarshalIndent(vf, "", "  ")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var vf vectorFile
	if err := json.Unmarshal(b, &vf); err != nil {
		t.Fatal(err)
	}
	if len(vf.Vectors) != len(es) {
		t.Fatalf("%d vectors, want %d", len(vf.Vectors), len(es))
	}
	for i, v := range vf.Vectors {
		canon, err := os.ReadFile(filepath.Join("testdata", v.CanonicalFile))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(canon)
		if got := hex.EncodeToString(sum[:]); got != v.Hash {
			t.Errorf("vector %s: sha256(%s) = %s, file says %s", v.Name, v.CanonicalFile, got, v.Hash)
		}
		e := v.Entry.entry(t)
		if got := ledger.Canonical(e); !bytes.Equal(got, canon) {
			t.Errorf("vector %s: Canonical =\n%q\nwant\n%q", v.Name, got, canon)
		}
		if got := ledger.ComputeHash(e); got != v.Hash || e.Hash != v.Hash {
			t.Errorf("vector %s: ComputeHash = %s, entry says %s, want %s", v.Name, got, e.Hash, v.Hash)
		}
		// The code still produces the vectors from the raw inputs (Link's
		// normalisation included).
		if es[i].Hash != v.Hash {
			t.Errorf("vector %s: Link gives hash %s, want %s", v.Name, es[i].Hash, v.Hash)
		}
	}
	// Vector 1 is the example printed in the package comment.
	doc := "echopilot-audit-entry/v1\n2:t1\n1:1\n27:2024-05-01T12:00:00.000001Z\n5:login\n5:alice\n0:\n0:\n3:low\n2:{}\n7:genesis\n"
	if got := string(ledger.Canonical(es[0])); got != doc {
		t.Errorf("package comment example is stale: Canonical = %q", got)
	}
	if es[1].Details != `{"a":{"b":null,"y":[1,2.50,"x"]},"amount":12.30,"z":1}` {
		t.Errorf("vector 2 details = %s", es[1].Details)
	}
}

func baseEntry() ledger.Entry {
	return ledger.Entry{TenantID: "acme", Seq: 7, TS: t0, EventType: "login", User: "alice", Action: "sign-in",
		Resource: "sessions/1", Details: `{"ip":"10.0.0.1"}`, Severity: "low", PrevHash: strings.Repeat("ab", 32)}
}

func TestEveryFieldChangesHash(t *testing.T) {
	edits := map[string]func(*ledger.Entry){
		"tenant":     func(e *ledger.Entry) { e.TenantID = "acme2" },
		"seq":        func(e *ledger.Entry) { e.Seq = 8 },
		"ts +1µs":    func(e *ledger.Entry) { e.TS = e.TS.Add(time.Microsecond) },
		"ts -1s":     func(e *ledger.Entry) { e.TS = e.TS.Add(-time.Second) },
		"event_type": func(e *ledger.Entry) { e.EventType = "logout" },
		"user":       func(e *ledger.Entry) { e.User = "alicf" },
		"action":     func(e *ledger.Entry) { e.Action = "" },
		"resource":   func(e *ledger.Entry) { e.Resource = "sessions/2" },
		"details":    func(e *ledger.Entry) { e.Details = `{"ip":"10.0.0.2"}` },
		"severity":   func(e *ledger.Entry) { e.Severity = "high" },
		"prev_hash":  func(e *ledger.Entry) { e.PrevHash = strings.Repeat("ab", 31) + "ac" },
	}
	base := ledger.ComputeHash(baseEntry())
	seen := map[string]string{base: "base"}
	for name, edit := range edits {
		e := baseEntry()
		edit(&e)
		h := ledger.ComputeHash(e)
		if other, dup := seen[h]; dup {
			t.Errorf("%s: hash equals that of %s", name, other)
		}
		seen[h] = name
	}
	// Changes below the encoding's resolution must not change the hash:
	// they are not stored.
	same := map[string]func(*ledger.Entry){
		"ts +999ns":  func(e *ledger.Entry) { e.TS = e.TS.Add(999 * time.Nanosecond) },
		"ts in CEST": func(e *ledger.Entry) { e.TS = e.TS.In(time.FixedZone("CEST", 7200)) },
		"hash field": func(e *ledger.Entry) { e.Hash = "anything" },
	}
	for name, edit := range same {
		e := baseEntry()
		edit(&e)
		if h := ledger.ComputeHash(e); h != base {
			t.Errorf("%s changed the hash", name)
		}
	}
	if h := ledger.ComputeHash(baseEntry()); len(h) != 64 || strings.ToLower(h) != h {
		t.Errorf("hash %q is not 64 lower-case hex digits", h)
	}
}

// TestCanonicalUnambiguous moves bytes between adjacent fields (which keeps
// the concatenation of the values the same) and checks the encoding
// changes; then decodes random encodings back, field for field, which shows
// the encoding is injective.
func TestCanonicalUnambiguous(t *testing.T) {
	fields := []func(*ledger.Entry) *string{ // the adjacent string fields, in encoding order
		func(e *ledger.Entry) *string { return &e.EventType },
		func(e *ledger.Entry) *string { return &e.User },
		func(e *ledger.Entry) *string { return &e.Action },
		func(e *ledger.Entry) *string { return &e.Resource },
		func(e *ledger.Entry) *string { return &e.Severity },
		func(e *ledger.Entry) *string { return &e.Details },
		func(e *ledger.Entry) *string { return &e.PrevHash },
	}
	base := baseEntry()
	baseEnc := ledger.Canonical(base)
	for i := 0; i+1 < len(fields); i++ {
		// Last byte of field i to the front of field i+1, and back.
		e := base
		a, b := fields[i](&e), fields[i+1](&e)
		if *a != "" {
			*b = (*a)[len(*a)-1:] + *b
			*a = (*a)[:len(*a)-1]
			if bytes.Equal(ledger.Canonical(e), baseEnc) {
				t.Errorf("moving a byte from field %d to %d kept the encoding", i, i+1)
			}
		}
		e = base
		a, b = fields[i](&e), fields[i+1](&e)
		*a += (*b)[:1]
		*b = (*b)[1:]
		if bytes.Equal(ledger.Canonical(e), baseEnc) {
			t.Errorf("moving a byte from field %d to %d kept the encoding", i+1, i)
		}
	}

	rnd := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "1", "9", ":", "\n", "0:", "é", "😀", "\x00", "{", "}"}
	randStr := func() string {
		var s strings.Builder
		for range rnd.IntN(6) {
			s.WriteString(alphabet[rnd.IntN(len(alphabet))])
		}
		return s.String()
	}
	for range 2000 {
		e := ledger.Entry{TenantID: randStr(), Seq: rnd.Uint64(), TS: time.Unix(rnd.Int64N(4e9), rnd.Int64N(1e9)),
			EventType: randStr(), User: randStr(), Action: randStr(), Resource: randStr(),
			Severity: randStr(), Details: randStr(), PrevHash: randStr()}
		got, err := decodeCanonical(ledger.Canonical(e))
		if err != nil {
			t.Fatalf("decode %q: %v", ledger.Canonical(e), err)
		}
		want := []string{e.TenantID, strconv.FormatUint(e.Seq, 10), e.TS.UTC().Truncate(time.Microsecond).Format(ledger.TSLayout),
			e.EventType, e.User, e.Action, e.Resource, e.Severity, e.Details, e.PrevHash}
		if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
			t.Fatalf("decoded %q, want %q", got, want)
		}
	}
}

// decodeCanonical parses a v1 encoding back into its ten values, strictly,
// following only the package comment.
func decodeCanonical(b []byte) ([]string, error) {
	const header = "echopilot-audit-entry/v1\n"
	if !bytes.HasPrefix(b, []byte(header)) {
		return nil, fmt.Errorf("no header")
	}
	b = b[len(header):]
	var out []string
	for len(b) > 0 {
		i := bytes.IndexByte(b, ':')
		if i < 0 {
			return nil, fmt.Errorf("no length")
		}
		n, err := strconv.Atoi(string(b[:i]))
		if err != nil || strconv.Itoa(n) != string(b[:i]) || i+1+n >= len(b) || b[i+1+n] != '\n' {
			return nil, fmt.Errorf("bad field at %q", b)
		}
		out = append(out, string(b[i+1:i+1+n]))
		b = b[i+2+n:]
	}
	if len(out) != 10 {
		return nil, fmt.Errorf("%d fields", len(out))
	}
	return out, nil
}

// The canonical timestamp is TSLayout for any time (written by hand for
// the years an entry may have, by time.Format for the others).
func TestCanonicalTimestamp(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	lo, hi := time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro(), time.Date(10001, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	times := []time.Time{time.UnixMicro(0), time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC),
		time.Date(999, 12, 31, 23, 59, 59, 999999000, time.UTC), time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 2, 3, 4, 5, 6, 7_891, time.FixedZone("x", 3600))}
	for range 20_000 {
		times = append(times, time.UnixMicro(lo+r.Int64N(hi-lo)))
	}
	for _, ts := range times {
		text := ts.UTC().Truncate(time.Microsecond).Format(ledger.TSLayout)
		field := fmt.Sprintf("\n%d:%s\n", len(text), text)
		if c := ledger.Canonical(ledger.Entry{TenantID: "t", Seq: 1, TS: ts}); !bytes.Contains(c, []byte(field)) {
			t.Fatalf("%v: canonical %q lacks %q", ts, c, field)
		}
	}
}
