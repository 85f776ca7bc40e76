package restjson

import (
	"bytes"
	"encoding/json"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
)

// FuzzNumberEnums feeds request bodies to the enum translation. It must not
// panic; it keeps valid JSON valid; and what decodes re-encodes to JSON that
// decodes to the same encoding (seed strings out, seed strings back in).
func FuzzNumberEnums(f *testing.F) {
	for _, seed := range []string{
		`{"type":"ai_task","priority":"high"}`,
		`{"entries":[{"event_type":"a","severity":"critical","details":{"severity":"x"}}]}`,
		`{"jobs":[{"priority":"low","status":"dead","usage":{"model":"m"}}]}`,
		`{"priority":"urgent"}`,
		`{"priority":1}`,
		`{"priority":null,"payload":{"a":[{"b":"c"}]}}`,
		`{"severity":"\u0068igh"}`,
	} {
		f.Add([]byte(seed))
	}
	msgs := []func() proto.Message{
		func() proto.Message { return &queuev1.EnqueueJobRequest{} },
		func() proto.Message { return &queuev1.ListJobsResponse{} },
		func() proto.Message { return &auditv1.AppendEntriesRequest{} },
		func() proto.Message { return &auditv1.GetChainResponse{} },
	}
	m := NewMarshaler()
	f.Fuzz(func(t *testing.T, body []byte) {
		// The decoder hands numberEnums one JSON value; whatever else it
		// gets (here: anything) it must survive.
		_, _ = numberEnums(body, msgs[0]().ProtoReflect().Descriptor())
		var raw json.RawMessage
		if json.NewDecoder(bytes.NewReader(body)).Decode(&raw) != nil {
			return
		}
		for _, newMsg := range msgs {
			msg := newMsg()
			out, err := numberEnums(raw, msg.ProtoReflect().Descriptor())
			if err != nil {
				continue // a non-string enum value: refused
			}
			if !json.Valid(out) {
				t.Fatalf("%s: rewritten to %s", raw, out)
			}
			if m.Unmarshal(body, msg) != nil {
				continue
			}
			if hasUnknownEnum(msg) {
				continue // unknownEnumNumber prints as a number, which bodies refuse
			}
			first, err := Marshal(msg)
			if err != nil {
				continue // NaN and the like: not representable
			}
			again := newMsg()
			if err := m.Unmarshal(first, again); err != nil {
				t.Fatalf("%s: Marshal wrote %s, which does not decode: %v", body, first, err)
			}
			if second, _ := Marshal(again); !bytes.Equal(first, second) {
				t.Fatalf("%s: %s decoded and encoded to %s", body, first, second)
			}
		}
	})
}

// hasUnknownEnum reports whether an enum field anywhere in m holds a
// number its enum does not define.
func hasUnknownEnum(m proto.Message) bool {
	var unknown func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool
	var inMessage func(m protoreflect.Message) bool
	unknown = func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.Kind() == protoreflect.EnumKind:
			return fd.Enum().Values().ByNumber(v.Enum()) == nil
		case fd.Message() != nil:
			return inMessage(v.Message())
		}
		return false
	}
	inMessage = func(m protoreflect.Message) bool {
		found := false
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			switch {
			case fd.IsList():
				for i := 0; i < v.List().Len() && !found; i++ {
					found = unknown(fd, v.List().Get(i))
				}
			case fd.IsMap():
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					found = unknown(fd.MapValue(), mv)
					return !found
				})
			default:
				found = unknown(fd, v)
			}
			return !found
		})
		return found
	}
	return inMessage(m.ProtoReflect())
}
