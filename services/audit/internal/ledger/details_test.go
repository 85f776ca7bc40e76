package ledger_test

import (
	"strings"
	"testing"

	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

func TestCanonicalDetails(t *testing.T) {
	ok := []struct{ name, in, want string }{
		{"empty", ``, `{}`},
		{"blank", " \n\t", `{}`},
		{"null", ` null `, `{}`},
		{"empty object", `{ }`, `{}`},
		{"key order", `{"b":1,"a":2,"C":3,"aa":4}`, `{"C":3,"a":2,"aa":4,"b":1}`},
		{"whitespace", " {\n\t\"a\" : [ 1 , 2 ] ,\r\n \"b\" : { } }\n", `{"a":[1,2],"b":{}}`},
		{"nested sorted", `{"z":{"y":{"b":1,"a":[{"d":1,"c":2}]}}}`, `{"z":{"y":{"a":[{"c":2,"d":1}],"b":1}}}`},
		{"numbers as written", `{"a":1.50,"b":-0,"c":1E+2,"d":12345678901234567890123,"e":0.1e-7}`,
			`{"a":1.50,"b":-0,"c":1E+2,"d":12345678901234567890123,"e":0.1e-7}`},
		{"literals", `{"t":true,"f":false,"n":null}`, `{"f":false,"n":null,"t":true}`},
		{"unicode escapes decoded", `{"s":"\u00e9\u0041\ud83d\ude00"}`, `{"s":"éA😀"}`},
		{"raw unicode kept", `{"é":"😀"}`, `{"é":"😀"}`},
		{"escapes re-encoded", `{"s":"a\/b\tc\u0001\"\\"}`, `{"s":"a/b\tc\u0001\"\\"}`},
		{"html escaped as encoding/json does", `{"s":"<a&b>"}`, `{"s":"\u003ca\u0026b\u003e"}`},
		{"line separators", "{\"s\":\"\u2028\"}", `{"s":"\u2028"}`},
		{"sort by bytes", `{"é":1,"z":2,"Z":3}`, `{"Z":3,"z":2,"é":1}`},
		{"keys escaped", `{"a\"b":1}`, `{"a\"b":1}`},
	}
	for _, c := range ok {
		got, err := ledger.CanonicalDetails([]byte(c.in))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got != c.want {
			t.Errorf("%s: got %s, want %s", c.name, got, c.want)
		}
		if again, err := ledger.CanonicalDetails([]byte(got)); err != nil || again != got {
			t.Errorf("%s: not stable: %q, %v", c.name, again, err)
		}
	}

	deep := func(n int) string { return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) }
	deepArr := func(n int) string { return `{"a":` + strings.Repeat("[", n-1) + strings.Repeat("]", n-1) + "}" }
	if _, err := ledger.CanonicalDetails([]byte(deep(ledger.MaxDetailsDepth))); err != nil {
		t.Errorf("depth %d: %v", ledger.MaxDetailsDepth, err)
	}
	if _, err := ledger.CanonicalDetails([]byte(deepArr(ledger.MaxDetailsDepth))); err != nil {
		t.Errorf("array depth %d: %v", ledger.MaxDetailsDepth, err)
	}
	big := `{"a":"` + strings.Repeat("x", ledger.MaxDetailsBytes-8) + `"}`
	if _, err := ledger.CanonicalDetails([]byte(big)); err != nil {
		t.Errorf("%d bytes: %v", len(big), err)
	}
	bad := []struct{ name, in string }{
		{"array", `[1,2]`},
		{"string", `"x"`},
		{"number", `1`},
		{"true", `true`},
		{"truncated", `{"a":1`},
		{"trailing data", `{"a":1} {}`},
		{"trailing garbage", `{"a":1}x`},
		{"two nulls", `null null`},
		{"bad number", `{"a":01}`},
		{"bad literal", `{"a":nul}`},
		{"single quotes", `{'a':1}`},
		{"non-string key", `{1:2}`},
		{"trailing comma", `{"a":1,}`},
		{"duplicate key", `{"a":1,"b":2,"a":3}`},
		{"duplicate nested key", `{"x":{"a":1,"a":1}}`},
		{"too deep", deep(ledger.MaxDetailsDepth + 1)},
		{"too deep arrays", deepArr(ledger.MaxDetailsDepth + 1)},
		{"too big", `{"a":"` + strings.Repeat("x", ledger.MaxDetailsBytes) + `"}`},
		// Under the input limit, over it once "<" becomes \u003c.
		{"too big escaped", `{"a":"` + strings.Repeat("<", ledger.MaxDetailsBytes/2) + `"}`},
	}
	for _, c := range bad {
		if got, err := ledger.CanonicalDetails([]byte(c.in)); err == nil {
			t.Errorf("%s: accepted as %.60q", c.name, got)
		}
	}
}
