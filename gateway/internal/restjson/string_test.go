package restjson

import (
	"bytes"
	"encoding/json"
	"testing"
)

// writeString's shortcut for plain strings writes what encoding/json writes.
func TestWriteStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{
		"", "tenant_id", "RATE_LIMITED", "a b-c_d.e/f:g", "~", "\x7f", "quote\"", `back\slash`, "<html>", "a&b",
		"tab\t", "nul\x00", "é", "\u2028", "\xff\xfe", "emoji 😀",
	} {
		var buf bytes.Buffer
		writeString(&buf, s)
		want, _ := json.Marshal(s)
		if buf.String() != string(want) {
			t.Errorf("writeString(%q) = %s, encoding/json writes %s", s, buf.String(), want)
		}
	}
}
