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

// LeaseJobs with completions reports a batch and leases the next in one
// call: each completion gets its own outcome, in request order, and a
// refused one does not fail the lease.
func TestLeaseWithCompletions(t *testing.T) {
	backends(t, func(t *testing.T, c queuev1.QueueServiceClient) {
		user, worker := as(t, "acme", "user"), as(t, "acme", "worker")
		jobs := make([]*queuev1.EnqueueJobRequest, 5)
		for i := range jobs {
			jobs[i] = &queuev1.EnqueueJobRequest{Type: "noop"}
		}
		if _, err := c.EnqueueJobs(user, &queuev1.EnqueueJobsRequest{Jobs: jobs}); err != nil {
			t.Fatal(err)
		}
		first := mustLease(t, c, worker, &queuev1.LeaseJobsRequest{WorkerId: "w1", MaxJobs: 3})
		req := &queuev1.LeaseJobsRequest{WorkerId: "w1", MaxJobs: 3}
		for i, l := range first {
			token := l.GetLeaseToken()
			if i == 2 {
				token++ // refused alone
			}
			req.Completions = append(req.Completions, &queuev1.CompleteJobRequest{
				JobId: l.GetJob().GetJobId(), WorkerId: "w1", LeaseToken: token, Usage: &queuev1.Usage{Model: "m", OutputTokens: int64(i + 1)},
			})
		}
		res, err := c.LeaseJobs(worker, req)
		if err != nil {
			t.Fatal(err)
		}
		rs := res.GetCompletionResults()
		if len(rs) != 3 || !rs[0].GetCompleted() || !rs[1].GetCompleted() || rs[1].GetJob().GetUsage().GetOutputTokens() != 2 ||
			rs[2].GetCompleted() || rs[2].GetReason() != "LEASE_LOST" || rs[2].GetJobId() != first[2].GetJob().GetJobId() {
			t.Fatalf("completion results = %v", rs)
		}
		if len(res.GetLeases()) != 2 {
			t.Fatalf("leased %d after the completions, want the 2 left", len(res.GetLeases()))
		}
		if st := mustStatus(t, c, user); st.GetCompleted() != 2 || st.GetProcessing() != 3 {
			t.Fatalf("status = %v", st)
		}
		// Nothing left to lease: the completions still count, the lease is empty.
		last := res.GetLeases()
		res, err = c.LeaseJobs(worker, &queuev1.LeaseJobsRequest{WorkerId: "w1", Completions: []*queuev1.CompleteJobRequest{
			{JobId: last[0].GetJob().GetJobId(), WorkerId: "w1", LeaseToken: last[0].GetLeaseToken()},
		}})
		if err != nil || len(res.GetLeases()) != 0 || !res.GetCompletionResults()[0].GetCompleted() {
			t.Fatalf("complete and lease from an empty queue = %v, %v", res, err)
		}
		// An invalid lease request completes nothing.
		_, err = c.LeaseJobs(worker, &queuev1.LeaseJobsRequest{WorkerId: "w1", MaxJobs: 101, Completions: []*queuev1.CompleteJobRequest{
			{JobId: last[1].GetJob().GetJobId(), WorkerId: "w1", LeaseToken: last[1].GetLeaseToken()},
		}})
		wantErr(t, err, codes.InvalidArgument, "LEASE_PARAMS_INVALID")
		if st := mustStatus(t, c, user); st.GetCompleted() != 3 || st.GetProcessing() != 2 {
			t.Fatalf("status after a refused call = %v", st)
		}
		big := &queuev1.LeaseJobsRequest{WorkerId: "w1"}
		for range 101 {
			big.Completions = append(big.Completions, &queuev1.CompleteJobRequest{JobId: "x", WorkerId: "w1", LeaseToken: 1})
		}
		_, err = c.LeaseJobs(worker, big)
		wantErr(t, err, codes.InvalidArgument, "BATCH_TOO_LARGE")
	})
}
