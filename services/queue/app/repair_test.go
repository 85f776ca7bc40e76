package app_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
)

// deadJob enqueues a job of req's type and makes it dead through a
// worker's non-retryable failure.
func deadJob(t *testing.T, c queuev1.QueueServiceClient, user, worker context.Context, req *queuev1.EnqueueJobRequest) string {
	t.Helper()
	id := mustEnqueue(t, c, user, req)
	leases := mustLease(t, c, worker, &queuev1.LeaseJobsRequest{Types: []string{req.GetType()}})
	if len(leases) != 1 || leases[0].GetJob().GetJobId() != id {
		t.Fatalf("lease = %v, want %s", leases, id)
	}
	res, err := c.FailJob(worker, &queuev1.FailJobRequest{JobId: id, WorkerId: "w1", LeaseToken: leases[0].GetLeaseToken(), Error: "bad input"})
	if err != nil || res.GetJob().GetStatus() != queuev1.JobStatus_JOB_STATUS_DEAD {
		t.Fatalf("fail = %v, %v", res, err)
	}
	return id
}

func attemptOutcomes(t *testing.T, c queuev1.QueueServiceClient, ctx context.Context, id string) []string {
	t.Helper()
	res, err := c.ListJobAttempts(ctx, &queuev1.ListJobAttemptsRequest{JobId: id})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range res.GetAttempts() {
		out = append(out, a.GetWorkerId()+" "+a.GetOutcome().String()+" "+a.GetError())
	}
	return out
}

func TestRetryJob(t *testing.T) {
	backends(t, func(t *testing.T, c queuev1.QueueServiceClient) {
		user, worker := as(t, "acme", "user"), as(t, "acme", "worker")
		id := deadJob(t, c, user, worker, &queuev1.EnqueueJobRequest{Type: "ai_task", MaxAttempts: 1})
		res, err := c.RetryJob(user, &queuev1.RetryJobRequest{JobId: id})
		if err != nil {
			t.Fatal(err)
		}
		if j := res.GetJob(); j.GetStatus() != queuev1.JobStatus_JOB_STATUS_QUEUED || j.GetAttempts() != 1 || j.GetRetriedBy() != "u@acme" ||
			j.GetRetryTime() == nil || j.GetWorkerId() != "" || j.GetLeaseExpireTime() != nil || j.GetRunAt().AsTime().After(time.Now()) {
			t.Fatalf("retried job = %v", j)
		}
		if st := mustStatus(t, c, user); st.GetQueued() != 1 || st.GetDead() != 0 || st.GetTotalJobs() != 1 {
			t.Fatalf("status after retry = %v", st)
		}
		// Runnable at once, as its second attempt.
		leases := mustLease(t, c, worker, &queuev1.LeaseJobsRequest{WorkerId: "w2"})
		if len(leases) != 1 || leases[0].GetJob().GetAttempts() != 2 {
			t.Fatalf("lease after retry = %v", leases)
		}
		want := []string{"w1 ATTEMPT_OUTCOME_FAILED bad input", "w2 ATTEMPT_OUTCOME_RUNNING "}
		if got := attemptOutcomes(t, c, user, id); !slices.Equal(got, want) {
			t.Fatalf("attempts = %v, want %v", got, want)
		}
		_, err = c.RetryJob(user, &queuev1.RetryJobRequest{JobId: id})
		wantErr(t, err, codes.FailedPrecondition, "JOB_NOT_RETRYABLE")
		if _, err := c.CompleteJob(worker, &queuev1.CompleteJobRequest{JobId: id, WorkerId: "w2", LeaseToken: leases[0].GetLeaseToken()}); err != nil {
			t.Fatal(err)
		}
		_, err = c.RetryJob(user, &queuev1.RetryJobRequest{JobId: id})
		wantErr(t, err, codes.FailedPrecondition, "JOB_NOT_RETRYABLE")
		queued := mustEnqueue(t, c, user, &queuev1.EnqueueJobRequest{})
		_, err = c.RetryJob(user, &queuev1.RetryJobRequest{JobId: queued})
		wantErr(t, err, codes.FailedPrecondition, "JOB_NOT_RETRYABLE")
		// A cancelled job comes back too, and says who cancelled it.
		cancelled, err := c.CancelJob(user, &queuev1.CancelJobRequest{JobId: queued})
		if err != nil || cancelled.GetJob().GetCancelledBy() != "u@acme" {
			t.Fatalf("cancel = %v, %v", cancelled, err)
		}
		if res, err := c.RetryJob(user, &queuev1.RetryJobRequest{JobId: queued}); err != nil || res.GetJob().GetStatus() != queuev1.JobStatus_JOB_STATUS_QUEUED {
			t.Fatalf("retry of a cancelled job = %v, %v", res, err)
		}
	})
}

func TestDeleteJob(t *testing.T) {
	backends(t, func(t *testing.T, c queuev1.QueueServiceClient) {
		user, worker := as(t, "acme", "user"), as(t, "acme", "worker")
		dead := deadJob(t, c, user, worker, &queuev1.EnqueueJobRequest{Type: "ai_task", MaxAttempts: 1})
		queued := mustEnqueue(t, c, user, &queuev1.EnqueueJobRequest{Type: "report_gen"})
		_, err := c.DeleteJob(user, &queuev1.DeleteJobRequest{JobId: queued})
		wantErr(t, err, codes.FailedPrecondition, "JOB_NOT_FINISHED")
		l := mustLease(t, c, worker, &queuev1.LeaseJobsRequest{})
		_, err = c.DeleteJob(user, &queuev1.DeleteJobRequest{JobId: queued})
		wantErr(t, err, codes.FailedPrecondition, "JOB_NOT_FINISHED")
		res, err := c.DeleteJob(user, &queuev1.DeleteJobRequest{JobId: dead})
		if err != nil || res.GetJob().GetJobId() != dead || res.GetJob().GetStatus() != queuev1.JobStatus_JOB_STATUS_DEAD {
			t.Fatalf("delete = %v, %v", res, err)
		}
		_, err = c.GetJob(user, &queuev1.GetJobRequest{JobId: dead})
		wantErr(t, err, codes.NotFound, "JOB_NOT_FOUND")
		_, err = c.ListJobAttempts(user, &queuev1.ListJobAttemptsRequest{JobId: dead})
		wantErr(t, err, codes.NotFound, "JOB_NOT_FOUND")
		_, err = c.DeleteJob(user, &queuev1.DeleteJobRequest{JobId: dead})
		wantErr(t, err, codes.NotFound, "JOB_NOT_FOUND")
		if st := mustStatus(t, c, user); st.GetTotalJobs() != 1 || st.GetDead() != 0 || st.GetProcessing() != 1 ||
			st.GetByType()["ai_task"] != 0 || st.GetByType()["report_gen"] != 1 {
			t.Fatalf("status after delete = %v", st)
		}
		if _, err := complete(c, worker, l[0]); err != nil {
			t.Fatal(err)
		}
		if _, err := c.DeleteJob(user, &queuev1.DeleteJobRequest{JobId: queued}); err != nil {
			t.Fatalf("delete of a completed job: %v", err)
		}
		if st := mustStatus(t, c, user); st.GetTotalJobs() != 0 || st.GetCompleted() != 0 {
			t.Fatalf("status after deleting everything = %v", st)
		}
	})
}

func TestBulkJobs(t *testing.T) {
	backends(t, func(t *testing.T, c queuev1.QueueServiceClient) {
		user, worker := as(t, "acme", "user"), as(t, "acme", "worker")
		start := time.Now()
		for range 3 {
			deadJob(t, c, user, worker, &queuev1.EnqueueJobRequest{Type: "data_sync", MaxAttempts: 1})
		}
		deadJob(t, c, user, worker, &queuev1.EnqueueJobRequest{Type: "ai_task", MaxAttempts: 1})
		for range 2 {
			mustEnqueue(t, c, user, &queuev1.EnqueueJobRequest{Type: "report_gen", Priority: queuev1.Priority_PRIORITY_LOW})
		}
		retry := func(req *queuev1.BulkJobsRequest) *queuev1.BulkJobsResponse {
			t.Helper()
			res, err := c.BulkJobs(user, req)
			if err != nil {
				t.Fatal(err)
			}
			return res
		}
		dead := &queuev1.JobFilter{Statuses: []queuev1.JobStatus{queuev1.JobStatus_JOB_STATUS_DEAD}, Type: "data_sync"}
		res := retry(&queuev1.BulkJobsRequest{Action: queuev1.BulkAction_BULK_ACTION_RETRY, Filter: dead, DryRun: true})
		if res.GetMatched() != 3 || res.GetAffected() != 0 || res.GetRemaining() != 3 || !res.GetDryRun() {
			t.Fatalf("dry run = %v", res)
		}
		if st := mustStatus(t, c, user); st.GetDead() != 4 {
			t.Fatalf("a dry run changed jobs: %v", st)
		}
		res = retry(&queuev1.BulkJobsRequest{Action: queuev1.BulkAction_BULK_ACTION_RETRY, Filter: dead, Limit: 2})
		if res.GetMatched() != 3 || res.GetAffected() != 2 || res.GetRemaining() != 1 {
			t.Fatalf("capped retry = %v", res)
		}
		res = retry(&queuev1.BulkJobsRequest{Action: queuev1.BulkAction_BULK_ACTION_RETRY, Filter: dead, Limit: 2})
		if res.GetMatched() != 1 || res.GetAffected() != 1 || res.GetRemaining() != 0 {
			t.Fatalf("second retry = %v", res)
		}
		if st := mustStatus(t, c, user); st.GetDead() != 1 || st.GetQueued() != 5 || st.GetTotalJobs() != 6 {
			t.Fatalf("status after bulk retry = %v", st)
		}
		// Cancel by priority and created range: the two low report_gen jobs.
		res = retry(&queuev1.BulkJobsRequest{Action: queuev1.BulkAction_BULK_ACTION_CANCEL, Filter: &queuev1.JobFilter{
			Priority: queuev1.Priority_PRIORITY_LOW, CreatedAfter: timestamppb.New(start.Add(-time.Minute)),
			CreatedBefore: timestamppb.New(time.Now().Add(time.Minute)),
		}})
		if res.GetMatched() != 2 || res.GetAffected() != 2 {
			t.Fatalf("bulk cancel = %v", res)
		}
		// Delete only takes finished jobs, whatever statuses are asked for.
		res = retry(&queuev1.BulkJobsRequest{Action: queuev1.BulkAction_BULK_ACTION_DELETE, Filter: &queuev1.JobFilter{
			Statuses: []queuev1.JobStatus{queuev1.JobStatus_JOB_STATUS_QUEUED, queuev1.JobStatus_JOB_STATUS_CANCELLED},
		}})
		if res.GetMatched() != 2 || res.GetAffected() != 2 {
			t.Fatalf("bulk delete = %v", res)
		}
		if st := mustStatus(t, c, user); st.GetTotalJobs() != 4 || st.GetCancelled() != 0 || st.GetQueued() != 3 || st.GetDead() != 1 ||
			st.GetByType()["report_gen"] != 0 || st.GetByPriority()["low"] != 0 {
			t.Fatalf("status after bulk delete = %v", st)
		}

		for _, tc := range []struct {
			name   string
			req    *queuev1.BulkJobsRequest
			code   codes.Code
			reason string
		}{
			{"no action", &queuev1.BulkJobsRequest{}, codes.InvalidArgument, "FIELD_REQUIRED"},
			{"undefined action", &queuev1.BulkJobsRequest{Action: queuev1.BulkAction(9)}, codes.InvalidArgument, "BULK_ACTION_INVALID"},
			{"unknown status", &queuev1.BulkJobsRequest{Action: queuev1.BulkAction_BULK_ACTION_RETRY,
				Filter: &queuev1.JobFilter{Statuses: []queuev1.JobStatus{queuev1.JobStatus(42)}}}, codes.InvalidArgument, "STATUS_INVALID"},
			{"inverted created range", &queuev1.BulkJobsRequest{Action: queuev1.BulkAction_BULK_ACTION_DELETE,
				Filter: &queuev1.JobFilter{CreatedAfter: timestamppb.New(time.Now()), CreatedBefore: timestamppb.New(time.Now().Add(-time.Hour))}},
				codes.InvalidArgument, "CREATED_RANGE_INVALID"},
			{"limit too large", &queuev1.BulkJobsRequest{Action: queuev1.BulkAction_BULK_ACTION_CANCEL, Limit: 1001}, codes.InvalidArgument, "BULK_LIMIT_INVALID"},
			{"negative limit", &queuev1.BulkJobsRequest{Action: queuev1.BulkAction_BULK_ACTION_CANCEL, Limit: -1}, codes.InvalidArgument, "BULK_LIMIT_INVALID"},
			{"bad type", &queuev1.BulkJobsRequest{Action: queuev1.BulkAction_BULK_ACTION_CANCEL, Filter: &queuev1.JobFilter{Type: "AI Task"}},
				codes.InvalidArgument, "TYPE_INVALID"},
			{"undefined priority", &queuev1.BulkJobsRequest{Action: queuev1.BulkAction_BULK_ACTION_CANCEL, Filter: &queuev1.JobFilter{Priority: queuev1.Priority(9)}},
				codes.InvalidArgument, "PRIORITY_INVALID"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := c.BulkJobs(user, tc.req)
				wantErr(t, err, tc.code, tc.reason)
			})
		}
		if st := mustStatus(t, c, user); st.GetTotalJobs() != 4 {
			t.Fatalf("refused calls changed jobs: %v", st)
		}
	})
}

func TestPauseJobType(t *testing.T) {
	backends(t, func(t *testing.T, c queuev1.QueueServiceClient) {
		user, worker := as(t, "acme", "user"), as(t, "acme", "worker")
		sync := mustEnqueue(t, c, user, &queuev1.EnqueueJobRequest{Type: "data_sync", Priority: queuev1.Priority_PRIORITY_CRITICAL})
		ai := mustEnqueue(t, c, user, &queuev1.EnqueueJobRequest{Type: "ai_task"})
		p, err := c.PauseJobType(user, &queuev1.PauseJobTypeRequest{JobType: "data_sync"})
		if err != nil || p.GetPausedType().GetJobType() != "data_sync" || p.GetPausedType().GetPausedBy() != "u@acme" || p.GetPausedType().GetPauseTime() == nil {
			t.Fatalf("pause = %v, %v", p, err)
		}
		leases := mustLease(t, c, worker, &queuev1.LeaseJobsRequest{MaxJobs: 10})
		if len(leases) != 1 || leases[0].GetJob().GetJobId() != ai {
			t.Fatalf("leased %v while data_sync is paused, want only %s", leases, ai)
		}
		st := mustStatus(t, c, user)
		if len(st.GetPausedTypes()) != 1 || st.GetPausedTypes()[0].GetJobType() != "data_sync" || st.GetQueued() != 1 {
			t.Fatalf("status = %v", st)
		}
		list, err := c.ListPausedJobTypes(user, &queuev1.ListPausedJobTypesRequest{})
		if err != nil || len(list.GetPausedTypes()) != 1 || list.GetPausedTypes()[0].GetPausedBy() != "u@acme" {
			t.Fatalf("list = %v, %v", list, err)
		}
		// A waiting lease call is woken by the resume.
		got := make(chan []*queuev1.Lease, 1)
		go func() {
			res, err := c.LeaseJobs(worker, &queuev1.LeaseJobsRequest{WorkerId: "w2", WaitMs: 10000})
			if err != nil {
				t.Error(err)
			}
			got <- res.GetLeases()
		}()
		time.Sleep(200 * time.Millisecond)
		started := time.Now()
		r, err := c.ResumeJobType(user, &queuev1.ResumeJobTypeRequest{JobType: "data_sync"})
		if err != nil || !r.GetResumed() {
			t.Fatalf("resume = %v, %v", r, err)
		}
		if l := <-got; len(l) != 1 || l[0].GetJob().GetJobId() != sync {
			t.Fatalf("after resume leased %v, want %s", l, sync)
		}
		if waited := time.Since(started); waited > 5*time.Second {
			t.Errorf("the resumed job reached the waiting worker after %v", waited)
		}
		if r, err := c.ResumeJobType(user, &queuev1.ResumeJobTypeRequest{JobType: "data_sync"}); err != nil || r.GetResumed() {
			t.Fatalf("second resume = %v, %v; want resumed=false", r, err)
		}
		if st := mustStatus(t, c, user); len(st.GetPausedTypes()) != 0 {
			t.Fatalf("paused types after resume = %v", st.GetPausedTypes())
		}
		_, err = c.PauseJobType(user, &queuev1.PauseJobTypeRequest{})
		wantErr(t, err, codes.InvalidArgument, "FIELD_REQUIRED")
		_, err = c.PauseJobType(user, &queuev1.PauseJobTypeRequest{JobType: "Data Sync"})
		wantErr(t, err, codes.InvalidArgument, "TYPE_INVALID")
		_, err = c.ResumeJobType(user, &queuev1.ResumeJobTypeRequest{JobType: "Data Sync"})
		wantErr(t, err, codes.InvalidArgument, "TYPE_INVALID")
		_, err = c.ListPausedJobTypes(user, &queuev1.ListPausedJobTypesRequest{PageToken: "garbage"})
		wantErr(t, err, codes.InvalidArgument, "PAGE_TOKEN_INVALID")
	})
}

// TestRepairTenantIsolation: globex's calls never reach acme's jobs or
// pauses, and a platform admin may read acme's attempts but not repair.
func TestRepairTenantIsolation(t *testing.T) {
	backends(t, func(t *testing.T, c queuev1.QueueServiceClient) {
		acme, acmeWorker := as(t, "acme", "user"), as(t, "acme", "worker")
		globex, globexWorker := as(t, "globex", "user"), as(t, "globex", "worker")
		theirs := deadJob(t, c, acme, acmeWorker, &queuev1.EnqueueJobRequest{Type: "data_sync", MaxAttempts: 1})
		waiting := mustEnqueue(t, c, acme, &queuev1.EnqueueJobRequest{Type: "data_sync"})
		mine := mustEnqueue(t, c, globex, &queuev1.EnqueueJobRequest{Type: "data_sync"})

		_, err := c.RetryJob(globex, &queuev1.RetryJobRequest{JobId: theirs})
		wantErr(t, err, codes.NotFound, "JOB_NOT_FOUND")
		_, err = c.DeleteJob(globex, &queuev1.DeleteJobRequest{JobId: theirs})
		wantErr(t, err, codes.NotFound, "JOB_NOT_FOUND")
		_, err = c.ListJobAttempts(globex, &queuev1.ListJobAttemptsRequest{JobId: theirs})
		wantErr(t, err, codes.NotFound, "JOB_NOT_FOUND")
		for _, a := range []queuev1.BulkAction{queuev1.BulkAction_BULK_ACTION_RETRY, queuev1.BulkAction_BULK_ACTION_CANCEL, queuev1.BulkAction_BULK_ACTION_DELETE} {
			res, err := c.BulkJobs(globex, &queuev1.BulkJobsRequest{Action: a, Filter: &queuev1.JobFilter{Type: "data_sync"}})
			if err != nil {
				t.Fatal(err)
			}
			// globex's own queued job is the only one a cancel matches, and
			// then a delete.
			want := map[queuev1.BulkAction]int64{queuev1.BulkAction_BULK_ACTION_CANCEL: 1, queuev1.BulkAction_BULK_ACTION_DELETE: 1}[a]
			if res.GetMatched() != want || res.GetAffected() != want {
				t.Fatalf("globex bulk %s = %v", a, res)
			}
		}
		// globex deleted its own cancelled job, nothing of acme's.
		_, err = c.GetJob(globex, &queuev1.GetJobRequest{JobId: mine})
		wantErr(t, err, codes.NotFound, "JOB_NOT_FOUND")
		if st := mustStatus(t, c, acme); st.GetDead() != 1 || st.GetQueued() != 1 || st.GetTotalJobs() != 2 {
			t.Fatalf("acme's status after globex's bulk calls = %v", st)
		}
		// Pausing data_sync in globex holds back none of acme's jobs.
		if _, err := c.PauseJobType(globex, &queuev1.PauseJobTypeRequest{JobType: "data_sync"}); err != nil {
			t.Fatal(err)
		}
		if l := mustLease(t, c, acmeWorker, &queuev1.LeaseJobsRequest{}); len(l) != 1 || l[0].GetJob().GetJobId() != waiting {
			t.Fatalf("acme's worker leased %v, want %s", l, waiting)
		}
		if st := mustStatus(t, c, acme); len(st.GetPausedTypes()) != 0 {
			t.Fatalf("acme sees globex's pauses: %v", st.GetPausedTypes())
		}
		if l := mustLease(t, c, globexWorker, &queuev1.LeaseJobsRequest{WaitMs: 100}); len(l) != 0 {
			t.Fatalf("globex leased %v", l)
		}
		// Naming acme is refused before the handler, writes and reads alike.
		for name, call := range map[string]func(ctx context.Context) error{
			"retry": func(ctx context.Context) error {
				_, err := c.RetryJob(ctx, &queuev1.RetryJobRequest{JobId: theirs})
				return err
			},
			"delete": func(ctx context.Context) error {
				_, err := c.DeleteJob(ctx, &queuev1.DeleteJobRequest{JobId: theirs})
				return err
			},
			"bulk": func(ctx context.Context) error {
				_, err := c.BulkJobs(ctx, &queuev1.BulkJobsRequest{Action: queuev1.BulkAction_BULK_ACTION_DELETE})
				return err
			},
			"pause": func(ctx context.Context) error {
				_, err := c.PauseJobType(ctx, &queuev1.PauseJobTypeRequest{JobType: "ai_task"})
				return err
			},
			"resume": func(ctx context.Context) error {
				_, err := c.ResumeJobType(ctx, &queuev1.ResumeJobTypeRequest{JobType: "ai_task"})
				return err
			},
			"attempts": func(ctx context.Context) error {
				_, err := c.ListJobAttempts(ctx, &queuev1.ListJobAttemptsRequest{JobId: theirs})
				return err
			},
		} {
			t.Run(name, func(t *testing.T) {
				wantErr(t, call(withTenant(globex, "acme")), codes.PermissionDenied, "CROSS_TENANT_DENIED")
				if name == "attempts" {
					return
				}
				// A platform admin reads across tenants, never repairs.
				wantErr(t, call(withTenant(as(t, "default", "admin"), "acme")), codes.PermissionDenied, "CROSS_TENANT_DENIED")
			})
		}
		admin := withTenant(as(t, "default", "admin"), "acme")
		if got := attemptOutcomes(t, c, admin, theirs); !slices.Equal(got, []string{"w1 ATTEMPT_OUTCOME_FAILED bad input"}) {
			t.Fatalf("admin's read of acme's attempts = %v", got)
		}
		if list, err := c.ListPausedJobTypes(admin, &queuev1.ListPausedJobTypesRequest{}); err != nil || len(list.GetPausedTypes()) != 0 {
			t.Fatalf("admin's read of acme's pauses = %v, %v", list, err)
		}
		if st := mustStatus(t, c, acme); st.GetDead() != 1 {
			t.Fatalf("acme's dead job after refused calls: %v", st)
		}
	})
}
