package lifecycle

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tenantdatav1 "github.com/echopilot/echopilot/gen/go/echopilot/tenantdata/v1"
	"github.com/echopilot/echopilot/services/queue/worker"
	"github.com/echopilot/echopilot/services/tenancy/internal/domain"
)

// A SHA-256 continued from its marshalled state ends where one run over
// the whole input does: what a resumed export file relies on.
func TestHashResumes(t *testing.T) {
	h, err := restoreHash(nil)
	if err != nil {
		t.Fatal(err)
	}
	h.Write([]byte("first line\n"))
	state, err := marshalHash(h)
	if err != nil {
		t.Fatal(err)
	}
	again, err := restoreHash(state)
	if err != nil {
		t.Fatal(err)
	}
	again.Write([]byte("second line\n"))
	want := sha256.Sum256([]byte("first line\nsecond line\n"))
	if got := hex.EncodeToString(again.Sum(nil)); got != hex.EncodeToString(want[:]) {
		t.Fatalf("resumed %s, whole %x", got, want)
	}
	if _, err := restoreHash([]byte("garbage")); err == nil {
		t.Fatal("a garbage state restored")
	}
}

func TestSplit(t *testing.T) {
	b := bytes.Repeat([]byte("a"), 2*domain.MaxChunk+3)
	parts := split(b)
	if len(parts) != 3 || len(parts[0]) != domain.MaxChunk || len(parts[2]) != 3 || !bytes.Equal(bytes.Join(parts, nil), b) {
		t.Fatalf("split into %d parts", len(parts))
	}
	if split(nil) != nil {
		t.Fatal("split(nil) is not empty")
	}
}

func TestValidKind(t *testing.T) {
	for kind, want := range map[string]bool{"jobs": true, "audit_entries2": true, "": false, "../x": false, "a/b": false, "Jobs": false} {
		if validKind(kind) != want {
			t.Errorf("validKind(%q) = %v", kind, !want)
		}
	}
}

func TestKindOf(t *testing.T) {
	for name, want := range map[string]string{"queue/jobs.jsonl": "jobs", "queue/x.csv": "", "finops/jobs.jsonl": ""} {
		got, ok := kindOf("queue", name)
		if got != want || ok != (want != "") {
			t.Errorf("kindOf(queue, %s) = %q, %v", name, got, ok)
		}
	}
}

// Each call's kinds replace the last; `changed` adds up over the calls.
func TestMergeSumsChanged(t *testing.T) {
	se := &domain.ServiceErasure{Service: Queue}
	merge(se, &tenantdatav1.EraseTenantDataResponse{Kinds: []*tenantdatav1.KindProgress{
		{Kind: "jobs", Rule: "delete", Changed: 1000, Remaining: 200},
		{Kind: "job_counts", Rule: "delete", Changed: 1},
	}})
	merge(se, &tenantdatav1.EraseTenantDataResponse{Done: true, Kinds: []*tenantdatav1.KindProgress{
		{Kind: "jobs", Rule: "delete", Changed: 200},
		{Kind: "job_counts", Rule: "delete"},
	}})
	if !se.Done || len(se.Kinds) != 2 || se.Kinds[0].Changed != 1200 || se.Kinds[0].Remaining != 0 || se.Kinds[1].Changed != 1 {
		t.Fatalf("merged = %+v", se)
	}
}

func TestClassify(t *testing.T) {
	for code, retry := range map[codes.Code]bool{
		codes.Unavailable: true, codes.DeadlineExceeded: true, codes.Internal: true,
		codes.PermissionDenied: false, codes.InvalidArgument: false, codes.Unimplemented: false,
	} {
		if got := worker.IsRetryable(classify("x", status.Error(code, "boom"))); got != retry {
			t.Errorf("%v: retryable %v, want %v", code, got, retry)
		}
	}
}

func TestScrubKeepsRetryDecision(t *testing.T) {
	perm := scrub(worker.Permanent(errors.New(`tenant "acme" is deleted`)), "acme")
	if perm.Error() != `tenant "<tenant>" is deleted` || worker.IsRetryable(perm) {
		t.Fatalf("permanent = %v (retryable %v)", perm, worker.IsRetryable(perm))
	}
	if r := scrub(worker.Retryable(errors.New("acme down")), "acme"); r.Error() != "<tenant> down" || !worker.IsRetryable(r) {
		t.Fatalf("retryable = %v", r)
	}
	if scrub(nil, "acme") != nil {
		t.Fatal("scrub(nil) is not nil")
	}
}
