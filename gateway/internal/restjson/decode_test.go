package restjson

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
)

func decode(t *testing.T, body string, into proto.Message) error {
	t.Helper()
	return NewMarshaler().NewDecoder(strings.NewReader(body)).Decode(into)
}

func mustStruct(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBodyEnumsTakeSeedStrings(t *testing.T) {
	unknown := queuev1.Priority(unknownEnumNumber)
	for body, want := range map[string]*queuev1.EnqueueJobRequest{
		`{"type":"ai_task","priority":"high"}`:       {Type: "ai_task", Priority: queuev1.Priority_PRIORITY_HIGH},
		`{"priority" :	"critical" , "type":"x"}`:     {Type: "x", Priority: queuev1.Priority_PRIORITY_CRITICAL},
		`{"priority":"\u006cow"}`:                    {Priority: queuev1.Priority_PRIORITY_LOW}, // escapes are decoded first
		`{"priority":""}`:                            {},                                        // "" is the default, as before
		`{"priority":null}`:                          {},
		`{"type":"ai_task"}`:                         {Type: "ai_task"},
		`{"priority":"urgent"}`:                      {Priority: unknown}, // the service refuses it with PRIORITY_INVALID
		`{"priority":"PRIORITY_HIGH"}`:               {Priority: unknown}, // proto names were never the contract
		`{"priority":"High"}`:                        {Priority: unknown},
		`{"payload":{"priority":"high"},"type":"t"}`: {Type: "t", Payload: mustStruct(t, map[string]any{"priority": "high"})},
	} {
		got := &queuev1.EnqueueJobRequest{}
		if err := decode(t, body, got); err != nil {
			t.Errorf("%s: %v", body, err)
			continue
		}
		if !proto.Equal(want, got) {
			t.Errorf("%s: got %v, want %v", body, got, want)
		}
	}
}

// Enums inside lists and nested messages are found too.
func TestNestedEnums(t *testing.T) {
	got := &auditv1.AppendEntriesRequest{}
	body := `{"entries":[{"event_type":"a","severity":"high"},{"event_type":"b"},{"event_type":"c","severity":"bogus"}]}`
	if err := decode(t, body, got); err != nil {
		t.Fatal(err)
	}
	want := []auditv1.Severity{auditv1.Severity_SEVERITY_HIGH, auditv1.Severity_SEVERITY_UNSPECIFIED, auditv1.Severity(unknownEnumNumber)}
	for i, e := range got.GetEntries() {
		if e.GetSeverity() != want[i] || e.GetEventType() == "" {
			t.Errorf("entry %d: %v", i, e)
		}
	}
	job := &queuev1.ListJobsResponse{}
	if err := decode(t, `{"jobs":[{"job_id":"j","priority":"low","status":"dead"}]}`, job); err != nil {
		t.Fatal(err)
	}
	if j := job.GetJobs()[0]; j.GetPriority() != queuev1.Priority_PRIORITY_LOW || j.GetStatus() != queuev1.JobStatus_JOB_STATUS_DEAD {
		t.Errorf("job %v", j)
	}
}

// Bodies that were refused before are refused still.
func TestBadBodiesStillRefused(t *testing.T) {
	for _, body := range []string{
		`{"priority":2}`,                       // a number: protojson would take it; the contract never did
		`{"priority":true}`,                    // the wrong type
		`{"priority":["high"]}`,                // the wrong shape
		"{\"priority\":\"hi\xffgh\"}",          // invalid UTF-8
		`{"priority":"high","priority":"low"}`, // a duplicate field
		`{"priority":"high","bogus":1}`,        // an unknown field
		`{"priority":"high"`,                   // truncated
	} {
		if err := decode(t, body, &queuev1.EnqueueJobRequest{}); err == nil {
			t.Errorf("%q decoded", body)
		}
	}
	err := decode(t, `{"priority":2}`, &queuev1.EnqueueJobRequest{})
	if !errors.Is(err, errNotString) || !strings.Contains(err.Error(), "echopilot.queue.v1.EnqueueJobRequest.priority") {
		t.Errorf("number: %v", err)
	}
}

// Only the enum strings change; every other byte reaches protojson as sent.
func TestNumberEnumsLeavesTheRestAlone(t *testing.T) {
	md := (&queuev1.EnqueueJobRequest{}).ProtoReflect().Descriptor()
	in := `{ "type" : "a\"b", "priority" : "normal", "payload": {"priority": "high", "x": [1e400, "\u00e9"]} }`
	want := `{ "type" : "a\"b", "priority" : 3, "payload": {"priority": "high", "x": [1e400, "\u00e9"]} }`
	got, err := numberEnums([]byte(in), md)
	if err != nil || string(got) != want {
		t.Errorf("got %s (%v)\nwant %s", got, err, want)
	}
	same := `{"type":"x"}`
	if got, err := numberEnums([]byte(same), md); err != nil || string(got) != same {
		t.Errorf("no enum: %s %v", got, err)
	}
}

// Bodies of messages without enums are not walked at all.
func TestReachesEnum(t *testing.T) {
	for m, want := range map[proto.Message]bool{
		&auditv1.AppendEntriesRequest{}:   true,
		&queuev1.ListJobsResponse{}:       true,
		&queuev1.CompleteJobsRequest{}:    false,
		&queuev1.GetQueueStatusResponse{}: false, // by_priority is keyed by string
		&tenancyv1.CreateAPIKeyRequest{}:  false,
		&tenancyv1.CreateTenantRequest{}:  true, // the tenant's state (output only)
	} {
		if got := reachesEnum(m.ProtoReflect().Descriptor()); got != want {
			t.Errorf("%T: %v, want %v", m, got, want)
		}
	}
	body := []byte(`{"tenant_id":"acme","name":"A"}`)
	if got, err := numberEnums(body, (&tenancyv1.CreateAPIKeyRequest{}).ProtoReflect().Descriptor()); err != nil || &got[0] != &body[0] {
		t.Errorf("walked a body without enums: %s %v", got, err)
	}
}

// Marshal's output decodes back to the same message.
func TestEnumsRoundTrip(t *testing.T) {
	// Usage is set: Marshal shows an absent message as its zero value.
	in := &queuev1.Job{JobId: "j", Priority: queuev1.Priority_PRIORITY_CRITICAL, Status: queuev1.JobStatus_JOB_STATUS_CANCELLED,
		Usage: &queuev1.Usage{}}
	b, err := Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	out := &queuev1.Job{}
	if err := NewMarshaler().Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(in, out) {
		t.Errorf("%s decoded to %v", b, out)
	}
}

// The translation's cost next to protojson's own decoding of the same body.
func BenchmarkDecodeAppendEntries(b *testing.B) {
	var body strings.Builder
	body.WriteString(`{"entries":[`)
	for i := range 20 {
		if i > 0 {
			body.WriteByte(',')
		}
		body.WriteString(`{"event_type":"document.update","user":"u@acme.test","action":"update","resource":"documents/1",` +
			`"severity":"high","details":{"ip":"127.0.0.1","fields":["a","b","c"],"n":12345,"nested":{"k":"v"}}}`)
	}
	body.WriteString(`]}`)
	data := []byte(body.String())
	md := (&auditv1.AppendEntriesRequest{}).ProtoReflect().Descriptor()
	b.Run("numberEnums", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := numberEnums(data, md); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		m := NewMarshaler()
		for b.Loop() {
			if err := m.Unmarshal(data, &auditv1.AppendEntriesRequest{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
