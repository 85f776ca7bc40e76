package console

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	"github.com/echopilot/echopilot/platform/apierr"
)

// The queue's repairs (issue 17) as console actions: retry and delete one
// job from its page, retry, cancel or delete a selection of the queue
// page's jobs, change jobs in bulk by filter (the confirmation shows the
// backend's dry run), and pause or resume a job type. Each one calls the
// queue as the signed-in person, so the queue decides (a platform admin
// reading another tenant is refused every change there) and records them
// as retried_by, cancelled_by or paused_by.
var queueActions = map[string]Action{
	"retry_job": {
		Name: "retry_job", Title: "Retry job", On: "job", Fields: []string{"job_id"},
		Offer: offerOp("retry"),
		Do: onJob("retry", func(f url.Values) string {
			return back("/console/queue/jobs/"+url.PathEscape(f.Get("job_id")), f, "done", "retry_job")
		}),
	},
	"delete_job": {
		Name: "delete_job", Title: "Delete job", On: "job", Fields: []string{"job_id"},
		Offer: offerOp("delete"),
		Do: onJob("delete", func(f url.Values) string {
			return back("/console/queue", f, "done", "delete_job", "job_id", f.Get("job_id"))
		}),
		Done: func(q url.Values) string {
			return "Delete job: job " + q.Get("job_id") + " deleted, with its attempts."
		},
	},
	"selected_jobs": {
		Name: "selected_jobs", Title: "Change selected jobs",
		Prepare: func(ctx context.Context, c *Console, q url.Values) (any, error) { return c.loadSelection(ctx, q) },
		Do:      runSelection,
		Done: func(q url.Values) string {
			op := jobOps[q.Get("op")]
			return "Selected jobs: " + q.Get("changed") + " " + op.Past + ", " + q.Get("skipped") +
				" skipped (not in a state " + op.Name + " applies to)."
		},
	},
	"bulk_jobs": {
		Name: "bulk_jobs", Title: "Change jobs by filter",
		Prepare: prepareBulk,
		Do:      runBulk,
		Done: func(q url.Values) string {
			op := jobOps[q.Get("op")]
			return "Bulk " + op.Name + " by filter: " + q.Get("affected") + " jobs " + op.Past + " of " + q.Get("matched") +
				" matching; " + q.Get("remaining") + " remaining."
		},
	},
	"pause_type": {
		Name: "pause_type", Title: "Pause job type", Fields: []string{"job_type"},
		Do: func(ctx context.Context, c *Console, f url.Values) (string, error) {
			resp, err := c.c.queue.PauseJobType(ctx, &queuev1.PauseJobTypeRequest{JobType: strings.TrimSpace(f.Get("job_type"))})
			if err != nil {
				return "", err
			}
			return back("/console/queue", f, "done", "pause_type", "job_type", resp.GetPausedType().GetJobType()), nil
		},
		Done: func(q url.Values) string {
			return "Pause job type: " + q.Get("job_type") + " is paused; workers lease none of its jobs until it is resumed."
		},
	},
	"resume_type": {
		Name: "resume_type", Title: "Resume job type", Fields: []string{"job_type"},
		Do: func(ctx context.Context, c *Console, f url.Values) (string, error) {
			resp, err := c.c.queue.ResumeJobType(ctx, &queuev1.ResumeJobTypeRequest{JobType: strings.TrimSpace(f.Get("job_type"))})
			if err != nil {
				return "", err
			}
			return back("/console/queue", f, "done", "resume_type", "job_type", f.Get("job_type"),
				"resumed", strconv.FormatBool(resp.GetResumed())), nil
		},
		Done: func(q url.Values) string {
			if q.Get("resumed") != "true" {
				return "Resume job type: " + q.Get("job_type") + " was not paused; nothing changed."
			}
			return "Resume job type: " + q.Get("job_type") + " runs again."
		},
	},
}

// onJob is the Do of a job page's action: op on the form's job_id, then
// to next.
func onJob(op string, next func(f url.Values) string) func(context.Context, *Console, url.Values) (string, error) {
	return func(ctx context.Context, c *Console, f url.Values) (string, error) {
		if err := jobOps[op].run(ctx, c.c.queue, f.Get("job_id")); err != nil {
			return "", err
		}
		return next(f), nil
	}
}

// back is where an action goes next: path in the form's tenant, with kv.
func back(path string, f url.Values, kv ...string) string {
	return pageLink(path, url.Values{"tenant": {f.Get("tenant")}}, kv...)
}

// jobOp is a change the selection and bulk forms make to jobs.
type jobOp struct {
	Name, Title, Past string
	// States are the statuses the queue applies it to.
	States []string
	Bulk   queuev1.BulkAction
	run    func(ctx context.Context, q queuev1.QueueServiceClient, id string) error
}

var jobOps = map[string]jobOp{
	"retry": {Name: "retry", Title: "Retry", Past: "retried", States: []string{"dead", "failed", "cancelled"}, Bulk: queuev1.BulkAction_BULK_ACTION_RETRY,
		run: func(ctx context.Context, q queuev1.QueueServiceClient, id string) error {
			_, err := q.RetryJob(ctx, &queuev1.RetryJobRequest{JobId: id})
			return err
		}},
	"cancel": {Name: "cancel", Title: "Cancel", Past: "cancelled", States: []string{"queued", "processing", "failed"}, Bulk: queuev1.BulkAction_BULK_ACTION_CANCEL,
		run: func(ctx context.Context, q queuev1.QueueServiceClient, id string) error {
			_, err := q.CancelJob(ctx, &queuev1.CancelJobRequest{JobId: id})
			return err
		}},
	"delete": {Name: "delete", Title: "Delete", Past: "deleted", States: []string{"completed", "dead", "failed", "cancelled"}, Bulk: queuev1.BulkAction_BULK_ACTION_DELETE,
		run: func(ctx context.Context, q queuev1.QueueServiceClient, id string) error {
			_, err := q.DeleteJob(ctx, &queuev1.DeleteJobRequest{JobId: id})
			return err
		}},
}

// opOrder is jobOps in the order the forms offer them.
var opOrder = []jobOp{jobOps["retry"], jobOps["cancel"], jobOps["delete"]}

func parseOp(v string) (jobOp, error) {
	op, ok := jobOps[v]
	if !ok {
		return jobOp{}, apierr.InvalidArgument("BULK_ACTION_INVALID", "The action must be retry, cancel or delete, not %q.", apierr.Clip(v))
	}
	return op, nil
}

// offerOp offers a job page's action when op applies to the job's status
// and the person is not reading another tenant.
func offerOp(op string) func(*session, map[string]string) bool {
	return func(_ *session, job map[string]string) bool {
		return job["read_only"] == "" && slices.Contains(jobOps[op].States, job["status"])
	}
}

// readOnly: a platform admin reading another tenant changes nothing there.
func readOnly(r *http.Request, s *session) bool {
	t := viewTenant(r)
	return t != "" && t != s.Tenant
}

// --- A selection of the queue page's jobs -----------------------------------

type selection struct {
	Op      jobOp
	Jobs    []selectedJob
	Applies int
}

type selectedJob struct {
	Job     *queuev1.Job
	Applies bool
}

// selectedIDs are the form's job ids: 1 to a page's worth, each a job id.
func selectedIDs(f url.Values) ([]string, error) {
	var ids []string
	for _, id := range f["job_id"] {
		if id = strings.TrimSpace(id); !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil, apierr.InvalidArgument("SELECTION_EMPTY", "Select at least one job.")
	}
	if len(ids) > pageSize {
		return nil, apierr.InvalidArgument("SELECTION_TOO_LARGE", "Select at most %d jobs (one page) at a time, not %d.", pageSize, len(ids))
	}
	for _, id := range ids {
		if _, err := ulid.ParseStrict(id); err != nil {
			return nil, apierr.InvalidArgument("JOB_ID_INVALID", "%q is not a job id.", apierr.Clip(id))
		}
	}
	return ids, nil
}

// loadSelection reads each selected job as the person: another tenant's
// job is the queue's NotFound, before anything changes.
func (c *Console) loadSelection(ctx context.Context, f url.Values) (*selection, error) {
	op, err := parseOp(f.Get("op"))
	if err != nil {
		return nil, err
	}
	ids, err := selectedIDs(f)
	if err != nil {
		return nil, err
	}
	sel := &selection{Op: op}
	for _, id := range ids {
		resp, err := c.c.queue.GetJob(ctx, &queuev1.GetJobRequest{JobId: id})
		if err != nil {
			return nil, err
		}
		applies := slices.Contains(op.States, statusName(resp.GetJob().GetStatus()))
		if applies {
			sel.Applies++
		}
		sel.Jobs = append(sel.Jobs, selectedJob{Job: resp.GetJob(), Applies: applies})
	}
	return sel, nil
}

func runSelection(ctx context.Context, c *Console, f url.Values) (string, error) {
	sel, err := c.loadSelection(ctx, f)
	if err != nil {
		return "", err
	}
	changed, skipped := 0, 0
	for _, j := range sel.Jobs {
		if !j.Applies {
			skipped++
			continue
		}
		switch err := sel.Op.run(ctx, c.c.queue, j.Job.GetJobId()); status.Code(err) {
		case codes.OK:
			changed++
		case codes.FailedPrecondition, codes.NotFound: // changed or gone since it was read
			skipped++
		default:
			return "", err
		}
	}
	return back("/console/queue", f, "done", "selected_jobs", "op", sel.Op.Name,
		"changed", strconv.Itoa(changed), "skipped", strconv.Itoa(skipped)), nil
}

// --- Bulk by filter -----------------------------------------------------------

// bulkFields are the bulk form's fields (statuses may repeat).
var bulkFields = []string{"op", "statuses", "type", "priority", "created_after", "created_before", "limit"}

// maxBulkLimit is the most jobs one BulkJobs call changes.
const maxBulkLimit = 1000

type bulkPlan struct {
	Op     jobOp
	Req    *queuev1.BulkJobsRequest
	Limit  int64
	Filter []string // the filter in words
	Form   []kv     // the fields, sent again by the confirmation
	// From the dry run: Matched now, of which Count are changed by one call.
	Matched, Count int64
}

// parseBulk checks the bulk form and builds the BulkJobs request.
func parseBulk(f url.Values) (*bulkPlan, error) {
	op, err := parseOp(f.Get("op"))
	if err != nil {
		return nil, err
	}
	p := &bulkPlan{Op: op, Limit: maxBulkLimit, Form: []kv{{Key: "op", Value: op.Name}}}
	filter := &queuev1.JobFilter{Type: strings.TrimSpace(f.Get("type"))}
	for _, v := range f["statuses"] {
		if !slices.Contains(statusTabs, v) {
			return nil, apierr.InvalidArgument("STATUS_INVALID", "There is no job status %q.", apierr.Clip(v))
		}
		filter.Statuses = append(filter.Statuses, jobStatus(v))
		p.Form = append(p.Form, kv{Key: "statuses", Value: v})
	}
	if len(f["statuses"]) > 0 {
		p.Filter = append(p.Filter, "status "+strings.Join(f["statuses"], " or "))
	}
	if filter.Type != "" {
		p.Filter = append(p.Filter, "type "+filter.Type)
		p.Form = append(p.Form, kv{Key: "type", Value: filter.Type})
	}
	if v := f.Get("priority"); v != "" {
		filter.Priority = queuev1.Priority(queuev1.Priority_value["PRIORITY_"+strings.ToUpper(v)])
		if filter.Priority == queuev1.Priority_PRIORITY_UNSPECIFIED {
			return nil, apierr.InvalidArgument("PRIORITY_INVALID", "There is no priority %q.", apierr.Clip(v))
		}
		p.Filter = append(p.Filter, "priority "+v)
		p.Form = append(p.Form, kv{Key: "priority", Value: v})
	}
	for _, w := range []struct {
		key, words string
		ts         **timestamppb.Timestamp
	}{{"created_after", "created at or after ", &filter.CreatedAfter}, {"created_before", "created before ", &filter.CreatedBefore}} {
		v := strings.TrimSpace(f.Get(w.key))
		if v == "" {
			continue
		}
		t, err := parseWhen(v)
		if err != nil {
			return nil, err
		}
		*w.ts = timestamppb.New(t)
		p.Filter = append(p.Filter, w.words+t.Format("2006-01-02 15:04:05Z"))
		p.Form = append(p.Form, kv{Key: w.key, Value: v})
	}
	if v := strings.TrimSpace(f.Get("limit")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxBulkLimit {
			return nil, apierr.InvalidArgument("BULK_LIMIT_INVALID", "The limit must be 1 to %d jobs per call, not %q.", maxBulkLimit, apierr.Clip(v))
		}
		p.Limit = int64(n)
		p.Form = append(p.Form, kv{Key: "limit", Value: v})
	}
	p.Req = &queuev1.BulkJobsRequest{Action: op.Bulk, Filter: filter, Limit: int32(p.Limit)}
	return p, nil
}

// parseWhen reads a time of the bulk form, in UTC: RFC 3339, or what a
// datetime-local input or a date sends.
func parseWhen(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t.UTC(), nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, v, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, apierr.InvalidArgument("CREATED_RANGE_INVALID", "%q is not a time: use 2026-12-01T00:00 (UTC) or RFC 3339.", apierr.Clip(v))
}

// prepareBulk runs the bulk change as a dry run for its confirmation.
func prepareBulk(ctx context.Context, c *Console, q url.Values) (any, error) {
	p, err := parseBulk(q)
	if err != nil {
		return nil, err
	}
	p.Req.DryRun = true
	resp, err := c.c.queue.BulkJobs(ctx, p.Req)
	if err != nil {
		return nil, err
	}
	p.Matched, p.Count = resp.GetMatched(), min(resp.GetMatched(), p.Limit)
	return p, nil
}

func runBulk(ctx context.Context, c *Console, f url.Values) (string, error) {
	p, err := parseBulk(f)
	if err != nil {
		return "", err
	}
	resp, err := c.c.queue.BulkJobs(ctx, p.Req)
	if err != nil {
		return "", err
	}
	q := url.Values{}
	if t := f.Get("tenant"); t != "" {
		q.Set("tenant", t)
	}
	for _, field := range p.Form {
		q.Add(field.Key, field.Value)
	}
	q.Set("done", "bulk_jobs")
	q.Set("matched", strconv.FormatInt(resp.GetMatched(), 10))
	q.Set("affected", strconv.FormatInt(resp.GetAffected(), 10))
	q.Set("remaining", strconv.FormatInt(resp.GetRemaining(), 10))
	return "/console/queue?" + q.Encode(), nil
}

// --- The queue page's and the job page's parts ------------------------------

// queueRepairs is what the queue page shows of the repairs.
type queueRepairs struct {
	ReadOnly   bool
	Done       string
	Again      string // the bulk change again, for the jobs it left
	Ops        []jobOp
	Statuses   []string
	Priorities []string
	Paused     []pausedRow
}

type pausedRow struct {
	Type   *queuev1.PausedJobType
	Resume string
}

func (c *Console) queueRepairs(r *http.Request, s *session, st *queuev1.GetQueueStatusResponse) queueRepairs {
	q := r.URL.Query()
	d := queueRepairs{ReadOnly: readOnly(r, s), Done: doneText(r), Ops: opOrder, Statuses: statusTabs,
		Priorities: []string{"critical", "high", "normal", "low"}}
	if q.Get("done") == "bulk_jobs" && q.Get("remaining") != "0" && q.Get("remaining") != "" {
		again := url.Values{}
		for _, k := range append([]string{"tenant"}, bulkFields...) {
			if v := q[k]; len(v) > 0 {
				again[k] = v
			}
		}
		d.Again = "/console/actions/bulk_jobs?" + again.Encode()
	}
	for _, p := range st.GetPausedTypes() {
		d.Paused = append(d.Paused, pausedRow{Type: p,
			Resume: pageLink("/console/actions/resume_type", url.Values{"tenant": {viewTenant(r)}}, "job_type", p.GetJobType())})
	}
	return d
}

// dropNotice removes an action's notice and result from a page's query,
// keeping its filters (type, priority).
func dropNotice(q url.Values) {
	for _, k := range []string{"done", "op", "statuses", "created_after", "created_before", "limit",
		"matched", "affected", "remaining", "changed", "skipped", "job_id", "job_type", "resumed"} {
		q.Del(k)
	}
}

// attemptsView is a bounded page of a job's attempts.
type attemptsView struct {
	Rows []jobAttemptRow
	Next string
	Err  string
}

type jobAttemptRow struct {
	*queuev1.JobAttempt
	Outcome string
}

func (c *Console) jobAttempts(r *http.Request, s *session, jobID string) attemptsView {
	resp, err := c.c.queue.ListJobAttempts(c.call(r, s), &queuev1.ListJobAttemptsRequest{
		JobId: jobID, PageSize: pageSize, PageToken: r.URL.Query().Get("attempts_page"),
	})
	if err != nil {
		return attemptsView{Err: errText(err)}
	}
	v := attemptsView{}
	if t := resp.GetNextPageToken(); t != "" {
		v.Next = pageLink(r.URL.Path, r.URL.Query(), "attempts_page", t, "done", "")
	}
	for _, a := range resp.GetAttempts() {
		v.Rows = append(v.Rows, jobAttemptRow{JobAttempt: a,
			Outcome: strings.ToLower(strings.TrimPrefix(a.GetOutcome().String(), "ATTEMPT_OUTCOME_"))})
	}
	return v
}
