package grpcapi

import (
	"encoding/json"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/services/queue/internal/domain"
)

// FuzzEnqueueJSON feeds arbitrary bytes through the path of a REST enqueue
// body: protojson into EnqueueJobRequest (as the gateway decodes it, once
// it has turned the priority's seed string into the enum number, -1 for an
// unknown one), then the handler's conversion and the domain's validation. It must never
// panic; what protojson accepts is either a valid job or InvalidArgument
// with a reason, and a valid job keeps every rule. The seed corpus is in
// testdata/fuzz/FuzzEnqueueJSON.
func FuzzEnqueueJSON(f *testing.F) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		var req queuev1.EnqueueJobRequest
		if err := protojson.Unmarshal(data, &req); err != nil {
			return // the gateway answers 400 before the service sees it
		}
		job, err := enqueueRequest(&req).Validate("acme", now)
		if err != nil {
			if status.Code(err) != codes.InvalidArgument || apierr.Reason(err) == "" {
				t.Fatalf("%q: got %v (reason %q), want InvalidArgument with a reason", data, err, apierr.Reason(err))
			}
			return
		}
		if len(job.Payload) > domain.MaxPayloadBytes || !json.Valid(job.Payload) || job.Payload[0] != '{' {
			t.Fatalf("%q: accepted payload %q", data, job.Payload)
		}
		if job.MaxAttempts < 1 || job.MaxAttempts > domain.MaxMaxAttempts {
			t.Fatalf("%q: accepted max_attempts %d", data, job.MaxAttempts)
		}
		if p := job.Priority; p < domain.PriorityCritical || p > domain.PriorityLow {
			t.Fatalf("%q: accepted priority %d", data, p)
		}
		if job.RunAt.Before(now) || job.RunAt.Sub(now) > domain.MaxDelay {
			t.Fatalf("%q: accepted run_at %v", data, job.RunAt)
		}
		if job.Type == "" || len(job.Type) > domain.MaxTypeLen || job.TenantID != "acme" {
			t.Fatalf("%q: accepted job %+v", data, job)
		}
	})
}
