package console

import (
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	"github.com/echopilot/echopilot/platform/store/storetest"
)

// The queue's repairs through the console (queueActions), against the
// real services: each works with CSRF and confirmation only, as the
// person; another tenant's job is a 404, a platform admin reading another
// tenant changes nothing there (403); the bulk confirmation's dry-run count
// is what the confirmed run changes.
func TestQueueActions(t *testing.T) {
	for _, db := range storetest.Backends() {
		t.Run(db.Name, func(t *testing.T) { testQueueActions(t, db) })
	}
}

// queueFixture makes jobs in given states through the real queue.
type queueFixture struct {
	t  *testing.T
	q  queuev1.QueueServiceClient
	st *stack
}

func (f queueFixture) enqueue(tenant, typ string, prio queuev1.Priority, maxAttempts int32) string {
	f.t.Helper()
	resp, err := f.q.EnqueueJob(asToken(mint(f.t, tenant)), &queuev1.EnqueueJobRequest{Type: typ, Priority: prio, MaxAttempts: maxAttempts})
	if err != nil {
		f.t.Fatal(err)
	}
	return resp.GetJobId()
}

// lease leases the tenant's one job of typ as worker w-1.
func (f queueFixture) lease(tenant, typ string) (*queuev1.Job, int64) {
	f.t.Helper()
	resp, err := f.q.LeaseJobs(asToken(mint(f.t, tenant, "worker")), &queuev1.LeaseJobsRequest{WorkerId: "w-1", Types: []string{typ}})
	if err != nil || len(resp.GetLeases()) != 1 {
		f.t.Fatalf("lease %s: %v %v", typ, resp, err)
	}
	return resp.GetLeases()[0].GetJob(), resp.GetLeases()[0].GetLeaseToken()
}

// dead is a job of typ (the only one of its type) that failed for good.
func (f queueFixture) dead(tenant, typ string) string {
	f.t.Helper()
	f.enqueue(tenant, typ, 0, 1)
	job, tok := f.lease(tenant, typ)
	if _, err := f.q.FailJob(asToken(mint(f.t, tenant, "worker")), &queuev1.FailJobRequest{
		JobId: job.GetJobId(), WorkerId: "w-1", LeaseToken: tok, Error: "boom: upstream said no",
	}); err != nil {
		f.t.Fatal(err)
	}
	if s := f.job(tenant, job.GetJobId()).GetStatus(); s != queuev1.JobStatus_JOB_STATUS_DEAD {
		f.t.Fatalf("job is %v, want dead", s)
	}
	return job.GetJobId()
}

// completed is a job of typ (the only one of its type) that completed.
func (f queueFixture) completed(tenant, typ string) string {
	f.t.Helper()
	f.enqueue(tenant, typ, 0, 0)
	job, tok := f.lease(tenant, typ)
	if _, err := f.q.CompleteJob(asToken(mint(f.t, tenant, "worker")), &queuev1.CompleteJobRequest{JobId: job.GetJobId(), WorkerId: "w-1", LeaseToken: tok}); err != nil {
		f.t.Fatal(err)
	}
	return job.GetJobId()
}

func (f queueFixture) job(tenant, id string) *queuev1.Job {
	f.t.Helper()
	resp, err := f.q.GetJob(asToken(mint(f.t, tenant)), &queuev1.GetJobRequest{JobId: id})
	if err != nil {
		f.t.Fatalf("get job %s: %v", id, err)
	}
	return resp.GetJob()
}

func (f queueFixture) wantStatus(tenant, id string, want queuev1.JobStatus) {
	f.t.Helper()
	if got := f.job(tenant, id).GetStatus(); got != want {
		f.t.Fatalf("job %s is %v, want %v", id, got, want)
	}
}

// countStatus counts the tenant's jobs of typ in state st.
func (f queueFixture) countStatus(tenant, typ string, st queuev1.JobStatus) int {
	f.t.Helper()
	resp, err := f.q.ListJobs(asToken(mint(f.t, tenant)), &queuev1.ListJobsRequest{Type: typ, Status: st, PageSize: 100})
	if err != nil {
		f.t.Fatal(err)
	}
	return len(resp.GetJobs())
}

// redirected checks a 303 to a path starting with prefix and returns its
// query.
func redirected(t *testing.T, p page, prefix string) url.Values {
	t.Helper()
	loc := p.header.Get("Location")
	if p.status != http.StatusSeeOther || !strings.HasPrefix(loc, prefix) {
		t.Fatalf("want a 303 to %s, got %d %q:\n%s", prefix, p.status, loc, p.body)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

// form is v plus the CSRF token and confirm=yes of b.
func (b *browser) confirmed(v url.Values) url.Values {
	out := url.Values{"csrf": {b.csrf}, "confirm": {"yes"}}
	for k, vs := range v {
		out[k] = vs
	}
	return out
}

// refusedUnconfirmed checks that a POST without the CSRF token and one
// without confirmation are refused.
func refusedUnconfirmed(t *testing.T, b *browser, action string, v url.Values) {
	t.Helper()
	noCSRF := b.confirmed(v)
	noCSRF.Del("csrf")
	want(t, b.post("/console/actions/"+action, noCSRF), http.StatusForbidden, "CSRF_TOKEN_MISMATCH")
	noConfirm := b.confirmed(v)
	noConfirm.Del("confirm")
	want(t, b.post("/console/actions/"+action, noConfirm), http.StatusBadRequest, "CONFIRMATION_REQUIRED")
}

var bulkCount = regexp.MustCompile(`This will (\w+) <strong>(\d+)</strong> jobs? \(at most (\d+) per call\)`)

// dryRunCount reads the bulk confirmation's count.
func dryRunCount(t *testing.T, p page, op string) int {
	t.Helper()
	want(t, p, http.StatusOK)
	m := bulkCount.FindStringSubmatch(p.body)
	if m == nil || m[1] != op {
		t.Fatalf("no dry-run count for %s on the confirmation:\n%s", op, p.body)
	}
	n, _ := strconv.Atoi(m[2])
	return n
}

func testQueueActions(t *testing.T, db storetest.Backend) {
	st := startStack(t, db, Config{})
	f := queueFixture{t: t, q: queuev1.NewQueueServiceClient(st.conns["queue"]), st: st}
	user := st.browser(t)
	user.login(mint(t, "acme"))
	admin := st.browser(t)
	admin.login(mint(t, "default", "admin"))
	globex := st.browser(t)
	globex.login(mint(t, "globex"))

	t.Run("retry a dead job from its page", func(t *testing.T) {
		id := f.dead("acme", "data_sync")
		globexDead := f.dead("globex", "data_sync")
		p := user.get("/console/queue/jobs/" + id)
		want(t, p, http.StatusOK, "Attempts", "w-1", "failed", "boom: upstream said no",
			"/console/actions/retry_job?job_id="+id, "/console/actions/delete_job?job_id="+id)
		if strings.Contains(p.body, "/console/actions/cancel_job") {
			t.Fatal("a dead job offers cancel")
		}
		want(t, user.get("/console/actions/retry_job?job_id="+id), http.StatusOK, "Yes, retry the job")
		v := url.Values{"job_id": {id}}
		refusedUnconfirmed(t, user, "retry_job", v)
		want(t, user.post("/console/actions/retry_job", user.confirmed(url.Values{"job_id": {globexDead}})), http.StatusNotFound, "JOB_NOT_FOUND")
		want(t, user.post("/console/actions/retry_job", user.confirmed(url.Values{"job_id": {"not-a-job"}})), http.StatusNotFound)
		// The admin reads acme's job, without the actions, and cannot retry it.
		p = admin.get("/console/queue/jobs/" + id + "?tenant=acme")
		want(t, p, http.StatusOK, "boom: upstream said no")
		if strings.Contains(p.body, "/console/actions/retry_job") {
			t.Fatal("an admin reading another tenant is offered retry")
		}
		want(t, admin.post("/console/actions/retry_job", admin.confirmed(url.Values{"job_id": {id}, "tenant": {"acme"}})), http.StatusForbidden)
		f.wantStatus("acme", id, queuev1.JobStatus_JOB_STATUS_DEAD)
		f.wantStatus("globex", globexDead, queuev1.JobStatus_JOB_STATUS_DEAD)

		p = user.post("/console/actions/retry_job", user.confirmed(v))
		if q := redirected(t, p, "/console/queue/jobs/"+id); q.Get("done") != "retry_job" {
			t.Fatalf("retry went to %q", p.header.Get("Location"))
		}
		want(t, user.get(p.header.Get("Location")), http.StatusOK, "Retry job: done.", "queued", "Retried by", "u@acme")
		j := f.job("acme", id)
		if j.GetStatus() != queuev1.JobStatus_JOB_STATUS_QUEUED || j.GetRetriedBy() != "u@acme" || j.GetAttempts() != 1 {
			t.Fatalf("job after the retry: %v", j)
		}
		// Queued: no retry and no delete offered; a retry now is refused.
		p = user.get("/console/queue/jobs/" + id)
		if strings.Contains(p.body, "/console/actions/retry_job") || strings.Contains(p.body, "/console/actions/delete_job") {
			t.Fatal("a queued job offers retry or delete")
		}
		want(t, user.post("/console/actions/retry_job", user.confirmed(v)), http.StatusBadRequest, "JOB_NOT_RETRYABLE")
	})

	t.Run("delete a finished job", func(t *testing.T) {
		id := f.completed("acme", "report_done")
		globexDone := f.completed("globex", "report_done")
		want(t, user.get("/console/queue/jobs/"+id), http.StatusOK, "/console/actions/delete_job?job_id="+id, "completed")
		want(t, user.get("/console/actions/delete_job?job_id="+id), http.StatusOK, "Yes, delete the job")
		v := url.Values{"job_id": {id}}
		refusedUnconfirmed(t, user, "delete_job", v)
		want(t, user.post("/console/actions/delete_job", user.confirmed(url.Values{"job_id": {globexDone}})), http.StatusNotFound, "JOB_NOT_FOUND")
		want(t, admin.post("/console/actions/delete_job", admin.confirmed(url.Values{"job_id": {id}, "tenant": {"acme"}})), http.StatusForbidden)
		f.wantStatus("acme", id, queuev1.JobStatus_JOB_STATUS_COMPLETED)
		f.wantStatus("globex", globexDone, queuev1.JobStatus_JOB_STATUS_COMPLETED)

		p := user.post("/console/actions/delete_job", user.confirmed(v))
		if q := redirected(t, p, "/console/queue"); q.Get("done") != "delete_job" || q.Get("job_id") != id {
			t.Fatalf("delete went to %q", p.header.Get("Location"))
		}
		want(t, user.get(p.header.Get("Location")), http.StatusOK, "Delete job: job "+id+" deleted")
		if _, err := f.q.GetJob(asToken(mint(t, "acme")), &queuev1.GetJobRequest{JobId: id}); status.Code(err) != codes.NotFound {
			t.Fatalf("job after the delete: %v", err)
		}
		want(t, user.get("/console/queue/jobs/"+id), http.StatusNotFound)
		// A queued job is not deleted.
		queued := f.enqueue("acme", "report_wait", 0, 0)
		want(t, user.post("/console/actions/delete_job", user.confirmed(url.Values{"job_id": {queued}})), http.StatusBadRequest, "JOB_NOT_FINISHED")
	})

	t.Run("a selection of the queue page's jobs", func(t *testing.T) {
		a, b := f.enqueue("acme", "sel", 0, 0), f.enqueue("acme", "sel", 0, 0)
		done := f.completed("acme", "sel_done")
		globexJob := f.enqueue("globex", "sel", 0, 0)
		p := user.get("/console/queue?type=sel")
		want(t, p, http.StatusOK, `name="job_id" value="`+a+`"`, `action="/console/actions/selected_jobs"`, `value="cancel"`)
		sel := url.Values{"op": {"cancel"}, "job_id": {a, b, done}}
		want(t, user.get("/console/actions/selected_jobs?"+sel.Encode()), http.StatusOK, "This will cancel 2 of the 3 selected jobs", "Yes, cancel 2 jobs")
		if p := user.get("/console/actions/selected_jobs?op=retry&job_id=" + a); !strings.Contains(p.body, "None of them can be retried") || strings.Contains(p.body, `name="confirm"`) {
			t.Fatalf("a selection nothing applies to offers to run:\n%s", p.body)
		}

		// Each id is checked, and at most a page of them.
		many := url.Values{"op": {"cancel"}}
		for range pageSize + 1 {
			many.Add("job_id", f.enqueue("acme", "sel_many", 0, 0))
		}
		for _, c := range []struct {
			q      url.Values
			status int
			reason string
		}{
			{url.Values{"op": {"cancel"}}, http.StatusBadRequest, "SELECTION_EMPTY"},
			{url.Values{"op": {"cancel"}, "job_id": {a, "../../etc"}}, http.StatusBadRequest, "JOB_ID_INVALID"},
			{url.Values{"op": {"explode"}, "job_id": {a}}, http.StatusBadRequest, "BULK_ACTION_INVALID"},
			{many, http.StatusBadRequest, "SELECTION_TOO_LARGE"},
			{url.Values{"op": {"cancel"}, "job_id": {a, globexJob}}, http.StatusNotFound, "JOB_NOT_FOUND"},
		} {
			want(t, user.get("/console/actions/selected_jobs?"+c.q.Encode()), c.status, c.reason)
			want(t, user.post("/console/actions/selected_jobs", user.confirmed(c.q)), c.status, c.reason)
		}
		refusedUnconfirmed(t, user, "selected_jobs", sel)
		adminSel := url.Values{"op": {"cancel"}, "job_id": {a, b}, "tenant": {"acme"}}
		want(t, admin.get("/console/actions/selected_jobs?"+adminSel.Encode()), http.StatusOK, "This will cancel 2") // reading is allowed
		want(t, admin.post("/console/actions/selected_jobs", admin.confirmed(adminSel)), http.StatusForbidden)
		if p := admin.get("/console/queue?tenant=acme&type=sel"); strings.Contains(p.body, `name="job_id"`) || strings.Contains(p.body, `id="bulk"`) {
			t.Fatal("an admin reading another tenant's queue is offered changes")
		}
		for _, id := range []string{a, b} {
			f.wantStatus("acme", id, queuev1.JobStatus_JOB_STATUS_QUEUED)
		}
		f.wantStatus("globex", globexJob, queuev1.JobStatus_JOB_STATUS_QUEUED)

		p = user.post("/console/actions/selected_jobs", user.confirmed(sel))
		if q := redirected(t, p, "/console/queue"); q.Get("changed") != "2" || q.Get("skipped") != "1" {
			t.Fatalf("selection went to %q", p.header.Get("Location"))
		}
		want(t, user.get(p.header.Get("Location")), http.StatusOK, "Selected jobs: 2 cancelled, 1 skipped")
		for _, id := range []string{a, b} {
			if j := f.job("acme", id); j.GetStatus() != queuev1.JobStatus_JOB_STATUS_CANCELLED || j.GetCancelledBy() != "u@acme" {
				t.Fatalf("selected job after the cancel: %v", j)
			}
		}
		f.wantStatus("acme", done, queuev1.JobStatus_JOB_STATUS_COMPLETED)
		// Retry the two back.
		p = user.post("/console/actions/selected_jobs", user.confirmed(url.Values{"op": {"retry"}, "job_id": {a, b}}))
		if q := redirected(t, p, "/console/queue"); q.Get("changed") != "2" {
			t.Fatalf("selection retry went to %q", p.header.Get("Location"))
		}
		f.wantStatus("acme", a, queuev1.JobStatus_JOB_STATUS_QUEUED)
	})

	t.Run("bulk by filter after a dry run", func(t *testing.T) {
		for range 5 {
			f.enqueue("acme", "bulk_t", queuev1.Priority_PRIORITY_LOW, 0)
		}
		f.enqueue("acme", "bulk_t", queuev1.Priority_PRIORITY_HIGH, 0)
		f.enqueue("globex", "bulk_t", queuev1.Priority_PRIORITY_LOW, 0)
		want(t, user.get("/console/queue"), http.StatusOK, `action="/console/actions/bulk_jobs"`, `name="statuses"`, `name="created_after"`)

		q := url.Values{"op": {"cancel"}, "type": {"bulk_t"}, "priority": {"low"}, "statuses": {"queued", "failed"}, "limit": {"3"},
			"created_after": {"2020-01-01T00:00"}, "created_before": {"2100-01-01"}}
		p := user.get("/console/actions/bulk_jobs?" + q.Encode())
		shown := dryRunCount(t, p, "cancel")
		want(t, p, http.StatusOK, "(at most 3 per call)", "5 jobs match now", "type bulk_t", "priority low", "status queued or failed")
		if shown != 3 {
			t.Fatalf("dry run shows %d, want 3 (5 match, at most 3 per call)", shown)
		}
		if n := f.countStatus("acme", "bulk_t", queuev1.JobStatus_JOB_STATUS_QUEUED); n != 6 {
			t.Fatalf("the dry run changed jobs: %d queued, want 6", n)
		}
		// Bad input is a 400 page with its reason, on the confirmation and the run.
		for _, c := range []struct {
			q      url.Values
			reason string
		}{
			{url.Values{"op": {"explode"}}, "BULK_ACTION_INVALID"},
			{url.Values{}, "BULK_ACTION_INVALID"},
			{url.Values{"op": {"retry"}, "statuses": {"zombie"}}, "STATUS_INVALID"},
			{url.Values{"op": {"retry"}, "priority": {"urgent"}}, "PRIORITY_INVALID"},
			{url.Values{"op": {"retry"}, "limit": {"5000"}}, "BULK_LIMIT_INVALID"},
			{url.Values{"op": {"retry"}, "limit": {"x"}}, "BULK_LIMIT_INVALID"},
			{url.Values{"op": {"retry"}, "created_after": {"yesterday"}}, "CREATED_RANGE_INVALID"},
			{url.Values{"op": {"delete"}, "created_after": {"2026-01-02"}, "created_before": {"2026-01-01"}}, "CREATED_RANGE_INVALID"},
			{url.Values{"op": {"delete"}, "type": {"Not A Type!"}}, "TYPE_INVALID"},
		} {
			want(t, user.get("/console/actions/bulk_jobs?"+c.q.Encode()), http.StatusBadRequest, c.reason)
			want(t, user.post("/console/actions/bulk_jobs", user.confirmed(c.q)), http.StatusBadRequest, c.reason)
		}
		refusedUnconfirmed(t, user, "bulk_jobs", q)
		if p := user.get("/console/actions/bulk_jobs?op=retry&type=bulk_t"); dryRunCount(t, p, "retry") != 0 ||
			!strings.Contains(p.body, "No job matches") || strings.Contains(p.body, `name="confirm"`) {
			t.Fatalf("a bulk change matching nothing offers to run:\n%s", p.body)
		}
		// Globex's bulk call sees none of acme's jobs; the admin changes none there.
		if n := dryRunCount(t, globex.get("/console/actions/bulk_jobs?op=cancel&type=bulk_t&priority=low&limit=3"), "cancel"); n != 1 {
			t.Fatalf("globex's dry run counts %d, want its own 1", n)
		}
		adminQ := url.Values{"op": {"cancel"}, "type": {"bulk_t"}, "tenant": {"acme"}}
		want(t, admin.get("/console/actions/bulk_jobs?"+adminQ.Encode()), http.StatusForbidden)
		want(t, admin.post("/console/actions/bulk_jobs", admin.confirmed(adminQ)), http.StatusForbidden)
		if n := f.countStatus("acme", "bulk_t", queuev1.JobStatus_JOB_STATUS_QUEUED); n != 6 {
			t.Fatalf("refused calls changed jobs: %d queued, want 6", n)
		}

		p = user.post("/console/actions/bulk_jobs", user.confirmed(q))
		res := redirected(t, p, "/console/queue")
		if res.Get("affected") != strconv.Itoa(shown) || res.Get("remaining") != "2" || res.Get("matched") != "5" {
			t.Fatalf("bulk run %v, want %d affected as the dry run showed, 2 remaining", res, shown)
		}
		if n := f.countStatus("acme", "bulk_t", queuev1.JobStatus_JOB_STATUS_CANCELLED); n != shown {
			t.Fatalf("%d jobs cancelled, the confirmation said %d", n, shown)
		}
		p = user.get(p.header.Get("Location"))
		want(t, p, http.StatusOK, "Bulk cancel by filter: 3 jobs cancelled of 5 matching; 2 remaining.", "Run it again for the rest")
		if strings.Contains(p.body, "done=bulk_jobs") || !strings.Contains(p.body, "status=queued") {
			t.Fatalf("the tabs repeat the notice:\n%s", p.body)
		}
		again := regexp.MustCompile(`href="(/console/actions/bulk_jobs\?[^"]+)"`).FindStringSubmatch(p.body)
		if again == nil {
			t.Fatalf("no link to run it again:\n%s", p.body)
		}
		p = user.get(strings.ReplaceAll(again[1], "&amp;", "&"))
		shown = dryRunCount(t, p, "cancel")
		if shown != 2 {
			t.Fatalf("the second dry run shows %d, want 2", shown)
		}
		p = user.post("/console/actions/bulk_jobs", user.confirmed(q))
		if res := redirected(t, p, "/console/queue"); res.Get("affected") != strconv.Itoa(shown) || res.Get("remaining") != "0" {
			t.Fatalf("second bulk run %v, want %d affected", res, shown)
		}
		if n := f.countStatus("acme", "bulk_t", queuev1.JobStatus_JOB_STATUS_CANCELLED); n != 5 {
			t.Fatalf("%d cancelled, want 5", n)
		}
		f.wantStatus("globex", f.enqueue("globex", "bulk_other", 0, 0), queuev1.JobStatus_JOB_STATUS_QUEUED)
		if n := f.countStatus("globex", "bulk_t", queuev1.JobStatus_JOB_STATUS_QUEUED); n != 1 {
			t.Fatalf("globex's job was touched: %d queued", n)
		}
		// Retry them in bulk: the count shown is what is retried.
		rq := url.Values{"op": {"retry"}, "type": {"bulk_t"}}
		shown = dryRunCount(t, user.get("/console/actions/bulk_jobs?"+rq.Encode()), "retry")
		p = user.post("/console/actions/bulk_jobs", user.confirmed(rq))
		if res := redirected(t, p, "/console/queue"); shown != 5 || res.Get("affected") != "5" {
			t.Fatalf("bulk retry: shown %d, ran %v", shown, res)
		}
	})

	t.Run("pause and resume a job type", func(t *testing.T) {
		want(t, user.get("/console/queue"), http.StatusOK, "No job type is paused", `action="/console/actions/pause_type"`)
		want(t, user.get("/console/actions/pause_type?job_type=data_sync"), http.StatusOK, "Pause the job type", `value="data_sync"`)
		v := url.Values{"job_type": {"data_sync"}}
		refusedUnconfirmed(t, user, "pause_type", v)
		want(t, user.post("/console/actions/pause_type", user.confirmed(url.Values{"job_type": {"Data Sync"}})), http.StatusBadRequest, "TYPE_INVALID")
		want(t, admin.post("/console/actions/pause_type", admin.confirmed(url.Values{"job_type": {"data_sync"}, "tenant": {"acme"}})), http.StatusForbidden)
		paused := func(tenant string) []*queuev1.PausedJobType {
			resp, err := f.q.ListPausedJobTypes(asToken(mint(t, tenant)), &queuev1.ListPausedJobTypesRequest{})
			if err != nil {
				t.Fatal(err)
			}
			return resp.GetPausedTypes()
		}
		if len(paused("acme")) != 0 {
			t.Fatal("a refused pause paused")
		}
		p := user.post("/console/actions/pause_type", user.confirmed(v))
		redirected(t, p, "/console/queue")
		want(t, user.get(p.header.Get("Location")), http.StatusOK, "data_sync is paused", "u@acme", "/console/actions/resume_type?job_type=data_sync")
		if ps := paused("acme"); len(ps) != 1 || ps[0].GetJobType() != "data_sync" || ps[0].GetPausedBy() != "u@acme" {
			t.Fatalf("paused types: %v", ps)
		}
		if len(paused("globex")) != 0 {
			t.Fatal("acme's pause paused globex's type")
		}
		// The admin reads acme's paused types but is offered no resume.
		if p := admin.get("/console/queue?tenant=acme"); !strings.Contains(p.body, "data_sync") || strings.Contains(p.body, "/console/actions/resume_type") {
			t.Fatalf("admin's view of acme's paused types:\n%s", p.body)
		}
		want(t, user.get("/console/actions/resume_type?job_type=data_sync"), http.StatusOK, "Yes, resume it")
		refusedUnconfirmed(t, user, "resume_type", v)
		want(t, admin.post("/console/actions/resume_type", admin.confirmed(url.Values{"job_type": {"data_sync"}, "tenant": {"acme"}})), http.StatusForbidden)
		want(t, globex.post("/console/actions/resume_type", globex.confirmed(v)), http.StatusSeeOther) // globex's own: not paused there
		if len(paused("acme")) != 1 {
			t.Fatal("a refused resume resumed")
		}
		p = user.post("/console/actions/resume_type", user.confirmed(v))
		if q := redirected(t, p, "/console/queue"); q.Get("resumed") != "true" {
			t.Fatalf("resume went to %q", p.header.Get("Location"))
		}
		want(t, user.get(p.header.Get("Location")), http.StatusOK, "data_sync runs again", "No job type is paused")
		p = user.post("/console/actions/resume_type", user.confirmed(v))
		want(t, user.get(p.header.Get("Location")), http.StatusOK, "data_sync was not paused; nothing changed")
	})
}
