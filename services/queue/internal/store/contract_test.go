package store_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/services/queue/internal/domain"
)

// TestContract runs the domain.Store contract on every backend, each case on
// a fresh database opened as the service's role.
func TestContract(t *testing.T) {
	runCases(t, []storeCase{
		{"enqueue and get", testEnqueueGet},
		{"priority then FIFO", testPriorityFIFO},
		{"run_at delays", testRunAt},
		{"type filter", testTypeFilter},
		{"idempotent enqueue under racers", testIdempotentRacers},
		{"enqueue batch", testEnqueueBatch},
		{"complete batch then claim", testCompleteBatchThenClaim},
		{"expired lease is redelivered", testLeaseExpiry},
		{"expired leases of the last attempt die", testExpiryDead},
		{"heartbeat extends a lease", testHeartbeat},
		{"fail retries then dies", testFail},
		{"cancel", testCancel},
		{"complete writes the outbox event", testCompleteOutbox},
		{"tenant isolation", testTenantIsolation},
		{"list and count", testListCount},
		{"reaper across tenants", testReaper},
		{"delete finished", testDeleteFinished},
		{"depth", testDepth},
		{"oldest queued", testOldestQueued},
		{"worker registry", testWorkerRegistry},
		{"worker limit", testWorkerLimit},
		{"worker tenant isolation", testWorkerIsolation},
		{"worker retention", testWorkerRetention},
		{"worker tokens", testWorkerTokens},
	})
}

func testEnqueueGet(t *testing.T, f fixture) {
	ctx := t.Context()
	at := f.t0.Add(time.Hour)
	nj := newJob("acme", createdAt(f.t0), runAt(at), prio(domain.PriorityHigh), key("k1"), maxAttempts(5),
		payload(map[string]any{"prompt": "hi", "n": 1.5}), jobType("report_gen"))
	j, dup, err := f.st.Enqueue(ctx, nj)
	if err != nil || dup {
		t.Fatalf("Enqueue = %v, duplicate %v", err, dup)
	}
	want := domain.Job{
		TenantID: "acme", ID: nj.ID, Seq: j.Seq, Type: "report_gen", Priority: domain.PriorityHigh, Status: domain.StatusQueued,
		Payload: json.RawMessage(`{"n":1.5,"prompt":"hi"}`), IdempotencyKey: "k1", MaxAttempts: 5,
		RunAt: at, CreatedAt: f.t0, UpdatedAt: f.t0,
	}
	if got := fmt.Sprintf("%+v", j); got != fmt.Sprintf("%+v", want) {
		t.Errorf("enqueued\n got %s\nwant %+v", got, want)
	}
	if got := f.get(t, "acme", nj.ID); fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Errorf("Get\n got %+v\nwant %+v", got, want)
	}
	if _, err := f.st.Get(ctx, "acme", "01ARZ3NDEKTSV4RRFFQ69G5FAV"); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("Get of a missing job = %v, want ErrNotFound", err)
	}
	if _, _, err := f.st.Enqueue(ctx, newJob("")); err == nil {
		t.Error("Enqueue without a tenant succeeded")
	}
}

// An enqueue batch is one transaction: its jobs are stored in order, its
// idempotency keys match earlier jobs and each other, and a statement that
// fails stores none of them.
func testEnqueueBatch(t *testing.T, f fixture) {
	ctx := t.Context()
	first := f.enqueue(t, "acme", key("old"))
	batch := []domain.NewJob{
		newJob("acme", createdAt(f.t0), key("a")),
		newJob("acme", createdAt(f.t0), key("old")),
		newJob("acme", createdAt(f.t0), key("a")),
		newJob("acme", createdAt(f.t0), prio(domain.PriorityCritical)),
	}
	js, dups, err := f.st.EnqueueBatch(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if len(js) != 4 || fmt.Sprint(dups) != "[false true true false]" {
		t.Fatalf("EnqueueBatch = %d jobs, duplicates %v", len(js), dups)
	}
	if js[0].ID != batch[0].ID || js[1].ID != first.ID || js[2].ID != batch[0].ID || js[3].ID != batch[3].ID ||
		js[3].Priority != domain.PriorityCritical || js[3].Status != domain.StatusQueued {
		t.Fatalf("EnqueueBatch stored %+v", js)
	}
	if got := f.get(t, "acme", batch[3].ID); got.ID != batch[3].ID {
		t.Fatalf("Get of a batch job = %+v", got)
	}
	// The second job reuses the first's id: the insert fails, and neither
	// job nor the valid one before them is stored.
	bad := []domain.NewJob{newJob("acme", key("z")), newJob("acme"), newJob("acme")}
	bad[2].ID = bad[1].ID
	if _, _, err := f.st.EnqueueBatch(ctx, bad); err == nil {
		t.Fatal("a batch with a repeated id was stored")
	}
	for _, j := range bad {
		if _, err := f.st.Get(ctx, "acme", j.ID); !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("job %s of a failed batch: %v, want ErrNotFound", j.ID, err)
		}
	}
	if _, _, err := f.st.EnqueueBatch(ctx, []domain.NewJob{newJob("acme"), newJob("globex")}); err == nil {
		t.Fatal("a batch of two tenants was stored")
	}
}

// A worker's completions and its next claim are one unit: one transaction
// (on PostgreSQL every row they wrote has the same xmin), even when the
// unit holds more ops than a shared transaction takes from other callers.
func testCompleteBatchThenClaim(t *testing.T, f fixture) {
	ctx := t.Context()
	for range 150 {
		f.enqueue(t, "acme")
	}
	leases := f.claim(t, "acme", 100, f.t0)
	b := domain.CompleteBatch{Then: &domain.Claim{TenantID: "acme", WorkerID: "w1", Max: 50, LeaseFor: 30 * time.Second, Now: f.t0}}
	for i, l := range leases {
		ref := ref(l)
		if i == 7 {
			ref.Token++ // refused alone
		}
		b.Refs = append(b.Refs, ref)
		b.Completions = append(b.Completions, domain.Completion{Result: json.RawMessage(`{}`), Now: f.t0})
	}
	res, err := f.st.CompleteBatch(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	for i, err := range res.Errs {
		switch {
		case i == 7 && !errors.Is(err, domain.ErrConflict):
			t.Fatalf("completion with a stale token: %v, want ErrConflict", err)
		case i != 7 && (err != nil || res.Jobs[i].Status != domain.StatusCompleted):
			t.Fatalf("completion %d: %+v, %v", i, res.Jobs[i], err)
		}
	}
	if len(res.Leases) != 50 {
		t.Fatalf("claimed %d after the completions, want 50", len(res.Leases))
	}
	if f.db.Dialect != pstore.Postgres {
		return
	}
	ids := make([]string, 0, 149)
	for i, j := range res.Jobs {
		if i != 7 {
			ids = append(ids, j.ID)
		}
	}
	for _, l := range res.Leases {
		ids = append(ids, l.Job.ID)
	}
	var txs int
	if err := f.owner.QueryRowContext(ctx, `SELECT count(DISTINCT xmin::text) FROM jobs WHERE id = ANY($1)`, ids).Scan(&txs); err != nil {
		t.Fatal(err)
	}
	if txs != 1 {
		t.Fatalf("the completions and the claim were written by %d transactions, want 1", txs)
	}
}

func testPriorityFIFO(t *testing.T, f fixture) {
	// Enqueued interleaved; within a priority in this order.
	var want [4][]string
	for i := range 12 {
		p := []domain.Priority{domain.PriorityLow, domain.PriorityNormal, domain.PriorityCritical, domain.PriorityHigh}[i%4]
		j := f.enqueue(t, "acme", prio(p))
		want[p] = append(want[p], j.ID)
	}
	// An older job of normal priority goes before the normal ones above
	// (FIFO is by availability), but not before higher priorities.
	old := f.enqueue(t, "acme", runAt(f.t0.Add(-time.Minute)))
	want[domain.PriorityNormal] = append([]string{old.ID}, want[domain.PriorityNormal]...)
	order := slices.Concat(want[0][:], want[1][:], want[2][:], want[3][:])

	now := f.t0.Add(time.Second)
	var got []string
	// Batch boundaries fall inside priorities: the order must come from the
	// claim, not from sorting a batch afterwards.
	for _, n := range []int{1, 5, 1, 100} {
		got = append(got, ids(f.claim(t, "acme", n, now))...)
	}
	if !slices.Equal(got, order) {
		t.Errorf("claim order\n got %v\nwant %v", got, order)
	}
	if rest := f.claim(t, "acme", 10, now); len(rest) != 0 {
		t.Errorf("claimed %d more, want none", len(rest))
	}
}

func testRunAt(t *testing.T, f fixture) {
	later := f.enqueue(t, "acme", runAt(f.t0.Add(time.Minute)), prio(domain.PriorityCritical))
	now := f.enqueue(t, "acme", prio(domain.PriorityLow))
	if got := ids(f.claim(t, "acme", 10, f.t0.Add(59*time.Second))); !slices.Equal(got, []string{now.ID}) {
		t.Errorf("before run_at claimed %v, want only %s", got, now.ID)
	}
	if got := ids(f.claim(t, "acme", 10, f.t0.Add(time.Minute))); !slices.Equal(got, []string{later.ID}) {
		t.Errorf("at run_at claimed %v, want %s", got, later.ID)
	}
}

func testTypeFilter(t *testing.T, f fixture) {
	a := f.enqueue(t, "acme", jobType("ai_task"))
	s := f.enqueue(t, "acme", jobType("data_sync"))
	r := f.enqueue(t, "acme", jobType("report_gen"))
	onlySync := func(c *domain.Claim) { c.Types = []string{"data_sync", "nothing"} }
	if got := ids(f.claim(t, "acme", 10, f.t0, onlySync)); !slices.Equal(got, []string{s.ID}) {
		t.Errorf("typed claim = %v, want %s", got, s.ID)
	}
	if got := ids(f.claim(t, "acme", 10, f.t0)); !slices.Equal(got, []string{a.ID, r.ID}) {
		t.Errorf("untyped claim = %v, want %v", got, []string{a.ID, r.ID})
	}
}

func testIdempotentRacers(t *testing.T, f fixture) {
	const racers = 32
	var wg sync.WaitGroup
	type result struct {
		id  string
		dup bool
		err error
	}
	results := make(chan result, racers)
	start := make(chan struct{})
	for i := range racers {
		wg.Go(func() {
			<-start
			j, dup, err := f.st.Enqueue(t.Context(), newJob("acme", key("same"), payload(map[string]any{"racer": i})))
			results <- result{j.ID, dup, err}
		})
	}
	close(start)
	wg.Wait()
	close(results)
	ids := map[string]bool{}
	fresh := 0
	for r := range results {
		if r.err != nil {
			t.Fatal(r.err)
		}
		ids[r.id] = true
		if !r.dup {
			fresh++
		}
	}
	if len(ids) != 1 || fresh != 1 {
		t.Errorf("%d racers got %d distinct jobs, %d not duplicates; want 1 and 1", racers, len(ids), fresh)
	}
	// The key is per tenant; no key means no deduplication.
	f.enqueue(t, "globex", key("same"))
	f.enqueue(t, "acme")
	f.enqueue(t, "acme")
	counts := map[string]int64{}
	for _, tenant := range []string{"acme", "globex"} {
		cs, err := f.st.Counts(t.Context(), tenant)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			counts[tenant] += c.N
		}
	}
	if counts["acme"] != 3 || counts["globex"] != 1 {
		t.Errorf("job counts = %v, want acme 3, globex 1", counts)
	}
}

func testLeaseExpiry(t *testing.T, f fixture) {
	ctx := t.Context()
	j := f.enqueue(t, "acme")
	short := func(c *domain.Claim) { c.LeaseFor = time.Second }
	first := f.claim(t, "acme", 1, f.t0, short)
	if len(first) != 1 || first[0].Token != 1 || first[0].Job.Attempts != 1 || first[0].Job.Status != domain.StatusProcessing ||
		!first[0].Job.LeaseExpiresAt.Equal(f.t0.Add(time.Second)) || first[0].Job.LeaseSeconds != 1 {
		t.Fatalf("first lease = %+v", first)
	}
	if again := f.claim(t, "acme", 1, f.t0.Add(999*time.Millisecond)); len(again) != 0 {
		t.Fatalf("claimed a job with a live lease: %+v", again)
	}
	// The claim itself requeues the expired lease: no reaper needed.
	second, exp, err := f.st.Claim(ctx, domain.Claim{TenantID: "acme", WorkerID: "w2", Max: 1, LeaseFor: time.Minute, Now: f.t0.Add(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if len(second) != 1 || second[0].Job.ID != j.ID || second[0].Token != 2 || second[0].Job.Attempts != 2 ||
		second[0].Job.WorkerID != "w2" || exp != (domain.Expiry{Requeued: 1}) {
		t.Fatalf("second lease = %+v, expiry %+v", second, exp)
	}
	before := f.get(t, "acme", j.ID)
	stale := ref(first[0])
	done := f.t0.Add(2 * time.Second)
	cur, err := f.st.Complete(ctx, stale, domain.Completion{Result: json.RawMessage(`{}`), Now: done})
	wantConflict(t, err, cur, domain.StatusProcessing)
	cur, err = f.st.Heartbeat(ctx, stale, time.Minute, done)
	wantConflict(t, err, cur, domain.StatusProcessing)
	cur, err = f.st.Fail(ctx, stale, func(domain.Job) domain.Retry {
		t.Error("decide called for a stale lease")
		return domain.Retry{Dead: true}
	})
	wantConflict(t, err, cur, domain.StatusProcessing)
	// Right token, wrong worker: refused too.
	impostor := ref(second[0])
	impostor.WorkerID = "w1"
	cur, err = f.st.Complete(ctx, impostor, domain.Completion{Result: json.RawMessage(`{}`), Now: done})
	wantConflict(t, err, cur, domain.StatusProcessing)
	if after := f.get(t, "acme", j.ID); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("refused calls changed the job:\n%+v\n%+v", before, after)
	}
	if rows := f.outboxRows(t); len(rows) != 0 {
		t.Errorf("refused completions wrote %v", rows)
	}
	got, err := f.st.Complete(ctx, ref(second[0]), domain.Completion{Result: json.RawMessage(`{"ok":true}`), Now: done})
	if err != nil || got.Status != domain.StatusCompleted || string(got.Result) != `{"ok":true}` || !got.LeaseExpiresAt.IsZero() {
		t.Errorf("current lease's Complete = %+v, %v", got, err)
	}
}

func testExpiryDead(t *testing.T, f fixture) {
	j := f.enqueue(t, "acme", maxAttempts(2))
	short := func(c *domain.Claim) { c.LeaseFor = time.Second }
	for i := range 2 {
		if got := f.claim(t, "acme", 1, f.t0.Add(time.Duration(i)*time.Second), short); len(got) != 1 {
			t.Fatalf("attempt %d not leased", i+1)
		}
	}
	leases, exp, err := f.st.Claim(t.Context(), domain.Claim{TenantID: "acme", WorkerID: "w", Max: 1, LeaseFor: time.Second, Now: f.t0.Add(2 * time.Second)})
	if err != nil || len(leases) != 0 || exp != (domain.Expiry{Dead: 1}) {
		t.Fatalf("claim after the last attempt expired = %v, %+v, %v; want none, 1 dead", ids(leases), exp, err)
	}
	if got := f.get(t, "acme", j.ID); got.Status != domain.StatusDead || got.Attempts != 2 || got.LastError != "lease expired" {
		t.Errorf("job = %+v, want dead after 2 attempts", got)
	}
}

func testHeartbeat(t *testing.T, f fixture) {
	ctx := t.Context()
	f.enqueue(t, "acme")
	l := f.claim(t, "acme", 1, f.t0, func(c *domain.Claim) { c.LeaseFor = 10 * time.Second })[0]
	// 0 renews by the leased length, from now.
	j, err := f.st.Heartbeat(ctx, ref(l), 0, f.t0.Add(8*time.Second))
	if err != nil || !j.LeaseExpiresAt.Equal(f.t0.Add(18*time.Second)) || j.LeaseSeconds != 10 {
		t.Fatalf("Heartbeat(0) = %v (lease %d s), %v; want until +18s", j.LeaseExpiresAt, j.LeaseSeconds, err)
	}
	if got := f.claim(t, "acme", 1, f.t0.Add(17*time.Second)); len(got) != 0 {
		t.Fatal("a heartbeated lease was taken")
	}
	j, err = f.st.Heartbeat(ctx, ref(l), 3*time.Second, f.t0.Add(17*time.Second))
	if err != nil || !j.LeaseExpiresAt.Equal(f.t0.Add(20*time.Second)) {
		t.Fatalf("Heartbeat(3s) = %v, %v; want until +20s", j.LeaseExpiresAt, err)
	}
	if got := f.claim(t, "acme", 1, f.t0.Add(20*time.Second)); len(got) != 1 || got[0].Token != 2 {
		t.Fatalf("after the lease ran out: %+v", got)
	}
	_, err = f.st.Heartbeat(ctx, ref(l), 0, f.t0.Add(21*time.Second))
	if !errors.Is(err, domain.ErrConflict) {
		t.Errorf("stale heartbeat = %v, want ErrConflict", err)
	}
	if _, err := f.st.Heartbeat(ctx, domain.LeaseRef{TenantID: "acme", JobID: "nope", WorkerID: "w1", Token: 1}, 0, f.t0); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("heartbeat of a missing job = %v, want ErrNotFound", err)
	}
}

func testFail(t *testing.T, f fixture) {
	ctx := t.Context()
	j := f.enqueue(t, "acme", maxAttempts(2))
	l := f.claim(t, "acme", 1, f.t0)[0]
	retryAt := f.t0.Add(time.Minute)
	var seen domain.Job
	got, err := f.st.Fail(ctx, ref(l), func(cur domain.Job) domain.Retry {
		seen = cur
		return domain.Retry{RunAt: retryAt, Error: "boom", Now: f.t0.Add(time.Second)}
	})
	if err != nil || got.Status != domain.StatusFailed || !got.RunAt.Equal(retryAt) || got.LastError != "boom" || !got.LeaseExpiresAt.IsZero() {
		t.Fatalf("Fail (retry) = %+v, %v", got, err)
	}
	if seen.Attempts != 1 || seen.Status != domain.StatusProcessing {
		t.Errorf("decide saw %+v, want the processing job after 1 attempt", seen)
	}
	if again := f.claim(t, "acme", 1, retryAt.Add(-time.Millisecond)); len(again) != 0 {
		t.Fatal("a failed job was leased before its retry time")
	}
	l = f.claim(t, "acme", 1, retryAt)[0]
	if l.Job.ID != j.ID || l.Job.Attempts != 2 {
		t.Fatalf("retry lease = %+v", l.Job)
	}
	got, err = f.st.Fail(ctx, ref(l), func(cur domain.Job) domain.Retry {
		return domain.Retry{Dead: true, Error: "still boom", Now: retryAt.Add(time.Second)}
	})
	if err != nil || got.Status != domain.StatusDead || got.LastError != "still boom" || !got.RunAt.Equal(retryAt) {
		t.Fatalf("Fail (dead) = %+v, %v", got, err)
	}
	cur, err := f.st.Fail(ctx, ref(l), func(domain.Job) domain.Retry { return domain.Retry{Dead: true} })
	wantConflict(t, err, cur, domain.StatusDead)
}

func testCancel(t *testing.T, f fixture) {
	ctx := t.Context()
	queued := f.enqueue(t, "acme", prio(domain.PriorityCritical))
	running := f.enqueue(t, "acme")
	c, err := f.cancel(ctx, "acme", queued.ID, f.t0.Add(time.Second))
	if err != nil || c.Status != domain.StatusCancelled {
		t.Fatalf("Cancel(queued) = %+v, %v", c, err)
	}
	l := f.claim(t, "acme", 10, f.t0.Add(time.Second))
	if len(l) != 1 || l[0].Job.ID != running.ID {
		t.Fatalf("claimed %v, want only %s: a cancelled job never runs", ids(l), running.ID)
	}
	c, err = f.cancel(ctx, "acme", running.ID, f.t0.Add(2*time.Second))
	if err != nil || c.Status != domain.StatusCancelled || c.WorkerID != "w1" || c.LeaseToken != l[0].Token {
		t.Fatalf("Cancel(processing) = %+v, %v; want cancelled keeping the lease's worker and token", c, err)
	}
	cur, err := f.st.Heartbeat(ctx, ref(l[0]), 0, f.t0.Add(3*time.Second))
	wantConflict(t, err, cur, domain.StatusCancelled)
	if cur.WorkerID != "w1" || cur.LeaseToken != l[0].Token {
		t.Errorf("heartbeat sees %+v; the worker must be able to tell it is its own lease", cur)
	}
	cur, err = f.st.Complete(ctx, ref(l[0]), domain.Completion{Result: json.RawMessage(`{}`), Now: f.t0.Add(3 * time.Second)})
	wantConflict(t, err, cur, domain.StatusCancelled)
	if rows := f.outboxRows(t); len(rows) != 0 {
		t.Errorf("a refused completion wrote %v", rows)
	}
	// Expired leases of cancelled jobs are not requeued.
	if got := f.claim(t, "acme", 10, f.t0.Add(time.Hour)); len(got) != 0 {
		t.Errorf("cancelled job leased again: %v", ids(got))
	}
	cur, err = f.cancel(ctx, "acme", running.ID, f.t0.Add(4*time.Second))
	wantConflict(t, err, cur, domain.StatusCancelled)

	done := f.enqueue(t, "acme")
	l = f.claim(t, "acme", 1, f.t0.Add(5*time.Second))
	if _, err := f.st.Complete(ctx, ref(l[0]), domain.Completion{Result: json.RawMessage(`{}`), Now: f.t0.Add(5 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	cur, err = f.cancel(ctx, "acme", done.ID, f.t0.Add(6*time.Second))
	wantConflict(t, err, cur, domain.StatusCompleted)
	if _, err := f.cancel(ctx, "acme", "01ARZ3NDEKTSV4RRFFQ69G5FAV", f.t0); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("Cancel of a missing job = %v, want ErrNotFound", err)
	}
}

func testCompleteOutbox(t *testing.T, f fixture) {
	j := f.enqueue(t, "acme")
	l := f.claim(t, "acme", 1, f.t0)[0]
	at := f.t0.Add(1500 * time.Millisecond)
	usage := domain.Usage{Model: "gpt-4o-mini", InputTokens: 120, OutputTokens: 30, DurationMS: 850}
	got, err := f.st.Complete(t.Context(), ref(l), domain.Completion{Result: json.RawMessage(`{"answer":42}`), Usage: usage, Now: at})
	if err != nil || got.Usage != usage || !got.UpdatedAt.Equal(at) {
		t.Fatalf("Complete = %+v, %v", got, err)
	}
	want := fmt.Sprintf(`queue.job.completed %s acme {"job_id":%q,"tenant_id":"acme","type":"ai_task",`+
		`"usage":{"model":"gpt-4o-mini","input_tokens":120,"output_tokens":30,"duration_ms":850},"completed_at":%q}`,
		j.ID, j.ID, at.Format(time.RFC3339Nano))
	if rows := f.outboxRows(t); !slices.Equal(rows, []string{want}) {
		t.Errorf("outbox\n got %v\nwant [%s]", rows, want)
	}
	// A second completion by the same lease is refused and writes nothing.
	cur, err := f.st.Complete(t.Context(), ref(l), domain.Completion{Result: json.RawMessage(`{}`), Now: at})
	wantConflict(t, err, cur, domain.StatusCompleted)
	if rows := f.outboxRows(t); len(rows) != 1 {
		t.Errorf("outbox has %d rows after a refused completion, want 1", len(rows))
	}
}

// testTenantIsolation: a tenant-scoped call never touches another tenant's
// jobs, on SQLite through the WHERE clauses alone.
func testTenantIsolation(t *testing.T, f fixture) {
	ctx := t.Context()
	a := f.enqueue(t, "acme", key("k"))
	if got := f.claim(t, "globex", 10, f.t0); len(got) != 0 {
		t.Fatalf("globex leased acme's jobs: %v", ids(got))
	}
	if _, err := f.st.Get(ctx, "globex", a.ID); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("globex Get(acme's job) = %v, want ErrNotFound", err)
	}
	if js, err := f.st.List(ctx, domain.ListFilter{TenantID: "globex", Limit: 10}); err != nil || len(js) != 0 {
		t.Errorf("globex List = %d jobs, %v", len(js), err)
	}
	if cs, err := f.st.Counts(ctx, "globex"); err != nil || len(cs) != 0 {
		t.Errorf("globex Counts = %v, %v", cs, err)
	}
	if _, err := f.cancel(ctx, "globex", a.ID, f.t0); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("globex Cancel(acme's job) = %v, want ErrNotFound", err)
	}
	l := f.claim(t, "acme", 1, f.t0)[0]
	foreign := ref(l)
	foreign.TenantID = "globex"
	if _, err := f.st.Complete(ctx, foreign, domain.Completion{Result: json.RawMessage(`{}`), Now: f.t0}); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("globex Complete(acme's lease) = %v, want ErrNotFound", err)
	}
	if _, err := f.st.Heartbeat(ctx, foreign, 0, f.t0); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("globex Heartbeat(acme's lease) = %v, want ErrNotFound", err)
	}
	if _, err := f.st.Fail(ctx, foreign, func(domain.Job) domain.Retry { return domain.Retry{Dead: true} }); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("globex Fail(acme's lease) = %v, want ErrNotFound", err)
	}
	if got := f.get(t, "acme", a.ID); got.Status != domain.StatusProcessing || got.LeaseToken != 1 {
		t.Errorf("acme's job after globex's attempts: %+v", got)
	}
	// Same idempotency key in another tenant is another job.
	if j, dup, err := f.st.Enqueue(ctx, newJob("globex", key("k"))); err != nil || dup || j.ID == a.ID {
		t.Errorf("globex enqueue with acme's key = %s, duplicate %v, %v", j.ID, dup, err)
	}
}

func testListCount(t *testing.T, f fixture) {
	ctx := t.Context()
	var all []string
	for i := range 7 {
		typ := []string{"ai_task", "data_sync"}[i%2]
		all = append(all, f.enqueue(t, "acme", jobType(typ), prio(domain.Priority(i%4))).ID)
	}
	slices.Reverse(all)
	f.enqueue(t, "globex")
	var pages [][]string
	before := ""
	for range 5 {
		js, err := f.st.List(ctx, domain.ListFilter{TenantID: "acme", BeforeID: before, Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		if len(js) == 0 {
			break
		}
		var page []string
		for _, j := range js {
			page = append(page, j.ID)
		}
		pages = append(pages, page)
		before = page[len(page)-1]
	}
	if want := [][]string{all[:3], all[3:6], all[6:]}; fmt.Sprint(pages) != fmt.Sprint(want) {
		t.Errorf("pages = %v, want %v (newest first)", pages, want)
	}
	// Two processing, one of them completed.
	ls := f.claim(t, "acme", 2, f.t0)
	if _, err := f.st.Complete(ctx, ref(ls[0]), domain.Completion{Result: json.RawMessage(`{}`), Now: f.t0}); err != nil {
		t.Fatal(err)
	}
	js, err := f.st.List(ctx, domain.ListFilter{TenantID: "acme", Status: domain.StatusQueued, Type: "ai_task", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range js {
		if j.Status != domain.StatusQueued || j.Type != "ai_task" {
			t.Errorf("filtered list returned %s %s", j.Status, j.Type)
		}
	}
	cs, err := f.st.Counts(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	byStatus, byType, byPrio, total := map[domain.Status]int64{}, map[string]int64{}, map[domain.Priority]int64{}, int64(0)
	for _, c := range cs {
		byStatus[c.Status] += c.N
		byType[c.Type] += c.N
		byPrio[c.Priority] += c.N
		total += c.N
	}
	if total != 7 || byStatus[domain.StatusQueued] != 5 || byStatus[domain.StatusProcessing] != 1 || byStatus[domain.StatusCompleted] != 1 ||
		byType["ai_task"] != 4 || byType["data_sync"] != 3 || byPrio[domain.PriorityCritical] != 2 || byPrio[domain.PriorityLow] != 1 {
		t.Errorf("counts: total %d, by status %v, by type %v, by priority %v", total, byStatus, byType, byPrio)
	}
	if n := int64(len(js)); n != byStatus[domain.StatusQueued]-queuedOfType(cs, "data_sync") {
		t.Errorf("filtered list has %d jobs, counts say %d", n, byStatus[domain.StatusQueued]-queuedOfType(cs, "data_sync"))
	}
}

func queuedOfType(cs []domain.Count, typ string) int64 {
	var n int64
	for _, c := range cs {
		if c.Status == domain.StatusQueued && c.Type == typ {
			n += c.N
		}
	}
	return n
}

func testReaper(t *testing.T, f fixture) {
	ctx := t.Context()
	short := func(c *domain.Claim) { c.LeaseFor = time.Second }
	for _, tenant := range []string{"acme", "globex", "initech"} {
		f.enqueue(t, tenant)
		f.enqueue(t, tenant, maxAttempts(1))
	}
	f.claim(t, "acme", 2, f.t0, short)
	f.claim(t, "globex", 2, f.t0, short)
	f.claim(t, "initech", 2, f.t0) // 30 s lease
	tenants, err := f.st.TenantsWithExpiredLeases(ctx, f.t0.Add(time.Second))
	if err != nil || !slices.Equal(tenants, []string{"acme", "globex"}) {
		t.Fatalf("TenantsWithExpiredLeases = %v, %v; want [acme globex]", tenants, err)
	}
	e, err := f.st.ExpireLeases(ctx, "acme", f.t0.Add(time.Second))
	if err != nil || e != (domain.Expiry{Requeued: 1, Dead: 1}) {
		t.Errorf("ExpireLeases(acme) = %+v, %v; want 1 requeued, 1 dead", e, err)
	}
	tenants, err = f.st.TenantsWithExpiredLeases(ctx, f.t0.Add(time.Second))
	if err != nil || !slices.Equal(tenants, []string{"globex"}) {
		t.Errorf("after reaping acme: %v, %v; want [globex]", tenants, err)
	}
	if got := f.claim(t, "acme", 10, f.t0.Add(time.Second)); len(got) != 1 {
		t.Errorf("acme's requeued job not leased again: %v", ids(got))
	}
}

func testDeleteFinished(t *testing.T, f fixture) {
	ctx := t.Context()
	old := f.t0.Add(-48 * time.Hour)
	// More old finished acme jobs than one delete transaction takes.
	const many = 1100
	for range many {
		f.enqueue(t, "acme", createdAt(old))
	}
	ls := f.claim(t, "acme", 100, old)
	for _, l := range ls[:many%1000] {
		if _, err := f.st.Complete(ctx, ref(l), domain.Completion{Result: json.RawMessage(`{}`), Now: old}); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range ls[many%1000:] {
		if _, err := f.st.Fail(ctx, ref(l), func(domain.Job) domain.Retry { return domain.Retry{Dead: true, Now: old} }); err != nil {
			t.Fatal(err)
		}
	}
	// The rest cancelled while queued.
	js, err := f.st.List(ctx, domain.ListFilter{TenantID: "acme", Status: domain.StatusQueued, Limit: many})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range js {
		if _, err := f.cancel(ctx, "acme", j.ID, old); err != nil {
			t.Fatal(err)
		}
	}
	keepQueued := f.enqueue(t, "acme", createdAt(old))
	recent := f.enqueue(t, "globex")
	l := f.claim(t, "globex", 1, f.t0)[0]
	if _, err := f.st.Complete(ctx, ref(l), domain.Completion{Result: json.RawMessage(`{}`), Now: f.t0}); err != nil {
		t.Fatal(err)
	}
	oldGlobex := f.enqueue(t, "globex", createdAt(old))
	if _, err := f.cancel(ctx, "globex", oldGlobex.ID, old); err != nil {
		t.Fatal(err)
	}

	n, err := f.st.DeleteFinished(ctx, f.t0.Add(-24*time.Hour))
	if err != nil || n != many+1 {
		t.Fatalf("DeleteFinished = %d, %v; want %d", n, err, many+1)
	}
	if n, err := f.st.DeleteFinished(ctx, f.t0.Add(-24*time.Hour)); err != nil || n != 0 {
		t.Errorf("second DeleteFinished = %d, %v; want 0", n, err)
	}
	f.get(t, "acme", keepQueued.ID)
	f.get(t, "globex", recent.ID)
}

func testOldestQueued(t *testing.T, f fixture) {
	ctx := t.Context()
	// High: two tenants' jobs, the earliest is globex's; low: one delayed
	// job; normal: its only job is leased, so none queued.
	f.enqueue(t, "acme", prio(domain.PriorityHigh), runAt(f.t0.Add(-time.Minute)))
	f.enqueue(t, "globex", prio(domain.PriorityHigh), runAt(f.t0.Add(-time.Hour)))
	f.enqueue(t, "acme", prio(domain.PriorityLow), runAt(f.t0.Add(time.Hour)))
	f.enqueue(t, "initech", prio(domain.PriorityNormal), runAt(f.t0.Add(-2*time.Hour)))
	if ls := f.claim(t, "initech", 1, f.t0); len(ls) != 1 {
		t.Fatalf("claimed %d, want 1", len(ls))
	}
	got, err := f.st.OldestQueued(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[domain.Priority]time.Time{domain.PriorityHigh: f.t0.Add(-time.Hour), domain.PriorityLow: f.t0.Add(time.Hour)}
	if len(got) != len(want) {
		t.Fatalf("OldestQueued = %v, want %v", got, want)
	}
	for p, at := range want {
		if !got[p].Equal(at) {
			t.Errorf("OldestQueued[%v] = %v, want %v", p, got[p], at)
		}
	}
}

func testDepth(t *testing.T, f fixture) {
	ctx := t.Context()
	f.enqueue(t, "acme", prio(domain.PriorityHigh))
	f.enqueue(t, "acme", prio(domain.PriorityHigh))
	f.enqueue(t, "globex", prio(domain.PriorityLow))
	f.enqueue(t, "globex", prio(domain.PriorityLow))
	ls := f.claim(t, "globex", 2, f.t0)
	if _, err := f.st.Complete(ctx, ref(ls[0]), domain.Completion{Result: json.RawMessage(`{}`), Now: f.t0}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Fail(ctx, ref(ls[1]), func(domain.Job) domain.Retry {
		return domain.Retry{RunAt: f.t0.Add(time.Hour), Now: f.t0}
	}); err != nil {
		t.Fatal(err)
	}
	f.claim(t, "acme", 1, f.t0)
	d, err := f.st.Depth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(d, func(a, b domain.Depth) int {
		if a.Status != b.Status {
			return strings.Compare(string(a.Status), string(b.Status))
		}
		return int(a.Priority - b.Priority)
	})
	want := []domain.Depth{
		{Status: domain.StatusFailed, Priority: domain.PriorityLow, N: 1},
		{Status: domain.StatusProcessing, Priority: domain.PriorityHigh, N: 1},
		{Status: domain.StatusQueued, Priority: domain.PriorityHigh, N: 1},
	}
	if !slices.Equal(d, want) {
		t.Errorf("Depth = %+v, want %+v", d, want)
	}
}
