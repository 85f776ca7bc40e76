package ledger_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

// Seed corpora live in testdata/fuzz/<Fuzz target>/seed-* (go test fuzz v1
// files), written by TestSeedCorpus -update from seedInputs. Run a target
// with e.g.
//
//	go test -run='^$' -fuzz=FuzzVerifyExport -fuzztime=15s ./services/audit/internal/ledger/

func FuzzCanonicalDetails(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw []byte) {
		out, err := ledger.CanonicalDetails(raw)
		if err != nil {
			return
		}
		again, err := ledger.CanonicalDetails([]byte(out))
		if err != nil || again != out {
			t.Fatalf("not stable: %q -> %q -> %q, %v", raw, out, again, err)
		}
		if trimmed := strings.TrimSpace(string(raw)); trimmed == "" || trimmed == "null" {
			return
		}
		// Same meaning as the input.
		if !reflect.DeepEqual(decodeNumbers(t, raw), decodeNumbers(t, []byte(out))) {
			t.Fatalf("meaning changed: %q -> %q", raw, out)
		}
	})
}

func decodeNumbers(t *testing.T, b []byte) any {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("accepted %q, which encoding/json rejects: %v", b, err)
	}
	return v
}

func FuzzParseCheckpoint(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := ledger.ParseCheckpoint(body)
		if err != nil {
			return
		}
		if got := c.Marshal(); !bytes.Equal(got, body) {
			t.Fatalf("Marshal(ParseCheckpoint(%q)) = %q", body, got)
		}
		if len(c.Root) != 32 || c.Origin == "" {
			t.Fatalf("accepted %+v", c)
		}
	})
}

func FuzzVerifyExport(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := ledger.VerifyExport(bytes.NewReader(data), testVKey)
		if err != nil {
			return
		}
		if rep.Valid != (len(rep.Problems) == 0) {
			t.Fatalf("Valid = %v, problems %q", rep.Valid, rep.Problems)
		}
		if rep.Valid && (rep.Entries != rep.Checkpoint.Size || rep.FirstBad != 0) {
			t.Fatalf("valid report %+v", rep)
		}
	})
}

// seedInputs are the seed corpora, by fuzz target.
func seedInputs(t *testing.T) map[string]map[string][]byte {
	es := genChain(t, "acme", 5)
	exp := export(t, "acme", signedCheckpoint(t, "acme", es, testSKey), es)
	ls := lines(exp)
	root := base64.StdEncoding.EncodeToString(testCheckpoint().Root)
	return map[string]map[string][]byte{
		"FuzzCanonicalDetails": {
			"nested":   []byte(`{"b":{"y":[1,{"z":null,"a":true}],"x":"s"},"a":1}`),
			"numbers":  []byte(`{"a":1.50,"b":-0,"c":1E+2,"d":123456789012345678901234567890}`),
			"unicode":  []byte(`{"\u00e9":"\ud83d\ude00 <&> \u2028","raw":"Zoë"}`),
			"spaces":   []byte(" {\n\t\"k\" : [ ] , \"j\" : { } }\r\n"),
			"null":     []byte(`null`),
			"dup":      []byte(`{"a":1,"a":2}`),
			"array":    []byte(`[{"a":1}]`),
			"deep":     []byte(strings.Repeat(`{"a":`, 33) + "0" + strings.Repeat("}", 33)),
			"badutf8":  []byte("{\"a\":\"\xff\xfe\"}"),
			"trailing": []byte(`{"a":1}{"b":2}`),
		},
		"FuzzParseCheckpoint": {
			"valid":      []byte("echopilot.audit/acme\n5\n" + root + "\n"),
			"extensions": []byte("echopilot.audit/acme\n5\n" + root + "\next one\next two\n"),
			"zero":       []byte("o\n0\n" + root + "\n"),
			"leadzero":   []byte("o\n05\n" + root + "\n"),
			"maxsize":    []byte("o\n18446744073709551615\n" + root + "\n"),
			"shortroot":  []byte("o\n1\nAAAA\n"),
			"nonewline":  []byte("o\n1\n" + root),
			"emptyext":   []byte("o\n1\n" + root + "\n\n"),
		},
		"FuzzVerifyExport": {
			"valid":      exp,
			"truncated":  bytes.Join(ls[:4], nil),
			"swapped":    bytes.Join([][]byte{ls[0], ls[2], ls[1], ls[3], ls[4], ls[5]}, nil),
			"edited":     bytes.Replace(exp, []byte("documents/2"), []byte("documents/9"), 1),
			"cut":        exp[:len(exp)/2],
			"onlyheader": ls[0],
			"crlf":       bytes.ReplaceAll(exp, []byte("\n"), []byte("\r\n")),
			"garbage":    []byte("{\"type\":\"checkpoint\",\"tenant_id\":\"acme\",\"note\":\"x\"}\n{\"type\":\"entry\",\"seq\":1}\n"),
		},
	}
}

func TestSeedCorpus(t *testing.T) {
	for target, seeds := range seedInputs(t) {
		dir := filepath.Join("testdata", "fuzz", target)
		if len(seeds) < 5 {
			t.Errorf("%s: %d seeds", target, len(seeds))
		}
		for name, in := range seeds {
			path := filepath.Join(dir, "seed-"+name)
			want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", in)
			if *update {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != want {
				t.Errorf("%s is missing or stale (%v): run go test -run TestSeedCorpus -args -update", path, err)
			}
		}
	}
}
