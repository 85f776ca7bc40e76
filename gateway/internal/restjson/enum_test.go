package restjson

import (
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
)

func jsonNames(ed protoreflect.EnumDescriptor) []string {
	var out []string
	for i := 0; i < ed.Values().Len(); i++ {
		name, _ := EnumJSONName(ed, ed.Values().Get(i).Number())
		out = append(out, name)
	}
	return out
}

// The rule yields exactly the seed's strings of the REST contract.
func TestEnumJSONNamesAreTheSeedStrings(t *testing.T) {
	for ed, want := range map[protoreflect.EnumDescriptor][]string{
		queuev1.Priority(0).Descriptor():  {"", "critical", "high", "normal", "low"},
		queuev1.JobStatus(0).Descriptor(): {"", "queued", "processing", "completed", "failed", "dead", "cancelled"},
		auditv1.Severity(0).Descriptor():  {"", "low", "medium", "high", "critical"},
	} {
		if got := jsonNames(ed); !slices.Equal(got, want) {
			t.Errorf("%s: %q, want %q", ed.FullName(), got, want)
		}
		for i, name := range want {
			if n := EnumNumber(ed, name); n != ed.Values().Get(i).Number() {
				t.Errorf("%s: %q decodes to %d", ed.FullName(), name, n)
			}
		}
	}
}

// Every enum of the API: JSON names are distinct and carry no prefix left
// over (a value named against buf's prefix rule would), and none defines
// the number unknown strings decode to.
func TestEveryAPIEnumFollowsTheRule(t *testing.T) {
	seen := 0
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		if !strings.HasPrefix(string(fd.Package()), "echopilot.") {
			return true
		}
		for i := 0; i < fd.Enums().Len(); i++ {
			ed := fd.Enums().Get(i)
			seen++
			names := jsonNames(ed)
			if len(names) == 0 || names[0] != "" {
				t.Errorf("%s: zero value's JSON name is not \"\": %q", ed.FullName(), names)
			}
			prefix := strings.ToLower(upperSnake(string(ed.Name()))) + "_"
			for _, n := range names {
				if strings.HasPrefix(n, prefix) || strings.ToLower(n) != n {
					t.Errorf("%s: JSON name %q does not follow the rule", ed.FullName(), n)
				}
			}
			if len(slices.Compact(slices.Sorted(slices.Values(names)))) != len(names) {
				t.Errorf("%s: JSON names collide: %q", ed.FullName(), names)
			}
			if ed.Values().ByNumber(unknownEnumNumber) != nil {
				t.Errorf("%s defines %d, the number of unknown strings", ed.FullName(), unknownEnumNumber)
			}
		}
		return true
	})
	if seen < 3 {
		t.Fatalf("only %d enums registered", seen)
	}
}

func TestUpperSnake(t *testing.T) {
	for in, want := range map[string]string{
		"Priority": "PRIORITY", "JobStatus": "JOB_STATUS", "HTTPCode": "HTTP_CODE", "V2Thing": "V2_THING", "Outcome": "OUTCOME",
	} {
		if got := upperSnake(in); got != want {
			t.Errorf("upperSnake(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEnumsPrintAsSeedStrings(t *testing.T) {
	for _, c := range []struct {
		msg  *queuev1.Job
		want string
	}{
		{&queuev1.Job{Priority: queuev1.Priority_PRIORITY_HIGH, Status: queuev1.JobStatus_JOB_STATUS_PROCESSING}, `"priority":"high","status":"processing",`},
		{&queuev1.Job{}, `"priority":"","status":"",`},
		// A number this build does not know (a newer backend's) stays a number.
		{&queuev1.Job{Priority: 42}, `"priority":42,`},
	} {
		got, err := Marshal(c.msg)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(got), c.want) {
			t.Errorf("got %s\nwant it to contain %s", got, c.want)
		}
	}
	got, err := Marshal(&auditv1.Entry{Severity: auditv1.Severity_SEVERITY_CRITICAL})
	if err != nil || !strings.Contains(string(got), `"severity":"critical"`) {
		t.Errorf("entry: %s %v", got, err)
	}
}
