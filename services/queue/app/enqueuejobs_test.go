package app_test

import (
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/validate"
)

// EnqueueJobs stores a batch in the caller's tenant, in order, with
// idempotency keys matched within the batch and against earlier jobs; an
// invalid job is named by its index and nothing of its batch is stored.
func TestEnqueueJobs(t *testing.T) {
	backends(t, func(t *testing.T, c queuev1.QueueServiceClient) {
		user, globex := as(t, "acme", "user"), as(t, "globex", "user")
		old := mustEnqueue(t, c, user, &queuev1.EnqueueJobRequest{IdempotencyKey: "old"})
		res, err := c.EnqueueJobs(user, &queuev1.EnqueueJobsRequest{Jobs: []*queuev1.EnqueueJobRequest{
			{Type: "ai_task", IdempotencyKey: "a"},
			{Type: "report_gen", Priority: queuev1.Priority_PRIORITY_CRITICAL},
			{Type: "ai_task", IdempotencyKey: "old"},
			{Type: "ai_task", IdempotencyKey: "a"},
		}})
		if err != nil {
			t.Fatal(err)
		}
		js := res.GetJobs()
		if len(js) != 4 || js[2].GetJobId() != old || js[3].GetJobId() != js[0].GetJobId() ||
			fmt.Sprint(js[0].GetDuplicate(), js[1].GetDuplicate(), js[2].GetDuplicate(), js[3].GetDuplicate()) != "false false true true" {
			t.Fatalf("EnqueueJobs = %v", js)
		}
		if st := mustStatus(t, c, user); st.GetQueued() != 3 || st.GetByPriority()["critical"] != 1 {
			t.Fatalf("status after the batch = %v", st)
		}
		// Another tenant sees none of them.
		if _, err := c.GetJob(globex, &queuev1.GetJobRequest{JobId: js[1].GetJobId()}); status.Code(err) != codes.NotFound {
			t.Fatalf("globex read acme's batch job: %v", err)
		}

		bad := []*queuev1.EnqueueJobRequest{{Type: "ai_task", IdempotencyKey: "never"}, {Type: "ai_task"}, {Type: "AI Task"}}
		_, err = c.EnqueueJobs(user, &queuev1.EnqueueJobsRequest{Jobs: bad})
		wantErr(t, err, codes.InvalidArgument, "TYPE_INVALID")
		if idx := apierr.Metadata(err)["index"]; idx != "2" {
			t.Fatalf("invalid job's index = %q, want 2 (%v)", idx, err)
		}
		if st := mustStatus(t, c, user); st.GetTotalJobs() != 3 {
			t.Fatalf("a refused batch stored jobs: %v", st)
		}
		_, err = c.EnqueueJobs(user, &queuev1.EnqueueJobsRequest{})
		wantErr(t, err, codes.InvalidArgument, validate.ReasonFieldRequired)
		jobs := make([]*queuev1.EnqueueJobRequest, 501)
		for i := range jobs {
			jobs[i] = &queuev1.EnqueueJobRequest{Type: "ai_task"}
		}
		_, err = c.EnqueueJobs(user, &queuev1.EnqueueJobsRequest{Jobs: jobs})
		wantErr(t, err, codes.InvalidArgument, "ENQUEUE_BATCH_SIZE_INVALID")
		_, err = c.EnqueueJobs(user, &queuev1.EnqueueJobsRequest{Jobs: []*queuev1.EnqueueJobRequest{nil}})
		wantErr(t, err, codes.InvalidArgument, validate.ReasonFieldRequired)
	})
}
