package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const before = `{"openapi":"3.0.3","info":{"title":"t","version":"v1"},"paths":{
"/a":{"get":{"operationId":"A","parameters":[{"name":"q","in":"query","schema":{"type":"string"}}],
 "responses":{"200":{"description":"ok","content":{"application/json":{"schema":{"type":"object","properties":{"n":{"type":"integer"}}}}}}}}},
"/b":{"get":{"operationId":"B","responses":{"200":{"description":"ok"}}}}}}`

func write(t *testing.T, name, doc string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCompare(t *testing.T) {
	base := write(t, "base.json", before)
	for _, c := range []struct {
		name, revision string
		breaking       bool
		mentions       string
	}{
		{"unchanged", before, false, ""},
		{"an operation added", strings.Replace(before, `"/b":`, `"/c":{"get":{"operationId":"C","responses":{"200":{"description":"ok"}}}},"/b":`, 1), false, ""},
		{"a path removed", strings.Replace(before, `,
"/b":{"get":{"operationId":"B","responses":{"200":{"description":"ok"}}}}`, "", 1), true, "/b"},
		{"a parameter made required", strings.Replace(before, `"in":"query",`, `"in":"query","required":true,`, 1), true, "q"},
		{"a response field's type changed", strings.Replace(before, `"n":{"type":"integer"}`, `"n":{"type":"string"}`, 1), true, "n"},
	} {
		report, breaking, err := compare(base, write(t, "rev.json", c.revision))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if breaking != c.breaking || !strings.Contains(report, c.mentions) {
			t.Errorf("%s: breaking %v, report %q", c.name, breaking, report)
		}
	}
}
