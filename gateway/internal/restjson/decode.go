package restjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"unicode/utf8"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// errNotString is a non-string JSON value at an enum field. protojson would
// take a number there as the enum's number; the REST contract has only ever
// taken strings, so a number stays a bad request.
var errNotString = errors.New("want a string")

// numberEnums returns data, a JSON request body for a message of md, with
// every string at an enum field replaced by the number of the value it is
// the JSON name of (EnumNumber), so that protojson, which knows only proto
// names, decodes the seed strings. Every other byte is left to protojson as
// it was, and data that is not JSON comes back unchanged, so a bad body
// fails as it did before enums.
func numberEnums(data []byte, md protoreflect.MessageDescriptor) ([]byte, error) {
	if !reachesEnum(md) {
		return data, nil // most requests: nothing to look for
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // numbers are only skipped; no float conversion to fail
	w := &enumWalker{src: data, dec: dec}
	err := w.message(md)
	var fe *fieldError
	switch {
	case errors.As(err, &fe):
		return nil, err
	case err != nil || w.out == nil:
		return data, nil // a syntax error (protojson reports it), or nothing to replace
	}
	return append(w.out, data[w.done:]...), nil
}

// fieldError is a well-formed body with a value the contract refuses.
type fieldError struct {
	field protoreflect.FullName
	err   error
}

func (e *fieldError) Error() string { return fmt.Sprintf("field %s: %v", e.field, e.err) }
func (e *fieldError) Unwrap() error { return e.err }

// enumWalker reads one JSON value token by token along a message
// descriptor. out is src[:done] with the replacements made so far (nil
// while there is none).
type enumWalker struct {
	src  []byte
	dec  *json.Decoder
	out  []byte
	done int
}

// token reads the next token and returns with it the offset it starts
// after: the end of the previous token (separators and spaces between).
func (w *enumWalker) token() (json.Token, int, error) {
	after := int(w.dec.InputOffset())
	tok, err := w.dec.Token()
	return tok, after, err
}

func (w *enumWalker) message(md protoreflect.MessageDescriptor) error {
	tok, _, err := w.token()
	if err != nil {
		return err
	}
	if tok != json.Delim('{') {
		return w.skipRest(tok) // null, or a type protojson refuses
	}
	fields := md.Fields()
	for w.dec.More() {
		key, _, err := w.token()
		if err != nil {
			return err
		}
		// protojson takes the JSON name or the proto name.
		name, _ := key.(string)
		fd := fields.ByJSONName(name)
		if fd == nil {
			fd = fields.ByTextName(name)
		}
		switch {
		case fd == nil || !fieldReachesEnum(fd):
			err = w.skip()
		case fd.IsList():
			err = w.list(fd)
		case fd.IsMap():
			err = w.mapValues(fd.MapValue())
		default:
			err = w.singular(fd)
		}
		if err != nil {
			return err
		}
	}
	_, _, err = w.token() // '}'
	return err
}

func (w *enumWalker) list(fd protoreflect.FieldDescriptor) error {
	tok, _, err := w.token()
	if err != nil {
		return err
	}
	if tok != json.Delim('[') {
		return w.skipRest(tok)
	}
	for w.dec.More() {
		if err := w.singular(fd); err != nil {
			return err
		}
	}
	_, _, err = w.token() // ']'
	return err
}

func (w *enumWalker) mapValues(fd protoreflect.FieldDescriptor) error {
	tok, _, err := w.token()
	if err != nil {
		return err
	}
	if tok != json.Delim('{') {
		return w.skipRest(tok)
	}
	for w.dec.More() {
		if _, _, err := w.token(); err != nil { // the key
			return err
		}
		if err := w.singular(fd); err != nil {
			return err
		}
	}
	_, _, err = w.token() // '}'
	return err
}

// singular walks one value of fd (an element, for a list or map field).
func (w *enumWalker) singular(fd protoreflect.FieldDescriptor) error {
	switch {
	case isAPIEnum(fd):
		return w.enum(fd)
	case fd.Message() != nil && !isWellKnown(fd.Message()):
		return w.message(fd.Message())
	}
	return w.skip() // a scalar, or a well-known type (Struct holds free JSON)
}

func (w *enumWalker) enum(fd protoreflect.FieldDescriptor) error {
	tok, after, err := w.token()
	if err != nil {
		return err
	}
	switch s := tok.(type) {
	case nil:
		return nil // null: unset, as for any field
	case json.Delim:
		return w.skipRest(tok) // an object or array: protojson refuses it
	case string:
		end := int(w.dec.InputOffset())
		start := after + bytes.IndexByte(w.src[after:end], '"')
		if !utf8.Valid(w.src[start:end]) {
			return nil // protojson refuses invalid UTF-8 as it always did
		}
		w.out = append(w.out, w.src[w.done:start]...)
		w.out = strconv.AppendInt(w.out, int64(EnumNumber(fd.Enum(), s)), 10)
		w.done = end
		return nil
	}
	return &fieldError{field: fd.FullName(), err: errNotString}
}

// skip skips a value no enum is in. Decode reads it in one scan, which is
// much cheaper than token by token for a large Struct.
func (w *enumWalker) skip() error {
	var raw json.RawMessage
	return w.dec.Decode(&raw)
}

// skipRest skips the rest of the value that tok began.
func (w *enumWalker) skipRest(tok json.Token) error {
	depth := 0
	for {
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
		var err error
		if tok, _, err = w.token(); err != nil {
			return err
		}
	}
}

var enumReach sync.Map // protoreflect.FullName → bool

// reachesEnum reports whether a message of md can hold an enum field of
// this API, at any depth (well-known types hold none).
func reachesEnum(md protoreflect.MessageDescriptor) bool {
	if r, ok := enumReach.Load(md.FullName()); ok {
		return r.(bool)
	}
	r := reaches(md, map[protoreflect.FullName]bool{})
	enumReach.Store(md.FullName(), r)
	return r
}

// fieldReachesEnum reports whether fd's values can hold an enum field.
func fieldReachesEnum(fd protoreflect.FieldDescriptor) bool {
	if fd.IsMap() {
		fd = fd.MapValue()
	}
	if fd.Kind() == protoreflect.EnumKind || fd.Message() == nil {
		return isAPIEnum(fd)
	}
	return !isWellKnown(fd.Message()) && reachesEnum(fd.Message())
}

// reaches is reachesEnum's search; a message seen before adds nothing
// (what it reaches is found where it was first seen).
func reaches(md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]bool) bool {
	if seen[md.FullName()] || isWellKnown(md) {
		return false
	}
	seen[md.FullName()] = true
	for i := 0; i < md.Fields().Len(); i++ {
		fd := md.Fields().Get(i)
		if fd.IsMap() {
			fd = fd.MapValue()
		}
		if isAPIEnum(fd) || fd.Message() != nil && reaches(fd.Message(), seen) {
			return true
		}
	}
	return false
}

// isAPIEnum reports whether fd is an enum the REST names apply to
// (google.protobuf.NullValue is protojson's own).
func isAPIEnum(fd protoreflect.FieldDescriptor) bool {
	return fd.Kind() == protoreflect.EnumKind && fd.Enum().ParentFile().Package() != "google.protobuf"
}
