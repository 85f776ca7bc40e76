package app_test

import (
	"testing"

	"google.golang.org/grpc/codes"

	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
)

// CompleteJobs accepts what it may and refuses the rest, each on its own.
func TestCompleteJobsBatch(t *testing.T) {
	backends(t, func(t *testing.T, c queuev1.QueueServiceClient) {
		user, worker := as(t, "acme", "user"), as(t, "acme", "worker")
		for i := 0; i < 3; i++ {
			mustEnqueue(t, c, user, &queuev1.EnqueueJobRequest{Type: "noop"})
		}
		leases := mustLease(t, c, worker, &queuev1.LeaseJobsRequest{WorkerId: "w1", MaxJobs: 3})
		if len(leases) != 3 {
			t.Fatalf("leased %d, want 3", len(leases))
		}
		req := &queuev1.CompleteJobsRequest{}
		for i, l := range leases {
			token := l.GetLeaseToken()
			if i == 1 {
				token++ // a stale or forged token: this one must be refused alone
			}
			req.Completions = append(req.Completions, &queuev1.CompleteJobRequest{
				JobId: l.GetJob().GetJobId(), WorkerId: "w1", LeaseToken: token,
				Usage: &queuev1.Usage{Model: "m", InputTokens: int64(i + 1)},
			})
		}
		res, err := c.CompleteJobs(worker, req)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.GetResults()) != 3 {
			t.Fatalf("results = %v", res.GetResults())
		}
		for i, r := range res.GetResults() {
			if r.GetJobId() != leases[i].GetJob().GetJobId() {
				t.Fatalf("result %d is for %s, want request order", i, r.GetJobId())
			}
			if i == 1 {
				if r.GetCompleted() || r.GetReason() != "LEASE_LOST" || r.GetJob() != nil {
					t.Fatalf("stale completion = %v, want refused with LEASE_LOST", r)
				}
				continue
			}
			if !r.GetCompleted() || r.GetJob().GetStatus() != queuev1.JobStatus_JOB_STATUS_COMPLETED || r.GetJob().GetUsage().GetInputTokens() != int64(i+1) {
				t.Fatalf("completion %d = %v", i, r)
			}
		}
		st := mustStatus(t, c, user)
		if st.GetCompleted() != 2 || st.GetProcessing() != 1 {
			t.Fatalf("status = %v, want 2 completed and the refused one still processing", st)
		}

		// The whole call is refused for a batch too large or an item missing a field.
		big := &queuev1.CompleteJobsRequest{}
		for i := 0; i < 101; i++ {
			big.Completions = append(big.Completions, &queuev1.CompleteJobRequest{JobId: "x", WorkerId: "w1", LeaseToken: 1})
		}
		_, err = c.CompleteJobs(worker, big)
		wantErr(t, err, codes.InvalidArgument, "BATCH_TOO_LARGE")
		_, err = c.CompleteJobs(worker, &queuev1.CompleteJobsRequest{Completions: []*queuev1.CompleteJobRequest{{JobId: "x", WorkerId: "w1"}}})
		wantErr(t, err, codes.InvalidArgument, "FIELD_REQUIRED")
		// Only workers complete jobs; other tenants' jobs are not found.
		_, err = c.CompleteJobs(user, req)
		wantErr(t, err, codes.PermissionDenied, "ROLE_REQUIRED")
		res, err = c.CompleteJobs(as(t, "globex", "worker"), &queuev1.CompleteJobsRequest{Completions: req.Completions[1:2]})
		if err != nil || res.GetResults()[0].GetCompleted() || res.GetResults()[0].GetReason() != "JOB_NOT_FOUND" {
			t.Fatalf("globex completing acme's job = %v, %v", res, err)
		}
	})
}
