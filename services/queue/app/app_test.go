package app_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
)

// TestSeedGate is the seed's gate at the service: two jobs enqueued, two
// queued; a worker takes both and completes them with usage; two completed,
// none queued.
func TestSeedGate(t *testing.T) {
	backends(t, func(t *testing.T, c queuev1.QueueServiceClient) {
		user, worker := as(t, "acme", "user"), as(t, "acme", "worker")
		first := mustEnqueue(t, c, user, &queuev1.EnqueueJobRequest{
			Type: "ai_task", Priority: queuev1.Priority_PRIORITY_HIGH, Payload: object(t, map[string]any{"prompt": "hello"}),
		})
		second := mustEnqueue(t, c, user, &queuev1.EnqueueJobRequest{Type: "report_gen"})
		st := mustStatus(t, c, user)
		if st.GetTotalJobs() != 2 || st.GetQueued() != 2 || st.GetByType()["ai_task"] != 1 || st.GetByPriority()["high"] != 1 ||
			st.GetByPriority()["low"] != 0 || len(st.GetByPriority()) != 4 {
			t.Fatalf("status after enqueue = %v", st)
		}
		leases := mustLease(t, c, worker, &queuev1.LeaseJobsRequest{WorkerId: "edge-1", MaxJobs: 2})
		if len(leases) != 2 || leases[0].GetJob().GetJobId() != first || leases[1].GetJob().GetJobId() != second {
			t.Fatalf("leases = %v, want %s then %s", leases, first, second)
		}
		l := leases[0]
		if j := l.GetJob(); j.GetStatus() != queuev1.JobStatus_JOB_STATUS_PROCESSING || j.GetWorkerId() != "edge-1" || j.GetAttempts() != 1 ||
			j.GetPayload().GetFields()["prompt"].GetStringValue() != "hello" || l.GetLeaseToken() != 1 ||
			!j.GetLeaseExpireTime().AsTime().After(time.Now()) {
			t.Fatalf("lease = %v", l)
		}
		for _, l := range leases {
			res, err := c.CompleteJob(worker, &queuev1.CompleteJobRequest{
				JobId: l.GetJob().GetJobId(), WorkerId: "edge-1", LeaseToken: l.GetLeaseToken(),
				Result: object(t, map[string]any{"text": "hi there"}),
				Usage:  &queuev1.Usage{Model: "gpt-4o-mini", InputTokens: 12, OutputTokens: 3, DurationMs: 40},
			})
			if err != nil {
				t.Fatal(err)
			}
			if j := res.GetJob(); j.GetStatus() != queuev1.JobStatus_JOB_STATUS_COMPLETED || j.GetUsage().GetOutputTokens() != 3 || j.GetWorkerId() != "" ||
				j.GetResult().GetFields()["text"].GetStringValue() != "hi there" {
				t.Fatalf("completed job = %v", j)
			}
		}
		st = mustStatus(t, c, user)
		if st.GetTotalJobs() != 2 || st.GetCompleted() != 2 || st.GetQueued() != 0 || st.GetProcessing() != 0 {
			t.Fatalf("status after the worker = %v", st)
		}
		got, err := c.GetJob(user, &queuev1.GetJobRequest{JobId: first})
		if err != nil || got.GetJob().GetUsage().GetModel() != "gpt-4o-mini" || got.GetJob().GetTenantId() != "acme" {
			t.Fatalf("GetJob = %v, %v", got, err)
		}
	})
}

func TestErrors(t *testing.T) {
	backends(t, func(t *testing.T, c queuev1.QueueServiceClient) {
		user, worker := as(t, "acme", "user"), as(t, "acme", "worker")
		for _, tc := range []struct {
			name   string
			call   func() error
			code   codes.Code
			reason string
		}{
			{"type missing", func() error { _, err := c.EnqueueJob(user, &queuev1.EnqueueJobRequest{}); return err },
				codes.InvalidArgument, "FIELD_REQUIRED"},
			{"type invalid", func() error {
				_, err := c.EnqueueJob(user, &queuev1.EnqueueJobRequest{Type: "AI Task"})
				return err
			}, codes.InvalidArgument, "TYPE_INVALID"},
			{"priority invalid", func() error {
				_, err := c.EnqueueJob(user, &queuev1.EnqueueJobRequest{Type: "ai_task", Priority: queuev1.Priority(99)})
				return err
			}, codes.InvalidArgument, "PRIORITY_INVALID"},
			{"max attempts invalid", func() error {
				_, err := c.EnqueueJob(user, &queuev1.EnqueueJobRequest{Type: "ai_task", MaxAttempts: 1000})
				return err
			}, codes.InvalidArgument, "MAX_ATTEMPTS_INVALID"},
			{"payload too large", func() error {
				_, err := c.EnqueueJob(user, &queuev1.EnqueueJobRequest{Type: "ai_task",
					Payload: object(t, map[string]any{"blob": strings.Repeat("x", 300<<10)})})
				return err
			}, codes.InvalidArgument, "PAYLOAD_TOO_LARGE"},
			{"run_at invalid", func() error {
				_, err := c.EnqueueJob(user, &queuev1.EnqueueJobRequest{Type: "ai_task",
					RunAt: timestamppb.New(time.Now().Add(400 * 24 * time.Hour))})
				return err
			}, codes.InvalidArgument, "RUN_AT_INVALID"},
			{"status filter invalid", func() error {
				_, err := c.ListJobs(user, &queuev1.ListJobsRequest{Status: queuev1.JobStatus(99)})
				return err
			}, codes.InvalidArgument, "STATUS_INVALID"},
			{"page token invalid", func() error {
				_, err := c.ListJobs(user, &queuev1.ListJobsRequest{PageToken: "garbage"})
				return err
			}, codes.InvalidArgument, "PAGE_TOKEN_INVALID"},
			{"lease without the worker role", func() error {
				_, err := c.LeaseJobs(user, &queuev1.LeaseJobsRequest{WorkerId: "w"})
				return err
			}, codes.PermissionDenied, "ROLE_REQUIRED"},
			{"lease params invalid", func() error {
				_, err := c.LeaseJobs(worker, &queuev1.LeaseJobsRequest{WorkerId: "w", MaxJobs: 101})
				return err
			}, codes.InvalidArgument, "LEASE_PARAMS_INVALID"},
			{"job not found", func() error {
				_, err := c.GetJob(user, &queuev1.GetJobRequest{JobId: "01ARZ3NDEKTSV4RRFFQ69G5FAV"})
				return err
			}, codes.NotFound, "JOB_NOT_FOUND"},
			{"malformed job id", func() error {
				_, err := c.CancelJob(user, &queuev1.CancelJobRequest{JobId: "../etc"})
				return err
			}, codes.NotFound, "JOB_NOT_FOUND"},
			{"complete an unknown job", func() error {
				_, err := c.CompleteJob(worker, &queuev1.CompleteJobRequest{JobId: "01ARZ3NDEKTSV4RRFFQ69G5FAV", WorkerId: "w", LeaseToken: 1})
				return err
			}, codes.NotFound, "JOB_NOT_FOUND"},
			{"negative usage", func() error {
				_, err := c.CompleteJob(worker, &queuev1.CompleteJobRequest{JobId: "01ARZ3NDEKTSV4RRFFQ69G5FAV", WorkerId: "w",
					LeaseToken: 1, Usage: &queuev1.Usage{InputTokens: -1}})
				return err
			}, codes.InvalidArgument, "USAGE_INVALID"},
		} {
			t.Run(tc.name, func(t *testing.T) { wantErr(t, tc.call(), tc.code, tc.reason) })
		}
	})
}

func TestPriorityAndRunAt(t *testing.T) {
	backends(t, func(t *testing.T, c queuev1.QueueServiceClient) {
		user, worker := as(t, "acme", "user"), as(t, "acme", "worker")
		// Far enough ahead that the six enqueues and the lease below come
		// before it on a loaded machine (700 ms was not, under a race build).
		runAt := time.Now().Add(2 * time.Second)
		delayed := mustEnqueue(t, c, user, &queuev1.EnqueueJobRequest{Priority: queuev1.Priority_PRIORITY_CRITICAL, RunAt: timestamppb.New(runAt)})
		var want []string
		for _, p := range []queuev1.Priority{queuev1.Priority_PRIORITY_LOW, queuev1.Priority_PRIORITY_NORMAL, queuev1.Priority_PRIORITY_UNSPECIFIED,
			queuev1.Priority_PRIORITY_HIGH, queuev1.Priority_PRIORITY_CRITICAL, queuev1.Priority_PRIORITY_LOW} {
			want = append(want, mustEnqueue(t, c, user, &queuev1.EnqueueJobRequest{Priority: p}))
		}
		order := []string{want[4], want[3], want[1], want[2], want[0], want[5]}
		var got []string
		for _, l := range mustLease(t, c, worker, &queuev1.LeaseJobsRequest{MaxJobs: 10}) {
			got = append(got, l.GetJob().GetJobId())
		}
		if !slices.Equal(got, order) {
			t.Fatalf("lease order %v, want %v (the delayed critical job not yet)", got, order)
		}
		if time.Now().After(runAt) {
			t.Fatal("the lease came after run_at: the check above proved nothing; raise the delay")
		}
		leases := mustLease(t, c, worker, &queuev1.LeaseJobsRequest{MaxJobs: 10, WaitMs: 5000})
		if len(leases) != 1 || leases[0].GetJob().GetJobId() != delayed {
			t.Fatalf("after waiting: %v, want the delayed job", leases)
		}
	})
}

func TestLeaseExpiryRedelivers(t *testing.T) {
	backends(t, func(t *testing.T, c queuev1.QueueServiceClient) {
		user, worker := as(t, "acme", "user"), as(t, "acme", "worker")
		id := mustEnqueue(t, c, user, &queuev1.EnqueueJobRequest{})
		first := mustLease(t, c, worker, &queuev1.LeaseJobsRequest{WorkerId: "crashing", LeaseSeconds: 1})
		if len(first) != 1 {
			t.Fatalf("first lease: %v", first)
		}
		// Another worker waits; the job comes back once the lease ends.
		start := time.Now()
		second := mustLease(t, c, worker, &queuev1.LeaseJobsRequest{WorkerId: "healthy", WaitMs: 5000})
		if len(second) != 1 || second[0].GetJob().GetJobId() != id || second[0].GetLeaseToken() != 2 || second[0].GetJob().GetAttempts() != 2 {
			t.Fatalf("redelivery = %v", second)
		}
		if waited := time.Since(start); waited < 500*time.Millisecond {
			t.Errorf("redelivered after %v, before the 1s lease ended", waited)
		}
		before, err := c.GetJob(user, &queuev1.GetJobRequest{JobId: id})
		if err != nil {
			t.Fatal(err)
		}
		_, err = complete(c, worker, first[0])
		wantErr(t, err, codes.FailedPrecondition, "LEASE_LOST")
		_, err = c.Heartbeat(worker, &queuev1.HeartbeatRequest{JobId: id, WorkerId: "crashing", LeaseToken: first[0].GetLeaseToken()})
		wantErr(t, err, codes.FailedPrecondition, "LEASE_LOST")
		_, err = c.FailJob(worker, &queuev1.FailJobRequest{JobId: id, WorkerId: "crashing", LeaseToken: 1, Error: "late"})
		wantErr(t, err, codes.FailedPrecondition, "LEASE_LOST")
		// The current token under another worker's name is refused too.
		_, err = c.CompleteJob(worker, &queuev1.CompleteJobRequest{JobId: id, WorkerId: "crashing", LeaseToken: 2})
		wantErr(t, err, codes.FailedPrecondition, "LEASE_LOST")
		after, err := c.GetJob(user, &queuev1.GetJobRequest{JobId: id})
		if err != nil || fmt.Sprint(after.GetJob()) != fmt.Sprint(before.GetJob()) {
			t.Fatalf("refused calls changed the job:\n%v\n%v", before.GetJob(), after.GetJob())
		}
		if _, err := complete(c, worker, second[0]); err != nil {
			t.Fatal(err)
		}
	})
}

func TestHeartbeatKeepsLongJob(t *testing.T) {
	backends(t, func(t *testing.T, c queuev1.QueueServiceClient) {
		user, worker := as(t, "acme", "user"), as(t, "acme", "worker")
		id := mustEnqueue(t, c, user, &queuev1.EnqueueJobRequest{})
		l := mustLease(t, c, worker, &queuev1.LeaseJobsRequest{WorkerId: "slow", LeaseSeconds: 1})[0]
		stolen := make(chan []*queuev1.Lease, 1)
		go func() {
			res, err := c.LeaseJobs(worker, &queuev1.LeaseJobsRequest{WorkerId: "thief", WaitMs: 3500})
			if err != nil {
				t.Error(err)
			}
			stolen <- res.GetLeases()
		}()
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) {
			time.Sleep(300 * time.Millisecond)
			hb, err := c.Heartbeat(worker, &queuev1.HeartbeatRequest{JobId: id, WorkerId: "slow", LeaseToken: l.GetLeaseToken()})
			if err != nil {
				t.Fatal(err)
			}
			if hb.GetCancelled() || !hb.GetLeaseExpireTime().AsTime().After(time.Now().Add(500*time.Millisecond)) {
				t.Fatalf("heartbeat = %v, want the lease extended by a second", hb)
			}
		}
		if _, err := complete(c, worker, l); err != nil {
			t.Fatalf("complete after 3s of heartbeats: %v", err)
		}
		if got := <-stolen; len(got) != 0 {
			t.Fatalf("a heartbeated job was leased to another worker: %v", got)
		}
	})
}

func TestRetriesReachDead(t *testing.T) {
	backends(t, func(t *testing.T, c queuev1.QueueServiceClient) {
		user, worker := as(t, "acme", "user"), as(t, "acme", "worker")
		id := mustEnqueue(t, c, user, &queuev1.EnqueueJobRequest{MaxAttempts: 3})
		for attempt := int32(1); attempt <= 3; attempt++ {
			leases := mustLease(t, c, worker, &queuev1.LeaseJobsRequest{WaitMs: 5000})
			if len(leases) != 1 || leases[0].GetJob().GetAttempts() != attempt {
				t.Fatalf("attempt %d: %v", attempt, leases)
			}
			res, err := c.FailJob(worker, &queuev1.FailJobRequest{
				JobId: id, WorkerId: "w1", LeaseToken: leases[0].GetLeaseToken(), Error: "timeout", Retryable: true,
			})
			if err != nil {
				t.Fatal(err)
			}
			want := queuev1.JobStatus_JOB_STATUS_FAILED
			if attempt == 3 {
				want = queuev1.JobStatus_JOB_STATUS_DEAD
			}
			if res.GetJob().GetStatus() != want || res.GetJob().GetLastError() != "timeout" {
				t.Fatalf("attempt %d: %v, want %s", attempt, res.GetJob(), want)
			}
		}
		if st := mustStatus(t, c, user); st.GetDead() != 1 || st.GetFailed() != 0 {
			t.Fatalf("status = %v", st)
		}
		other := mustEnqueue(t, c, user, &queuev1.EnqueueJobRequest{MaxAttempts: 10})
		l := mustLease(t, c, worker, &queuev1.LeaseJobsRequest{})[0]
		res, err := c.FailJob(worker, &queuev1.FailJobRequest{JobId: other, WorkerId: "w1", LeaseToken: l.GetLeaseToken(), Error: "bad input"})
		if err != nil || res.GetJob().GetStatus() != queuev1.JobStatus_JOB_STATUS_DEAD || res.GetJob().GetAttempts() != 1 {
			t.Fatalf("non-retryable failure = %v, %v; want dead at once", res, err)
		}
	}, "--retry-backoff-base=20ms", "--retry-backoff-cap=50ms", "--lease-poll-interval=10ms")
}

func TestCancel(t *testing.T) {
	backends(t, func(t *testing.T, c queuev1.QueueServiceClient) {
		user, worker := as(t, "acme", "user"), as(t, "acme", "worker")
		queued := mustEnqueue(t, c, user, &queuev1.EnqueueJobRequest{Priority: queuev1.Priority_PRIORITY_CRITICAL})
		running := mustEnqueue(t, c, user, &queuev1.EnqueueJobRequest{})
		res, err := c.CancelJob(user, &queuev1.CancelJobRequest{JobId: queued})
		if err != nil || res.GetJob().GetStatus() != queuev1.JobStatus_JOB_STATUS_CANCELLED {
			t.Fatalf("cancel queued = %v, %v", res, err)
		}
		leases := mustLease(t, c, worker, &queuev1.LeaseJobsRequest{MaxJobs: 10})
		if len(leases) != 1 || leases[0].GetJob().GetJobId() != running {
			t.Fatalf("leased %v: a cancelled job must never run", leases)
		}
		if _, err := c.CancelJob(user, &queuev1.CancelJobRequest{JobId: running}); err != nil {
			t.Fatal(err)
		}
		hb, err := c.Heartbeat(worker, &queuev1.HeartbeatRequest{JobId: running, WorkerId: "w1", LeaseToken: leases[0].GetLeaseToken()})
		if err != nil || !hb.GetCancelled() {
			t.Fatalf("heartbeat of a cancelled job = %v, %v; want cancelled", hb, err)
		}
		_, err = complete(c, worker, leases[0])
		wantErr(t, err, codes.FailedPrecondition, "JOB_CANCELLED")
		_, err = c.FailJob(worker, &queuev1.FailJobRequest{JobId: running, WorkerId: "w1", LeaseToken: leases[0].GetLeaseToken(), Error: "stopped"})
		wantErr(t, err, codes.FailedPrecondition, "JOB_CANCELLED")
		if res, err := c.CancelJob(user, &queuev1.CancelJobRequest{JobId: running}); err != nil || res.GetJob().GetStatus() != queuev1.JobStatus_JOB_STATUS_CANCELLED {
			t.Fatalf("second cancel = %v, %v; want the cancelled job", res, err)
		}

		done := mustEnqueue(t, c, user, &queuev1.EnqueueJobRequest{})
		if _, err := complete(c, worker, mustLease(t, c, worker, &queuev1.LeaseJobsRequest{})[0]); err != nil {
			t.Fatal(err)
		}
		_, err = c.CancelJob(user, &queuev1.CancelJobRequest{JobId: done})
		wantErr(t, err, codes.FailedPrecondition, "JOB_FINISHED")
		if st := mustStatus(t, c, user); st.GetCancelled() != 2 || st.GetCompleted() != 1 {
			t.Fatalf("status = %v", st)
		}
	})
}

// TestTenantIsolation: tokens of acme never lease, see, complete or cancel
// globex's jobs.
func TestTenantIsolation(t *testing.T) {
	backends(t, func(t *testing.T, c queuev1.QueueServiceClient) {
		acme, acmeWorker := as(t, "acme", "user"), as(t, "acme", "worker")
		globex, globexWorker := as(t, "globex", "user"), as(t, "globex", "worker")
		theirs := mustEnqueue(t, c, globex, &queuev1.EnqueueJobRequest{Type: "data_sync"})

		if got := mustLease(t, c, acmeWorker, &queuev1.LeaseJobsRequest{MaxJobs: 100, WaitMs: 100}); len(got) != 0 {
			t.Fatalf("acme's worker leased %v", got)
		}
		_, err := c.GetJob(acme, &queuev1.GetJobRequest{JobId: theirs})
		wantErr(t, err, codes.NotFound, "JOB_NOT_FOUND")
		_, err = c.CancelJob(acme, &queuev1.CancelJobRequest{JobId: theirs})
		wantErr(t, err, codes.NotFound, "JOB_NOT_FOUND")
		if list, err := c.ListJobs(acme, &queuev1.ListJobsRequest{}); err != nil || len(list.GetJobs()) != 0 {
			t.Fatalf("acme's list = %v, %v", list, err)
		}
		if st := mustStatus(t, c, acme); st.GetTotalJobs() != 0 || len(st.GetByType()) != 0 {
			t.Fatalf("acme's status = %v", st)
		}
		l := mustLease(t, c, globexWorker, &queuev1.LeaseJobsRequest{})[0]
		_, err = complete(c, acmeWorker, l)
		wantErr(t, err, codes.NotFound, "JOB_NOT_FOUND")
		_, err = c.Heartbeat(acmeWorker, &queuev1.HeartbeatRequest{JobId: theirs, WorkerId: "w1", LeaseToken: l.GetLeaseToken()})
		wantErr(t, err, codes.NotFound, "JOB_NOT_FOUND")
		// Naming the other tenant is refused before the handler.
		_, err = c.GetJob(withTenant(acme, "globex"), &queuev1.GetJobRequest{JobId: theirs})
		wantErr(t, err, codes.PermissionDenied, "CROSS_TENANT_DENIED")
		_, err = c.LeaseJobs(withTenant(acmeWorker, "globex"), &queuev1.LeaseJobsRequest{WorkerId: "w"})
		wantErr(t, err, codes.PermissionDenied, "CROSS_TENANT_DENIED")

		if _, err := complete(c, globexWorker, l); err != nil {
			t.Fatal(err)
		}
		// A platform admin may read across tenants, not write.
		admin := withTenant(as(t, "default", "admin"), "globex")
		if got, err := c.GetJob(admin, &queuev1.GetJobRequest{JobId: theirs}); err != nil || got.GetJob().GetStatus() != queuev1.JobStatus_JOB_STATUS_COMPLETED {
			t.Fatalf("admin read = %v, %v", got, err)
		}
		_, err = c.CancelJob(admin, &queuev1.CancelJobRequest{JobId: theirs})
		wantErr(t, err, codes.PermissionDenied, "CROSS_TENANT_DENIED")
	})
}

func TestIdempotentEnqueueRacers(t *testing.T) {
	backends(t, func(t *testing.T, c queuev1.QueueServiceClient) {
		user := as(t, "acme", "user")
		const racers = 32
		var wg sync.WaitGroup
		ids := make([]string, racers)
		dups := make([]bool, racers)
		for i := range racers {
			wg.Go(func() {
				res, err := c.EnqueueJob(user, &queuev1.EnqueueJobRequest{Type: "ai_task", IdempotencyKey: "order-42"})
				if err != nil {
					t.Error(err)
					return
				}
				ids[i], dups[i] = res.GetJobId(), res.GetDuplicate()
			})
		}
		wg.Wait()
		fresh := 0
		for i := range racers {
			if ids[i] != ids[0] {
				t.Fatalf("racers got jobs %s and %s", ids[0], ids[i])
			}
			if !dups[i] {
				fresh++
			}
		}
		if st := mustStatus(t, c, user); st.GetTotalJobs() != 1 || fresh != 1 {
			t.Fatalf("%d jobs, %d answers not marked duplicate; want 1 and 1", st.GetTotalJobs(), fresh)
		}
	})
}

func TestListPaginates(t *testing.T) {
	backends(t, func(t *testing.T, c queuev1.QueueServiceClient) {
		user := as(t, "acme", "user")
		var all []string
		for i := range 5 {
			prio := queuev1.Priority_PRIORITY_NORMAL
			if i == 2 || i == 3 {
				prio = queuev1.Priority_PRIORITY_HIGH
			}
			all = append(all, mustEnqueue(t, c, user, &queuev1.EnqueueJobRequest{Type: []string{"ai_task", "data_sync"}[i%2], Priority: prio}))
		}
		slices.Reverse(all)
		var got []string
		token := ""
		for {
			res, err := c.ListJobs(user, &queuev1.ListJobsRequest{PageSize: 2, PageToken: token})
			if err != nil {
				t.Fatal(err)
			}
			for _, j := range res.GetJobs() {
				got = append(got, j.GetJobId())
			}
			if token = res.GetNextPageToken(); token == "" {
				break
			}
		}
		if !slices.Equal(got, all) {
			t.Fatalf("pages %v, want %v (newest first)", got, all)
		}
		res, err := c.ListJobs(user, &queuev1.ListJobsRequest{Type: "data_sync", Status: queuev1.JobStatus_JOB_STATUS_QUEUED})
		if err != nil || len(res.GetJobs()) != 2 {
			t.Fatalf("filtered list = %v, %v", res, err)
		}
		// Jobs 2 (ai_task) and 3 (data_sync) are high; the newest first.
		res, err = c.ListJobs(user, &queuev1.ListJobsRequest{Priority: queuev1.Priority_PRIORITY_HIGH})
		if err != nil || len(res.GetJobs()) != 2 || res.GetJobs()[0].GetJobId() != all[1] || res.GetJobs()[1].GetJobId() != all[2] {
			t.Fatalf("high jobs = %v, %v; want %v", res, err, all[1:3])
		}
		res, err = c.ListJobs(user, &queuev1.ListJobsRequest{Priority: queuev1.Priority_PRIORITY_HIGH, Type: "data_sync"})
		if err != nil || len(res.GetJobs()) != 1 || res.GetJobs()[0].GetJobId() != all[1] {
			t.Fatalf("high data_sync jobs = %v, %v", res, err)
		}
		_, err = c.ListJobs(user, &queuev1.ListJobsRequest{Priority: queuev1.Priority(99)})
		wantErr(t, err, codes.InvalidArgument, "PRIORITY_INVALID")
		first, err := c.ListJobs(user, &queuev1.ListJobsRequest{PageSize: 1})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.ListJobs(user, &queuev1.ListJobsRequest{PageSize: 1, Type: "ai_task", PageToken: first.GetNextPageToken()})
		wantErr(t, err, codes.InvalidArgument, "PAGE_TOKEN_INVALID")
		high, err := c.ListJobs(user, &queuev1.ListJobsRequest{PageSize: 1, Priority: queuev1.Priority_PRIORITY_HIGH})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.ListJobs(user, &queuev1.ListJobsRequest{PageSize: 1, PageToken: high.GetNextPageToken()})
		wantErr(t, err, codes.InvalidArgument, "PAGE_TOKEN_INVALID")
	})
}
