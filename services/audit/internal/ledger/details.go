package ledger

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Limits on an entry's details.
const (
	MaxDetailsBytes = 64 << 10 // input and canonical output
	MaxDetailsDepth = 32       // the details object itself is depth 1
)

// CanonicalDetails turns a JSON object into its canonical text, so that the
// same details always hash the same: object keys sorted (by bytes), no
// insignificant whitespace, numbers exactly as written, strings re-escaped
// as encoding/json's Marshal does (HTML-safe \u003c style escapes, invalid
// UTF-8 as U+FFFD). "", whitespace or "null" mean no details: "{}".
// Anything but an object, a duplicate key, trailing data, more than
// MaxDetailsDepth levels of nesting or more than MaxDetailsBytes (in or out)
// is an error. CanonicalDetails(out) == out for every output.
func CanonicalDetails(raw []byte) (string, error) {
	if len(raw) > MaxDetailsBytes {
		return "", fmt.Errorf("details: %d bytes, limit %d", len(raw), MaxDetailsBytes)
	}
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || string(trimmed) == "null" {
		return "{}", nil
	}
	if trimmed[0] != '{' {
		return "", errors.New("details: not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var out strings.Builder
	if err := canonValue(dec, &out, 0); err != nil {
		return "", fmt.Errorf("details: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", errors.New("details: data after the object")
	}
	if out.Len() > MaxDetailsBytes {
		// Escaping can grow the text; cap the output too so that the output
		// is always accepted again.
		return "", fmt.Errorf("details: canonical form is %d bytes, limit %d", out.Len(), MaxDetailsBytes)
	}
	return out.String(), nil
}

// canonValue reads one JSON value from dec and writes its canonical form.
// Objects are buffered member by member to sort them; input size is
// bounded, so that is bounded too.
func canonValue(dec *json.Decoder, out *strings.Builder, depth int) error {
	tok, err := dec.Token()
	if err != nil {
		return syntaxErr(err)
	}
	switch t := tok.(type) {
	case json.Delim:
		if depth++; depth > MaxDetailsDepth {
			return fmt.Errorf("nested deeper than %d", MaxDetailsDepth)
		}
		if t == '[' {
			out.WriteByte('[')
			for i := 0; dec.More(); i++ {
				if i > 0 {
					out.WriteByte(',')
				}
				if err := canonValue(dec, out, depth); err != nil {
					return err
				}
			}
			if _, err := dec.Token(); err != nil { // ']'
				return syntaxErr(err)
			}
			out.WriteByte(']')
			return nil
		}
		type member struct{ key, value string }
		var members []member
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return syntaxErr(err)
			}
			key := kt.(string) // the decoder only yields strings in key position
			var v strings.Builder
			if err := canonValue(dec, &v, depth); err != nil {
				return err
			}
			members = append(members, member{key, v.String()})
		}
		if _, err := dec.Token(); err != nil { // '}'
			return syntaxErr(err)
		}
		slices.SortFunc(members, func(a, b member) int { return strings.Compare(a.key, b.key) })
		out.WriteByte('{')
		for i, m := range members {
			if i > 0 {
				if m.key == members[i-1].key {
					// Which one counts would depend on the reader.
					return fmt.Errorf("duplicate key %q", m.key)
				}
				out.WriteByte(',')
			}
			writeJSONString(out, m.key)
			out.WriteByte(':')
			out.WriteString(m.value)
		}
		out.WriteByte('}')
		return nil
	case string:
		writeJSONString(out, t)
	case json.Number:
		out.WriteString(string(t))
	case bool:
		if t {
			out.WriteString("true")
		} else {
			out.WriteString("false")
		}
	case nil:
		out.WriteString("null")
	}
	return nil
}

func writeJSONString(out *strings.Builder, s string) {
	b, _ := json.Marshal(s) // cannot fail for a string
	out.Write(b)
}

func syntaxErr(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
