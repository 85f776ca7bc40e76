// Package restjson writes protobuf messages as the seed's JSON: proto field
// names (snake_case), every field present with its zero value, and 64-bit
// integers as JSON numbers, enums as the seed's lower-case strings (see
// EnumJSONName). protojson prints int64 as strings (a JavaScript precision
// guard) and enums by their proto names; the REST contract inherited from
// the seed shows numbers and seed strings, so this encoder walks the message
// with protoreflect instead. Well-known types (Timestamp, Duration, Struct,
// wrappers…) keep their protojson form.
//
// The envelope's "ok" is the encoder's, not the messages': MarshalOK opens
// a successful response with "ok":true (the seed's first key), so no gRPC
// message carries a REST-only field.
package restjson

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// okField is the envelope's key; a successful response has it first.
const okField = "ok"

// Marshal encodes m as it is, with no envelope: an error body, which
// carries its own "ok":false, or a part of a response.
func Marshal(m proto.Message) ([]byte, error) {
	var buf bytes.Buffer
	if err := writeMessage(&buf, m.ProtoReflect(), false); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// MarshalOK encodes m as a successful response: {"ok":true, then m's
// fields}. Only the top-level object gets "ok"; a message with a field of
// that name is refused rather than written with the key twice.
func MarshalOK(m proto.Message) ([]byte, error) {
	md := m.ProtoReflect().Descriptor()
	if isWellKnown(md) {
		return nil, fmt.Errorf("marshal %s: a well-known type is no response object", md.FullName())
	}
	if md.Fields().ByName(okField) != nil {
		return nil, fmt.Errorf("marshal %s: its own %q field would clash with the envelope's", md.FullName(), okField)
	}
	var buf bytes.Buffer
	if err := writeMessage(&buf, m.ProtoReflect(), true); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func isWellKnown(md protoreflect.MessageDescriptor) bool {
	return md.ParentFile().Package() == "google.protobuf"
}

// writeMessage writes m as an object, opened with "ok":true when envelope
// is set.
func writeMessage(buf *bytes.Buffer, m protoreflect.Message, envelope bool) error {
	md := m.Descriptor()
	if isWellKnown(md) {
		if !m.IsValid() {
			buf.WriteString("null")
			return nil
		}
		b, err := protojson.Marshal(m.Interface())
		if err != nil {
			return fmt.Errorf("marshal %s: %w", md.FullName(), err)
		}
		buf.Write(b)
		return nil
	}
	buf.WriteByte('{')
	first := true
	if envelope {
		buf.WriteString(`"` + okField + `":true`)
		first = false
	}
	fields := md.Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() && !m.Has(fd) {
			continue // only the chosen member of a oneof is shown
		}
		if !first {
			buf.WriteByte(',')
		}
		first = false
		writeString(buf, string(fd.Name()))
		buf.WriteByte(':')
		if err := writeField(buf, fd, m.Get(fd)); err != nil {
			return err
		}
	}
	buf.WriteByte('}')
	return nil
}

func writeField(buf *bytes.Buffer, fd protoreflect.FieldDescriptor, v protoreflect.Value) error {
	switch {
	case fd.IsList():
		l := v.List()
		buf.WriteByte('[')
		for i := 0; i < l.Len(); i++ {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeSingular(buf, fd, l.Get(i)); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
		return nil
	case fd.IsMap():
		mp := v.Map()
		keys := make([]protoreflect.MapKey, 0, mp.Len())
		mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
			keys = append(keys, k)
			return true
		})
		// Sorted keys keep responses (and golden files) stable.
		slices.SortFunc(keys, func(a, b protoreflect.MapKey) int {
			return cmpKey(a.String(), b.String())
		})
		buf.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			writeString(buf, k.String())
			buf.WriteByte(':')
			if err := writeSingular(buf, fd.MapValue(), mp.Get(k)); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
		return nil
	default:
		return writeSingular(buf, fd, v)
	}
}

func cmpKey(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func writeSingular(buf *bytes.Buffer, fd protoreflect.FieldDescriptor, v protoreflect.Value) error {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		buf.WriteString(strconv.FormatBool(v.Bool()))
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		buf.WriteString(strconv.FormatInt(v.Int(), 10))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		buf.WriteString(strconv.FormatUint(v.Uint(), 10))
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		f := v.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			// JSON has no NaN; a handler that produced one has a bug.
			return fmt.Errorf("field %s is %v: not representable in JSON", fd.FullName(), f)
		}
		b, _ := json.Marshal(f)
		buf.Write(b)
	case protoreflect.StringKind:
		writeString(buf, v.String())
	case protoreflect.BytesKind:
		writeString(buf, base64.StdEncoding.EncodeToString(v.Bytes()))
	case protoreflect.EnumKind:
		if name, ok := EnumJSONName(fd.Enum(), v.Enum()); ok {
			writeString(buf, name)
		} else {
			buf.WriteString(strconv.FormatInt(int64(v.Enum()), 10))
		}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return writeMessage(buf, v.Message(), false)
	default:
		return fmt.Errorf("field %s: unsupported kind %v", fd.FullName(), fd.Kind())
	}
	return nil
}

func writeString(buf *bytes.Buffer, s string) {
	if plainJSON(s) { // field names and most values: nothing to escape
		buf.WriteByte('"')
		buf.WriteString(s)
		buf.WriteByte('"')
		return
	}
	b, _ := json.Marshal(s) // never fails for a string; invalid UTF-8 becomes U+FFFD
	buf.Write(b)
}

// plainJSON reports whether encoding/json writes s unchanged between
// quotes: printable ASCII other than the characters it escapes.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}
