package store_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/echopilot/echopilot/services/queue/internal/domain"
)

// TestRepair runs the repair part of the domain.Store contract (Repair,
// attempts, paused types) on every backend.
func TestRepair(t *testing.T) {
	runCases(t, []storeCase{
		{"retry keeps attempts", testRetryKeepsAttempts},
		{"one-job repairs refuse", testRepairRefusals},
		{"bulk by filter", testBulkFilter},
		{"bulk never crosses tenants", testBulkTenants},
		{"attempt outcomes", testAttemptOutcomes},
		{"paused types are skipped", testPausedTypes},
		{"paused types are per tenant", testPausedTenants},
		{"paused types limit and listing", testPausedLimit},
	})
}

func (f fixture) repair(t *testing.T, r domain.Repair) domain.RepairResult {
	t.Helper()
	if r.Limit == 0 {
		r.Limit = 1000
	}
	if r.Now.IsZero() {
		r.Now = f.t0
	}
	if r.Actor == "" {
		r.Actor = "ops@acme"
	}
	res, err := f.st.Repair(t.Context(), r)
	if err != nil {
		t.Fatalf("repair %+v: %v", r, err)
	}
	return res
}

func (f fixture) attempts(t *testing.T, tenant, id string) []domain.Attempt {
	t.Helper()
	as, err := f.st.ListAttempts(t.Context(), domain.AttemptFilter{TenantID: tenant, JobID: id, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	return as
}

// outcomes renders attempts as "number:worker:outcome:error" strings.
func outcomes(as []domain.Attempt) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = fmt.Sprintf("%d:%s:%s:%s", a.Number, a.WorkerID, a.Outcome, a.Error)
	}
	return out
}

func (f fixture) fail(t *testing.T, l domain.Lease, dead bool, msg string, now time.Time) domain.Job {
	t.Helper()
	j, err := f.st.Fail(t.Context(), ref(l), func(domain.Job) domain.Retry {
		return domain.Retry{Dead: dead, RunAt: now.Add(time.Hour), Error: msg, Now: now}
	})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func testRetryKeepsAttempts(t *testing.T, f fixture) {
	j := f.enqueue(t, "acme", maxAttempts(1))
	l := f.claim(t, "acme", 1, f.t0)[0]
	if dead := f.fail(t, l, false, "boom", f.t0.Add(time.Second)); dead.Status != domain.StatusFailed {
		// One attempt allowed, but the decision is the domain's: this test
		// makes it failed, waiting an hour.
		t.Fatalf("failed = %+v", dead)
	}
	at := f.t0.Add(2 * time.Second)
	res := f.repair(t, domain.Repair{TenantID: "acme", Action: domain.ActionRetry, JobID: j.ID, Now: at})
	got := res.Job
	if res.Affected != 1 || got.Status != domain.StatusQueued || !got.RunAt.Equal(at) || got.Attempts != 1 ||
		got.RetriedBy != "ops@acme" || !got.RetriedAt.Equal(at) || !got.LeaseExpiresAt.IsZero() || got.LastError != "boom" {
		t.Fatalf("retried = %+v (%+v)", got, res)
	}
	l2 := f.claim(t, "acme", 1, at, func(c *domain.Claim) { c.WorkerID = "w2" })
	if len(l2) != 1 || l2[0].Job.Attempts != 2 || l2[0].Token != 2 {
		t.Fatalf("lease after retry = %+v; want attempt 2 under token 2 at once", l2)
	}
	if _, err := f.st.Complete(t.Context(), ref(l2[0]), domain.Completion{Result: json.RawMessage(`{}`), Now: at.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	as := f.attempts(t, "acme", j.ID)
	if want := []string{"1:w1:failed:boom", "2:w2:completed:"}; !slices.Equal(outcomes(as), want) {
		t.Fatalf("attempts %v, want %v", outcomes(as), want)
	}
	if !as[0].StartedAt.Equal(f.t0) || !as[0].EndedAt.Equal(f.t0.Add(time.Second)) || !as[1].EndedAt.Equal(at.Add(time.Second)) ||
		as[0].LeaseToken != 1 || as[1].LeaseToken != 2 {
		t.Errorf("attempt times and tokens: %+v", as)
	}
	// Paging by lease token.
	page, err := f.st.ListAttempts(t.Context(), domain.AttemptFilter{TenantID: "acme", JobID: j.ID, AfterToken: 1, Limit: 5})
	if err != nil || len(page) != 1 || page[0].LeaseToken != 2 {
		t.Errorf("attempts after token 1 = %+v, %v", page, err)
	}
}

func testRepairRefusals(t *testing.T, f fixture) {
	ctx := t.Context()
	running := f.enqueue(t, "acme")
	queued := f.enqueue(t, "acme")
	f.claim(t, "acme", 1, f.t0) // takes the first, FIFO
	for _, c := range []struct {
		action domain.Action
		job    domain.Job
	}{
		{domain.ActionRetry, running},
		{domain.ActionRetry, queued},
		{domain.ActionDelete, running},
		{domain.ActionDelete, queued},
	} {
		res, err := f.st.Repair(ctx, domain.Repair{TenantID: "acme", Action: c.action, JobID: c.job.ID, Limit: 1, Actor: "x", Now: f.t0})
		if !errors.Is(err, domain.ErrConflict) || res.Affected != 0 || res.Job.ID != c.job.ID {
			t.Errorf("%s of %s = %+v, %v; want ErrConflict with the job", c.action, c.job.ID, res, err)
		}
	}
	if got := f.get(t, "acme", running.ID); got.Status != domain.StatusProcessing {
		t.Fatalf("running job = %s", got.Status)
	}
	for _, tenant := range []string{"acme", "globex"} {
		id := queued.ID
		if tenant == "acme" {
			id = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
		}
		for _, a := range []domain.Action{domain.ActionRetry, domain.ActionDelete, domain.ActionCancel} {
			if _, err := f.st.Repair(ctx, domain.Repair{TenantID: tenant, Action: a, JobID: id, Limit: 1, Actor: "x", Now: f.t0}); !errors.Is(err, domain.ErrNotFound) {
				t.Errorf("%s %s of %s = %v, want ErrNotFound", tenant, a, id, err)
			}
		}
		if _, err := f.st.ListAttempts(ctx, domain.AttemptFilter{TenantID: tenant, JobID: id, Limit: 10}); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("%s attempts of %s = %v, want ErrNotFound", tenant, id, err)
		}
	}
}

// deadJobs enqueues n jobs of tenant with opts and makes them dead.
func (f fixture) deadJobs(t *testing.T, tenant string, n int, opts ...jobOpt) []string {
	t.Helper()
	var out []string
	for range n {
		j := f.enqueue(t, tenant, append([]jobOpt{maxAttempts(1)}, opts...)...)
		out = append(out, j.ID)
		l := f.claim(t, tenant, 1, f.t0)
		if len(l) != 1 || l[0].Job.ID != j.ID {
			t.Fatalf("claim %v, want %s", ids(l), j.ID)
		}
		f.fail(t, l[0], true, "dead", f.t0)
	}
	return out
}

func testBulkFilter(t *testing.T, f fixture) {
	dead := f.deadJobs(t, "acme", 3)
	deadData := f.deadJobs(t, "acme", 1, jobType("data_sync"))
	deadHigh := f.deadJobs(t, "acme", 1, prio(domain.PriorityHigh))
	deadOld := f.deadJobs(t, "acme", 1, createdAt(f.t0.Add(-time.Hour)))
	queued := f.enqueue(t, "acme")

	all := domain.JobFilter{Statuses: domain.ActionRetry.Statuses()}
	// A dry run counts and changes nothing.
	res := f.repair(t, domain.Repair{TenantID: "acme", Action: domain.ActionRetry, Filter: all, DryRun: true})
	if res.Matched != 6 || res.Affected != 0 {
		t.Fatalf("dry run = %+v, want 6 matched, none changed", res)
	}
	if got := f.get(t, "acme", dead[0]); got.Status != domain.StatusDead {
		t.Fatalf("dry run changed %+v", got)
	}
	for _, c := range []struct {
		name   string
		filter domain.JobFilter
		want   []string
	}{
		{"type", domain.JobFilter{Statuses: all.Statuses, Type: "data_sync"}, deadData},
		{"priority", domain.JobFilter{Statuses: all.Statuses, Priority: domain.PriorityHigh, HasPriority: true}, deadHigh},
		{"created before", domain.JobFilter{Statuses: all.Statuses, CreatedBefore: f.t0}, deadOld},
		{"created range", domain.JobFilter{Statuses: all.Statuses, CreatedAfter: f.t0.Add(-2 * time.Hour), CreatedBefore: f.t0.Add(-time.Minute)}, deadOld},
	} {
		res := f.repair(t, domain.Repair{TenantID: "acme", Action: domain.ActionRetry, Filter: c.filter, DryRun: true})
		if res.Matched != int64(len(c.want)) {
			t.Errorf("%s matched %d, want %d", c.name, res.Matched, len(c.want))
		}
	}
	// The cap: at most Limit per call, the rest reported as remaining.
	res = f.repair(t, domain.Repair{TenantID: "acme", Action: domain.ActionRetry, Filter: domain.JobFilter{Statuses: []domain.Status{domain.StatusDead}, Type: "ai_task"}, Limit: 3})
	if res.Matched != 5 || res.Affected != 3 {
		t.Fatalf("capped retry = %+v, want 5 matched, 3 changed", res)
	}
	res = f.repair(t, domain.Repair{TenantID: "acme", Action: domain.ActionRetry, Filter: domain.JobFilter{Statuses: []domain.Status{domain.StatusDead}, Type: "ai_task"}, Limit: 3})
	if res.Matched != 2 || res.Affected != 2 {
		t.Fatalf("second retry = %+v, want the 2 left", res)
	}
	for _, id := range append(append(slices.Clone(dead), deadHigh...), deadOld...) {
		if got := f.get(t, "acme", id); got.Status != domain.StatusQueued || got.RetriedBy != "ops@acme" || got.Attempts != 1 {
			t.Errorf("after bulk retry: %+v", got)
		}
	}
	if got := f.get(t, "acme", deadData[0]); got.Status != domain.StatusDead {
		t.Errorf("data_sync job outside the filter was changed: %+v", got)
	}
	// Bulk cancel takes every cancellable job (the retried ones and the
	// queued one), delete then takes them all with the dead one.
	res = f.repair(t, domain.Repair{TenantID: "acme", Action: domain.ActionCancel, Filter: domain.JobFilter{Statuses: domain.ActionCancel.Statuses()}})
	if res.Matched != 6 || res.Affected != 6 {
		t.Fatalf("bulk cancel = %+v, want 6", res)
	}
	if got := f.get(t, "acme", queued.ID); got.Status != domain.StatusCancelled || got.CancelledBy != "ops@acme" {
		t.Errorf("cancelled = %+v", got)
	}
	res = f.repair(t, domain.Repair{TenantID: "acme", Action: domain.ActionDelete, Filter: domain.JobFilter{Statuses: domain.ActionDelete.Statuses()}})
	if res.Matched != 7 || res.Affected != 7 {
		t.Fatalf("bulk delete = %+v, want 7", res)
	}
	if js, err := f.st.List(t.Context(), domain.ListFilter{TenantID: "acme", Limit: 10}); err != nil || len(js) != 0 {
		t.Fatalf("jobs left: %v, %v", js, err)
	}
}

func testBulkTenants(t *testing.T, f fixture) {
	theirs := f.deadJobs(t, "acme", 2)
	f.enqueue(t, "acme")
	for _, a := range []domain.Action{domain.ActionRetry, domain.ActionCancel, domain.ActionDelete} {
		for _, dry := range []bool{true, false} {
			res := f.repair(t, domain.Repair{TenantID: "globex", Action: a, Filter: domain.JobFilter{Statuses: domain.Statuses()}, DryRun: dry})
			if res.Matched != 0 || res.Affected != 0 {
				t.Errorf("globex bulk %s (dry %v) = %+v, want nothing", a, dry, res)
			}
		}
	}
	for _, id := range theirs {
		if got := f.get(t, "acme", id); got.Status != domain.StatusDead || got.RetriedBy != "" {
			t.Errorf("acme's job after globex's bulk calls: %+v", got)
		}
	}
}

func testAttemptOutcomes(t *testing.T, f fixture) {
	ctx := t.Context()
	expiring := f.enqueue(t, "acme", prio(domain.PriorityCritical))
	cancelled := f.enqueue(t, "acme", prio(domain.PriorityHigh))
	l := f.claim(t, "acme", 2, f.t0)
	if len(l) != 2 {
		t.Fatalf("claimed %v", ids(l))
	}
	if as := f.attempts(t, "acme", expiring.ID); !slices.Equal(outcomes(as), []string{"1:w1:running:"}) || !as[0].EndedAt.IsZero() {
		t.Fatalf("running attempt = %+v", as)
	}
	if _, err := f.cancel(ctx, "acme", cancelled.ID, f.t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.ExpireLeases(ctx, "acme", f.t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if as := f.attempts(t, "acme", expiring.ID); !slices.Equal(outcomes(as), []string{"1:w1:lease_expired:lease expired"}) ||
		!as[0].EndedAt.Equal(f.t0.Add(time.Hour)) {
		t.Errorf("expired attempt = %+v", as)
	}
	if as := f.attempts(t, "acme", cancelled.ID); !slices.Equal(outcomes(as), []string{"1:w1:cancelled:"}) || !as[0].EndedAt.Equal(f.t0.Add(time.Second)) {
		t.Errorf("cancelled attempt = %+v", as)
	}
	// The cancelled job's retry starts a new attempt; the stale worker's
	// completion is still refused.
	f.repair(t, domain.Repair{TenantID: "acme", Action: domain.ActionRetry, JobID: cancelled.ID, Now: f.t0.Add(2 * time.Hour)})
	cur, err := f.st.Complete(ctx, ref(l[1]), domain.Completion{Result: json.RawMessage(`{}`), Now: f.t0.Add(2 * time.Hour)})
	wantConflict(t, err, cur, domain.StatusQueued)
	again := f.claim(t, "acme", 2, f.t0.Add(2*time.Hour))
	if len(again) != 2 {
		t.Fatalf("claimed %v", ids(again))
	}
	if as := f.attempts(t, "acme", cancelled.ID); !slices.Equal(outcomes(as), []string{"1:w1:cancelled:", "2:w1:running:"}) {
		t.Errorf("attempts after retry = %v", outcomes(as))
	}
}

func (f fixture) pause(t *testing.T, tenant, typ, by string, at time.Time) domain.PausedType {
	t.Helper()
	p, err := f.st.PauseType(t.Context(), domain.PausedType{TenantID: tenant, Type: typ, PausedAt: at, PausedBy: by}, 3)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func testPausedTypes(t *testing.T, f fixture) {
	ctx := t.Context()
	sync := f.enqueue(t, "acme", jobType("data_sync"), prio(domain.PriorityCritical))
	ai := f.enqueue(t, "acme")
	p := f.pause(t, "acme", "data_sync", "ops@acme", f.t0)
	if p.Type != "data_sync" || p.PausedBy != "ops@acme" || !p.PausedAt.Equal(f.t0) {
		t.Fatalf("pause = %+v", p)
	}
	// Pausing again keeps the first pause.
	if again := f.pause(t, "acme", "data_sync", "someone@acme", f.t0.Add(time.Hour)); again != p {
		t.Errorf("second pause = %+v, want %+v", again, p)
	}
	if got := f.claim(t, "acme", 10, f.t0); !slices.Equal(ids(got), []string{ai.ID}) {
		t.Fatalf("claimed %v while data_sync is paused, want only %s", ids(got), ai.ID)
	}
	if got := f.claim(t, "acme", 10, f.t0, func(c *domain.Claim) { c.Types = []string{"data_sync"} }); len(got) != 0 {
		t.Fatalf("a worker asking for the paused type got %v", ids(got))
	}
	if ok, err := f.st.ResumeType(ctx, "acme", "data_sync"); err != nil || !ok {
		t.Fatalf("resume = %v, %v", ok, err)
	}
	if ok, err := f.st.ResumeType(ctx, "acme", "data_sync"); err != nil || ok {
		t.Fatalf("second resume = %v, %v; want false", ok, err)
	}
	if got := f.claim(t, "acme", 10, f.t0); !slices.Equal(ids(got), []string{sync.ID}) {
		t.Fatalf("claimed %v after resume, want %s", ids(got), sync.ID)
	}
}

func testPausedTenants(t *testing.T, f fixture) {
	ctx := t.Context()
	theirs := f.enqueue(t, "globex", jobType("data_sync"))
	f.pause(t, "acme", "data_sync", "ops@acme", f.t0)
	if got := f.claim(t, "globex", 10, f.t0); !slices.Equal(ids(got), []string{theirs.ID}) {
		t.Fatalf("acme's pause held back globex: claimed %v", ids(got))
	}
	if ps, err := f.st.ListPausedTypes(ctx, "globex", "", 10); err != nil || len(ps) != 0 {
		t.Errorf("globex sees pauses %v, %v", ps, err)
	}
	if ok, err := f.st.ResumeType(ctx, "globex", "data_sync"); err != nil || ok {
		t.Errorf("globex resumed acme's pause: %v, %v", ok, err)
	}
	if ps, err := f.st.ListPausedTypes(ctx, "acme", "", 10); err != nil || len(ps) != 1 {
		t.Errorf("acme's pauses = %v, %v", ps, err)
	}
}

func testPausedLimit(t *testing.T, f fixture) {
	ctx := t.Context()
	for _, typ := range []string{"c", "a", "b"} {
		f.pause(t, "acme", typ, "ops", f.t0)
	}
	if _, err := f.st.PauseType(ctx, domain.PausedType{TenantID: "acme", Type: "d", PausedAt: f.t0, PausedBy: "ops"}, 3); !errors.Is(err, domain.ErrPausedLimit) {
		t.Fatalf("fourth pause = %v, want ErrPausedLimit", err)
	}
	// A type paused already is answered even at the limit.
	if _, err := f.st.PauseType(ctx, domain.PausedType{TenantID: "acme", Type: "a", PausedAt: f.t0, PausedBy: "ops"}, 3); err != nil {
		t.Fatalf("pausing a paused type at the limit: %v", err)
	}
	// Another tenant has its own limit.
	f.pause(t, "globex", "d", "ops", f.t0)
	ps, err := f.st.ListPausedTypes(ctx, "acme", "a", 10)
	if err != nil || len(ps) != 2 || ps[0].Type != "b" || ps[1].Type != "c" {
		t.Fatalf("pauses after a = %+v, %v", ps, err)
	}
}
