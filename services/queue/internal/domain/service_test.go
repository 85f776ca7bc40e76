package domain_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/echopilot/echopilot/platform/outbox"
	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/queue/internal/domain"
	"github.com/echopilot/echopilot/services/queue/internal/store"
)

// newService returns a Service on a fresh SQLite store. Its long polls look
// again only every 10 s unless cfg says otherwise, so a quick answer can
// only come from a wake-up.
// newStore is a migrated queue store on a fresh SQLite file.
func newStore(t *testing.T) *store.Store {
	t.Helper()
	db := storetest.Open(t, storetest.SQLite(t))
	for _, m := range []pstore.Migrations{store.Migrations, outbox.Migrations} {
		if err := db.Migrate(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	return store.New(db)
}

func newService(t *testing.T, cfg domain.Config) (*domain.Service, *domain.Wakeups) {
	t.Helper()
	st := newStore(t)
	if cfg.Poll == 0 {
		cfg.Poll = 10 * time.Second
	}
	wake := domain.NewWakeups()
	t.Cleanup(wake.Stop)
	return domain.NewService(st, wake, cfg), wake
}

func enqueue(t *testing.T, svc *domain.Service, tenant string, r domain.EnqueueRequest) domain.Job {
	t.Helper()
	if r.Type == "" {
		r.Type = "ai_task"
	}
	j, _, err := svc.Enqueue(t.Context(), tenant, r)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func TestLongPollWakesOnEnqueue(t *testing.T) {
	svc, _ := newService(t, domain.Config{})
	got := make(chan []domain.Lease, 1)
	start := time.Now()
	go func() {
		leases, err := svc.Lease(context.Background(), "acme", domain.LeaseRequest{WorkerID: "w", WaitMS: 5000})
		if err != nil {
			t.Error(err)
		}
		got <- leases
	}()
	time.Sleep(50 * time.Millisecond)
	enqueue(t, svc, "globex", domain.EnqueueRequest{}) // another tenant's job wakes nobody here
	j := enqueue(t, svc, "acme", domain.EnqueueRequest{})
	leases := <-got
	if len(leases) != 1 || leases[0].Job.ID != j.ID {
		t.Fatalf("long poll got %+v, want %s", leases, j.ID)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("long poll answered after %v: woken by polling, not by the enqueue", d)
	}
}

func TestLongPollTimesOutAndStops(t *testing.T) {
	svc, wake := newService(t, domain.Config{Poll: 20 * time.Millisecond})
	start := time.Now()
	leases, err := svc.Lease(t.Context(), "acme", domain.LeaseRequest{WorkerID: "w", WaitMS: 150})
	if err != nil || len(leases) != 0 {
		t.Fatalf("Lease = %v, %v; want none", leases, err)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 2*time.Second {
		t.Errorf("empty long poll took %v, want about 150ms", d)
	}
	// A delayed job is found by the periodic look once due.
	j := enqueue(t, svc, "acme", domain.EnqueueRequest{RunAt: time.Now().Add(100 * time.Millisecond)})
	leases, err = svc.Lease(t.Context(), "acme", domain.LeaseRequest{WorkerID: "w", WaitMS: 5000})
	if err != nil || len(leases) != 1 || leases[0].Job.ID != j.ID {
		t.Fatalf("Lease of a delayed job = %v, %v", leases, err)
	}

	done := make(chan error, 1)
	go func() {
		_, err := svc.Lease(context.Background(), "acme", domain.LeaseRequest{WorkerID: "w", WaitMS: 30000})
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	wake.Stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("long poll at shutdown = %v, want an empty answer", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("long poll still waiting after Stop")
	}

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	svc2, _ := newService(t, domain.Config{})
	if _, err := svc2.Lease(ctx, "acme", domain.LeaseRequest{WorkerID: "w", WaitMS: 5000}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("long poll past the caller's deadline = %v, want DeadlineExceeded", err)
	}
}

func TestLeaseParams(t *testing.T) {
	svc, _ := newService(t, domain.Config{})
	for _, r := range []domain.LeaseRequest{
		{},
		{WorkerID: "w\n1"},
		{WorkerID: "w", MaxJobs: 101},
		{WorkerID: "w", MaxJobs: -1},
		{WorkerID: "w", LeaseSeconds: 3601},
		{WorkerID: "w", WaitMS: 30001},
		{WorkerID: "w", WaitMS: -1},
		{WorkerID: "w", Types: make([]string, 33)},
	} {
		_, err := svc.Lease(t.Context(), "acme", r)
		wantReason(t, err, codes.InvalidArgument, domain.ReasonLeaseParamsInvalid)
	}
	_, err := svc.Lease(t.Context(), "acme", domain.LeaseRequest{WorkerID: "w", Types: []string{"ai_task", "NOPE"}})
	wantReason(t, err, codes.InvalidArgument, domain.ReasonTypeInvalid)
	_, err = svc.Heartbeat(t.Context(), "acme", domain.HeartbeatRequest{
		LeaseCall: domain.LeaseCall{JobID: "01ARZ3NDEKTSV4RRFFQ69G5FAV", WorkerID: "w"}, LeaseSeconds: -1})
	wantReason(t, err, codes.InvalidArgument, domain.ReasonLeaseParamsInvalid)
	_, err = svc.Get(t.Context(), "acme", "not-a-job-id")
	wantReason(t, err, codes.NotFound, domain.ReasonJobNotFound)
	_, _, err = svc.List(t.Context(), "acme", domain.ListRequest{Status: "done"})
	wantReason(t, err, codes.InvalidArgument, domain.ReasonStatusInvalid)
}

// TestRetriesThenDead follows one job through its attempts: each
// retryable failure waits in failed for its backoff, the last one is dead.
func TestRetriesThenDead(t *testing.T) {
	svc, _ := newService(t, domain.Config{Poll: 5 * time.Millisecond, Backoff: domain.Backoff{Base: 20 * time.Millisecond, Cap: 40 * time.Millisecond}})
	ctx := t.Context()
	j := enqueue(t, svc, "acme", domain.EnqueueRequest{MaxAttempts: 3})
	for attempt := 1; attempt <= 3; attempt++ {
		leases, err := svc.Lease(ctx, "acme", domain.LeaseRequest{WorkerID: "w", WaitMS: 2000})
		if err != nil || len(leases) != 1 || leases[0].Job.Attempts != attempt {
			t.Fatalf("attempt %d: Lease = %+v, %v", attempt, leases, err)
		}
		failedAt := time.Now()
		got, err := svc.Fail(ctx, "acme", domain.FailRequest{
			LeaseCall: domain.LeaseCall{JobID: j.ID, WorkerID: "w", Token: leases[0].Token}, Error: "upstream 503", Retryable: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		if attempt < 3 {
			step := min(20*time.Millisecond<<(attempt-1), 40*time.Millisecond)
			if got.Status != domain.StatusFailed || got.RunAt.Before(failedAt.Add(step/2-time.Millisecond)) || got.RunAt.After(time.Now().Add(step)) {
				t.Errorf("attempt %d: %s until %v (failed at %v), want failed for %v to %v", attempt, got.Status, got.RunAt, failedAt, step/2, step)
			}
		} else if got.Status != domain.StatusDead || got.LastError != "upstream 503" {
			t.Errorf("after the last attempt: %+v, want dead", got)
		}
	}
	k := enqueue(t, svc, "acme", domain.EnqueueRequest{MaxAttempts: 5})
	leases, err := svc.Lease(ctx, "acme", domain.LeaseRequest{WorkerID: "w"})
	if err != nil || len(leases) != 1 {
		t.Fatal(leases, err)
	}
	got, err := svc.Fail(ctx, "acme", domain.FailRequest{
		LeaseCall: domain.LeaseCall{JobID: k.ID, WorkerID: "w", Token: leases[0].Token}, Error: "bad input\x00", Retryable: false,
	})
	if err != nil || got.Status != domain.StatusDead || got.Attempts != 1 || got.LastError != "bad input\uFFFD" {
		t.Errorf("non-retryable failure = %+v, %v; want dead after 1 attempt", got, err)
	}
}

func TestReaperCountsAndWakes(t *testing.T) {
	var expired atomic.Int64
	svc, _ := newService(t, domain.Config{Hooks: domain.Hooks{LeasesExpired: func(n int) { expired.Add(int64(n)) }}})
	ctx := t.Context()
	enqueue(t, svc, "acme", domain.EnqueueRequest{})
	if _, err := svc.Lease(ctx, "acme", domain.LeaseRequest{WorkerID: "w", LeaseSeconds: 1}); err != nil {
		t.Fatal(err)
	}
	got := make(chan []domain.Lease, 1)
	go func() {
		// Waits for the reaper: its own look found the lease still live.
		leases, _ := svc.Lease(context.Background(), "acme", domain.LeaseRequest{WorkerID: "w2", WaitMS: 5000})
		got <- leases
	}()
	time.Sleep(1100 * time.Millisecond)
	if n, err := svc.ReapExpiredLeases(ctx); err != nil || n != 1 {
		t.Fatalf("ReapExpiredLeases = %d, %v; want 1", n, err)
	}
	select {
	case leases := <-got:
		if len(leases) != 1 || leases[0].Token != 2 {
			t.Errorf("redelivered %+v, want the job under token 2", leases)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the reaper did not wake the waiting worker")
	}
	if expired.Load() != 1 {
		t.Errorf("expiries counted %d, want 1", expired.Load())
	}
}

func TestQueueStatusCountsEveryStatus(t *testing.T) {
	svc, _ := newService(t, domain.Config{})
	enqueue(t, svc, "acme", domain.EnqueueRequest{Priority: "high"})
	enqueue(t, svc, "acme", domain.EnqueueRequest{Type: "report_gen"})
	st, err := svc.QueueStatus(t.Context(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	if st.Total != 2 || st.ByStatus[domain.StatusQueued] != 2 || len(st.ByStatus) != 6 || len(st.ByPriority) != 4 ||
		st.ByPriority[domain.PriorityHigh] != 1 || st.ByPriority[domain.PriorityLow] != 0 || st.ByType["report_gen"] != 1 {
		t.Errorf("status = %+v", st)
	}
}

// TestBulkIntersectsStatuses: a bulk call's statuses only narrow its
// action's; asking for others matches nothing and changes nothing, and the
// caller is recorded on what it changes.
func TestBulkIntersectsStatuses(t *testing.T) {
	svc, _ := newService(t, domain.Config{})
	ctx := t.Context()
	j := enqueue(t, svc, "acme", domain.EnqueueRequest{})
	res, err := svc.Bulk(ctx, "acme", domain.BulkRequest{Action: "retry", Statuses: []string{"queued", "processing", "completed"}, Actor: "ops"})
	if err != nil || res != (domain.BulkResult{}) {
		t.Fatalf("retry of queued jobs = %+v, %v; want nothing matched", res, err)
	}
	res, err = svc.Bulk(ctx, "acme", domain.BulkRequest{Action: "cancel", Statuses: []string{"queued", "dead"}})
	if err != nil || res != (domain.BulkResult{Matched: 1, Affected: 1}) {
		t.Fatalf("cancel = %+v, %v", res, err)
	}
	got, err := svc.Get(ctx, "acme", j.ID)
	if err != nil || got.Status != domain.StatusCancelled || got.CancelledBy != "anonymous" {
		t.Fatalf("cancelled job = %+v, %v; want cancelled by anonymous (no subject)", got, err)
	}
}
