package console

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	finopsv1 "github.com/echopilot/echopilot/gen/go/echopilot/finops/v1"
	growthv1 "github.com/echopilot/echopilot/gen/go/echopilot/growth/v1"
	outboxv1 "github.com/echopilot/echopilot/gen/go/echopilot/outbox/v1"
	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	"github.com/echopilot/echopilot/platform/apierr"
)

// Every page below is a thin handler: read the query, call the backends as
// the person (bounded: one page of pageSize, counts from status endpoints),
// render one template.

// --- Overview ---------------------------------------------------------------

type overviewData struct {
	Health       []kv
	Queue        *queuev1.GetQueueStatusResponse
	QueueErr     string
	Verification *auditv1.Verification
	AuditTotal   uint64
	AuditErr     string
	Traffic      Traffic
	TrafficChart chart
	// Outbox is each service's dead-lettered events, for a platform admin
	// only (nil for anyone else: the services would refuse them).
	Outbox []outboxCount
}

// outboxCount is one service's outbox: its dead-lettered events and the
// events waiting for delivery, with the lag (the oldest one's age).
type outboxCount struct {
	Service string
	Dead    int64
	Pending int64
	Lag     string // "" when none waits
	Err     string
	Link    string
	Actions []actionLink
}

type kv struct {
	Key, Value string
	OK         bool
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := c.call(r, s)
	d := overviewData{Traffic: c.deps.Traffic()}
	var wg sync.WaitGroup
	wg.Go(func() {
		for name, state := range c.deps.Health(r.Context()) {
			d.Health = append(d.Health, kv{Key: name, Value: state, OK: state == "SERVING"})
		}
		sort.Slice(d.Health, func(i, j int) bool { return d.Health[i].Key < d.Health[j].Key })
	})
	wg.Go(func() {
		q, err := c.c.queue.GetQueueStatus(ctx, &queuev1.GetQueueStatusRequest{})
		d.Queue, d.QueueErr = q, errText(err)
	})
	wg.Go(func() {
		a, err := c.c.audit.GetChain(ctx, &auditv1.GetChainRequest{Limit: 1})
		if err == nil {
			d.Verification, d.AuditTotal = a.GetVerification(), a.GetTotal()
		}
		d.AuditErr = errText(err)
	})
	if s.Admin() {
		d.Outbox = make([]outboxCount, len(outboxServices))
		for i, name := range outboxServices {
			wg.Go(func() { d.Outbox[i] = c.outboxCount(r, s, name) })
		}
	}
	wg.Wait()
	bars := make([]bar, len(d.Traffic.Minutes))
	for i, m := range d.Traffic.Minutes {
		bars[i] = bar{Label: m.Start.Format("15:04"), Values: []float64{float64(m.Requests), float64(m.Errors)}}
	}
	d.TrafficChart = barChart(bars, "requests", "errors (5xx)")
	c.render(w, r, s, http.StatusOK, "overview", "Overview", d)
}

// --- Outbox -----------------------------------------------------------------

// outboxServices are the services with a transactional outbox.
var outboxServices = []string{"audit", "queue", "tenancy"}

// outboxAdmin is the dead-letter repair API every outbox service declares.
type outboxAdmin interface {
	ListDeadEvents(ctx context.Context, in *outboxv1.ListDeadEventsRequest, opts ...grpc.CallOption) (*outboxv1.ListDeadEventsResponse, error)
	RequeueDeadEvents(ctx context.Context, in *outboxv1.RequeueDeadEventsRequest, opts ...grpc.CallOption) (*outboxv1.RequeueDeadEventsResponse, error)
}

// outbox is service name's dead-letter API.
func (c *Console) outbox(name string) (outboxAdmin, error) {
	switch name {
	case "audit":
		return c.c.audit, nil
	case "queue":
		return c.c.queue, nil
	case "tenancy":
		return c.c.tenancy, nil
	}
	return nil, apierr.InvalidArgument("UNKNOWN_SERVICE", "There is no outbox service %q: choose one of %s.", name, strings.Join(outboxServices, ", "))
}

// outboxCount counts one page of a service's dead events, as the person in
// their own tenant (the outbox APIs are the platform tenant's).
func (c *Console) outboxCount(r *http.Request, s *session, name string) outboxCount {
	o := outboxCount{Service: name, Link: pageLink("/console/outbox", url.Values{"service": {name}})}
	svc, _ := c.outbox(name)
	resp, err := svc.ListDeadEvents(c.callFor(r, s, ""), &outboxv1.ListDeadEventsRequest{PageSize: 1})
	if err != nil {
		o.Err = errText(err)
		return o
	}
	o.Dead, o.Pending = resp.GetDeadCount(), resp.GetPendingCount()
	if t := resp.GetOldestPendingTime(); t != nil {
		o.Lag = max(0, c.now().Sub(t.AsTime())).Round(time.Second).String()
	}
	o.Actions = c.actionsFor("outbox", nil, s, map[string]string{"service": name, "dead": strconv.FormatInt(o.Dead, 10)})
	return o
}

type outboxData struct {
	Service string
	Topic   string
	Tabs    []tab
	Events  []deadEventRow
	Next    string
	Done    string
	Actions []actionLink
}

type deadEventRow struct {
	E       *outboxv1.DeadEvent
	Actions []actionLink
}

// outboxPage lists the dead events of one service (?service=), a page at
// a time, newest dead first, each with its requeue action.
func (c *Console) outboxPage(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	name := q.Get("service")
	if name == "" {
		name = outboxServices[0]
	}
	svc, err := c.outbox(name)
	if err != nil {
		c.backendFail(w, r, s, err)
		return
	}
	topic := strings.TrimSpace(q.Get("topic"))
	resp, err := svc.ListDeadEvents(c.callFor(r, s, ""), &outboxv1.ListDeadEventsRequest{Topic: topic, PageSize: pageSize, PageToken: q.Get("page_token")})
	if err != nil {
		c.backendFail(w, r, s, err)
		return
	}
	d := outboxData{Service: name, Topic: topic, Next: nextLink("/console/outbox", r, resp.GetNextPageToken()), Done: doneText(r)}
	for _, n := range outboxServices {
		d.Tabs = append(d.Tabs, tab{Name: n, Link: pageLink("/console/outbox", url.Values{"service": {n}}), Active: n == name})
	}
	for _, e := range resp.GetEvents() {
		d.Events = append(d.Events, deadEventRow{E: e, Actions: c.actionsFor("dead_event", nil, s, map[string]string{"service": name, "id": e.GetId()})})
	}
	d.Actions = c.actionsFor("outbox", nil, s, map[string]string{"service": name, "topic": topic, "dead": strconv.Itoa(len(d.Events))})
	c.render(w, r, s, http.StatusOK, "outbox", "Outbox", d)
}

// --- Queue ------------------------------------------------------------------

var statusTabs = []string{"queued", "processing", "completed", "failed", "dead", "cancelled"}

type queueData struct {
	Status     *queuev1.GetQueueStatusResponse
	Tabs       []tab
	Jobs       []*queuev1.Job
	Next       string
	Query      url.Values
	Priority   string
	Priorities []string
	Repairs    queueRepairs
}

type tab struct {
	Name, Link string
	Count      int64
	Active     bool
}

func jobStatus(name string) queuev1.JobStatus {
	return queuev1.JobStatus(queuev1.JobStatus_value["JOB_STATUS_"+strings.ToUpper(name)])
}

func (c *Console) queuePage(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	if id := strings.TrimSpace(q.Get("id")); id != "" {
		http.Redirect(w, r, pageLink("/console/queue/jobs/"+url.PathEscape(id), url.Values{"tenant": {q.Get("tenant")}}), http.StatusSeeOther)
		return
	}
	ctx := c.call(r, s)
	st, err := c.c.queue.GetQueueStatus(ctx, &queuev1.GetQueueStatusRequest{})
	if err != nil {
		c.backendFail(w, r, s, err)
		return
	}
	active := q.Get("status")
	if active != "" && jobStatus(active) == queuev1.JobStatus_JOB_STATUS_UNSPECIFIED {
		c.fail(w, r, s, http.StatusBadRequest, "INVALID_STATUS", "There is no job status "+strconv.Quote(active)+".")
		return
	}
	counts := map[string]int64{"queued": st.GetQueued(), "processing": st.GetProcessing(), "completed": st.GetCompleted(),
		"failed": st.GetFailed(), "dead": st.GetDead(), "cancelled": st.GetCancelled()}
	d := queueData{Status: st, Query: q, Priority: q.Get("priority"), Priorities: []string{"critical", "high", "normal", "low"}, Repairs: c.queueRepairs(r, s, st)}
	dropNotice(q) // the tabs and the next page do not repeat the notice
	d.Tabs = append(d.Tabs, tab{Name: "all", Link: pageLink("/console/queue", q, "status", "", "page_token", ""), Count: st.GetTotalJobs(), Active: active == ""})
	for _, name := range statusTabs {
		d.Tabs = append(d.Tabs, tab{Name: name, Link: pageLink("/console/queue", q, "status", name, "page_token", ""), Count: counts[name], Active: active == name})
	}
	prio := queuev1.Priority_PRIORITY_UNSPECIFIED
	if d.Priority != "" {
		v, ok := queuev1.Priority_value["PRIORITY_"+strings.ToUpper(d.Priority)]
		if !ok || v == 0 {
			c.fail(w, r, s, http.StatusBadRequest, "INVALID_PRIORITY", "There is no priority "+strconv.Quote(d.Priority)+".")
			return
		}
		prio = queuev1.Priority(v)
	}
	resp, err := c.c.queue.ListJobs(ctx, &queuev1.ListJobsRequest{
		PageSize: pageSize, PageToken: q.Get("page_token"), Status: jobStatus(active), Type: q.Get("type"), Priority: prio,
	})
	if err != nil {
		c.backendFail(w, r, s, err)
		return
	}
	d.Jobs = resp.GetJobs()
	if resp.GetNextPageToken() != "" {
		d.Next = pageLink("/console/queue", q, "page_token", resp.GetNextPageToken())
	}
	c.render(w, r, s, http.StatusOK, "queue", "Queue", d)
}

type jobData struct {
	Job      *queuev1.Job
	Payload  string
	Result   string
	Actions  []actionLink
	Done     string
	Attempts attemptsView
}

func (c *Console) jobPage(w http.ResponseWriter, r *http.Request, s *session) {
	resp, err := c.c.queue.GetJob(c.call(r, s), &queuev1.GetJobRequest{JobId: r.PathValue("id")})
	if err != nil {
		c.backendFail(w, r, s, err)
		return
	}
	j := resp.GetJob()
	d := jobData{Job: j, Payload: prettyJSON(j.GetPayload()), Result: prettyJSON(j.GetResult()), Done: doneText(r), Attempts: c.jobAttempts(r, s, j.GetJobId())}
	obj := map[string]string{"job_id": j.GetJobId(), "status": statusName(j.GetStatus())}
	if readOnly(r, s) {
		obj["read_only"] = "yes"
	}
	d.Actions = c.actionsFor("job", r, s, obj)
	c.render(w, r, s, http.StatusOK, "job", "Job "+j.GetJobId(), d)
}

// --- Workers ----------------------------------------------------------------

type listData[T any] struct {
	Items []T
	Next  string
}

func (c *Console) workersPage(w http.ResponseWriter, r *http.Request, s *session) {
	resp, err := c.c.queue.ListWorkers(c.call(r, s), &queuev1.ListWorkersRequest{PageSize: pageSize, PageToken: r.URL.Query().Get("page_token")})
	if err != nil {
		c.backendFail(w, r, s, err)
		return
	}
	c.render(w, r, s, http.StatusOK, "workers", "Workers", listData[*queuev1.Worker]{
		Items: resp.GetWorkers(), Next: nextLink("/console/workers", r, resp.GetNextPageToken()),
	})
}

// --- Audit ------------------------------------------------------------------

type auditData struct {
	Entries      []*auditv1.Entry
	Total        uint64
	Verification *auditv1.Verification
	Retention    *auditv1.Retention
	Next         string
	Query        url.Values
	Severities   []string
}

func severity(name string) auditv1.Severity {
	return auditv1.Severity(auditv1.Severity_value["SEVERITY_"+strings.ToUpper(name)])
}

func (c *Console) auditPage(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	resp, err := c.c.audit.GetChain(c.call(r, s), &auditv1.GetChainRequest{
		Limit: pageSize, PageToken: q.Get("page_token"), TenantId: q.Get("tenant"), Order: "desc",
		EventType: q.Get("event_type"), User: q.Get("user"), Resource: q.Get("resource"),
		Severity: severity(q.Get("severity")), Since: q.Get("since"), Until: q.Get("until"),
	})
	if err != nil {
		c.backendFail(w, r, s, err)
		return
	}
	c.render(w, r, s, http.StatusOK, "audit", "Audit log", auditData{
		Entries: resp.GetEntries(), Total: resp.GetTotal(), Verification: resp.GetVerification(), Retention: resp.GetRetention(),
		Next: nextLink("/console/audit", r, resp.GetNextPageToken()), Query: q,
		Severities: []string{"low", "medium", "high", "critical"},
	})
}

// checkpointJSON downloads the signed checkpoint, as the API answers it.
func (c *Console) checkpointJSON(w http.ResponseWriter, r *http.Request, s *session) {
	resp, err := c.c.audit.GetCheckpoint(c.call(r, s), &auditv1.GetCheckpointRequest{TenantId: r.URL.Query().Get("tenant")})
	if err != nil {
		c.backendFail(w, r, s, err)
		return
	}
	c.download(w, "checkpoint.json", resp)
}

// proofJSON downloads the inclusion proof of entry ?seq=.
func (c *Console) proofJSON(w http.ResponseWriter, r *http.Request, s *session) {
	seq, err := strconv.ParseUint(r.URL.Query().Get("seq"), 10, 64)
	if err != nil {
		c.fail(w, r, s, http.StatusBadRequest, "INVALID_SEQ", "seq must be an entry's sequence number.")
		return
	}
	resp, err := c.c.audit.GetInclusionProof(c.call(r, s), &auditv1.GetInclusionProofRequest{Seq: seq, TenantId: r.URL.Query().Get("tenant")})
	if err != nil {
		c.backendFail(w, r, s, err)
		return
	}
	c.download(w, "inclusion-proof-"+strconv.FormatUint(seq, 10)+".json", resp)
}

func (c *Console) download(w http.ResponseWriter, name string, m proto.Message) {
	b, err := protojson.MarshalOptions{Multiline: true, UseProtoNames: true, EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		http.Error(w, "could not encode", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	_, _ = w.Write(b)
}

// --- Webhooks ---------------------------------------------------------------

type webhooksData struct {
	Endpoints   []endpointRow
	MoreEPs     bool
	Attempts    []attemptRow
	Endpoint    string
	NextAttempt string
	Done        string
	Denied      string // why a platform admin cannot read this tenant's webhooks
}

type endpointRow struct {
	E        *auditv1.Endpoint
	Types    string
	Severity string
	Actions  []actionLink
}

type attemptRow struct {
	A       *auditv1.DeliveryAttempt
	Actions []actionLink // on the delivery's latest attempt of the page only
}

func (c *Console) webhooksPage(w http.ResponseWriter, r *http.Request, s *session) {
	ctx, q := c.call(r, s), r.URL.Query()
	eps, err := c.c.audit.ListEndpoints(ctx, &auditv1.ListEndpointsRequest{TenantId: q.Get("tenant"), PageSize: pageSize})
	if status.Code(err) == codes.PermissionDenied && s.Admin() && q.Get("tenant") != "" {
		// The webhook APIs are the tenant's own: no admin cross-tenant read.
		c.render(w, r, s, http.StatusOK, "webhooks", "Webhooks", webhooksData{Denied: errText(err)})
		return
	}
	if err != nil {
		c.backendFail(w, r, s, err)
		return
	}
	att, err := c.c.audit.ListDeliveryAttempts(ctx, &auditv1.ListDeliveryAttemptsRequest{
		TenantId: q.Get("tenant"), EndpointId: q.Get("endpoint"), PageSize: pageSize, PageToken: q.Get("page_token"),
	})
	if err != nil {
		c.backendFail(w, r, s, err)
		return
	}
	d := webhooksData{Endpoint: q.Get("endpoint"), MoreEPs: eps.GetNextPageToken() != "", Done: doneText(r),
		NextAttempt: nextLink("/console/webhooks", r, att.GetNextPageToken())}
	for _, e := range eps.GetEndpoints() {
		sev := e.GetMinSeverity()
		if sev == auditv1.Severity_SEVERITY_UNSPECIFIED {
			sev = auditv1.Severity_SEVERITY_HIGH
		}
		row := endpointRow{E: e, Types: strings.Join(e.GetEventTypes(), ", "), Severity: severityName(sev)}
		row.Actions = c.actionsFor("endpoint", r, s, map[string]string{"endpoint_id": e.GetEndpointId(),
			"enabled": strconv.FormatBool(e.GetEnabled()), "event_types": row.Types, "min_severity": row.Severity})
		d.Endpoints = append(d.Endpoints, row)
	}
	seen := map[string]bool{}
	for _, a := range att.GetAttempts() { // newest first
		row := attemptRow{A: a}
		if !seen[a.GetDeliveryId()] {
			seen[a.GetDeliveryId()] = true
			row.Actions = c.actionsFor("delivery", r, s, map[string]string{"delivery_id": a.GetDeliveryId(),
				"endpoint_id": a.GetEndpointId(), "outcome": a.GetOutcome()})
		}
		d.Attempts = append(d.Attempts, row)
	}
	c.render(w, r, s, http.StatusOK, "webhooks", "Webhooks", d)
}

// --- FinOps -----------------------------------------------------------------

type finopsData struct {
	Days    int32
	Periods []tab
	Summary *finopsv1.GetSummaryResponse
	Tenants *finopsv1.ListTenantCostsResponse
	Series  *finopsv1.GetTimeseriesResponse
	Chart   chart
	Next    string
}

func (c *Console) finopsPage(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	days := int32(30)
	switch q.Get("days") {
	case "7":
		days = 7
	case "90":
		days = 90
	}
	ctx := c.call(r, s)
	sum, err := c.c.finops.GetSummary(ctx, &finopsv1.GetSummaryRequest{Days: days, TenantId: q.Get("tenant")})
	if err != nil {
		c.backendFail(w, r, s, err)
		return
	}
	tc, err := c.c.finops.ListTenantCosts(ctx, &finopsv1.ListTenantCostsRequest{Days: days, TenantId: q.Get("tenant"), PageSize: pageSize, PageToken: q.Get("page_token")})
	if err != nil {
		c.backendFail(w, r, s, err)
		return
	}
	d := finopsData{Days: days, Summary: sum, Tenants: tc, Next: nextLink("/console/finops", r, tc.GetNextPageToken())}
	for _, p := range []int32{7, 30, 90} {
		ps := strconv.Itoa(int(p))
		d.Periods = append(d.Periods, tab{Name: ps + " days", Link: pageLink("/console/finops", q, "days", ps, "page_token", ""), Active: p == days})
	}
	series, err := c.c.finops.GetTimeseries(ctx, &finopsv1.GetTimeseriesRequest{Days: days, TenantId: q.Get("tenant")})
	if err != nil {
		c.backendFail(w, r, s, err)
		return
	}
	d.Series = series
	bars := make([]bar, 0, len(series.GetDays()))
	for _, day := range series.GetDays() {
		label := day.GetDate()
		if len(label) == len("2006-01-02") {
			label = label[5:] // MM-DD
		}
		bars = append(bars, bar{Label: label, Values: []float64{day.GetRevenue(), day.GetAiCost(), day.GetInfrastructureCost(), day.GetProfit()}})
	}
	d.Chart = barChart(bars, "revenue", "AI cost", "infrastructure cost", "profit")
	c.render(w, r, s, http.StatusOK, "finops", "FinOps", d)
}

// --- Growth -----------------------------------------------------------------

type growthData struct {
	Campaigns   *growthv1.ListCampaignsResponse
	Referrals   *growthv1.ListReferralsResponse
	Days        int32
	Next        string
	CSV         string
	State       string
	StateTabs   []tab
	Commissions []*growthv1.Commission
	NextComm    string
	Batches     []batchRow
	Done        string
	Actions     []actionLink
}

// batchRow is a payout batch seen on the page (the one just created, and
// those holding the commissions shown).
type batchRow struct {
	ID      string
	Paid    bool
	CSV     string
	Actions []actionLink
}

var commissionStates = []string{"all", "pending", "approved", "paid", "refunded"}

func (c *Console) growthPage(w http.ResponseWriter, r *http.Request, s *session) {
	ctx, q := c.call(r, s), r.URL.Query()
	days := int32(30)
	if n, err := strconv.Atoi(q.Get("days")); err == nil && n > 0 && n <= 365 {
		days = int32(n)
	}
	state := q.Get("state")
	if state == "" {
		state = "all"
	}
	camps, err := c.c.growth.ListCampaigns(ctx, &growthv1.ListCampaignsRequest{PageSize: pageSize, TenantId: q.Get("tenant")})
	if err != nil {
		c.backendFail(w, r, s, err)
		return
	}
	refs, err := c.c.growth.ListReferrals(ctx, &growthv1.ListReferralsRequest{Days: days, PageSize: pageSize, PageToken: q.Get("page_token"), TenantId: q.Get("tenant")})
	if err != nil {
		c.backendFail(w, r, s, err)
		return
	}
	comms, err := c.c.growth.ListCommissions(ctx, &growthv1.ListCommissionsRequest{State: state, PageSize: pageSize, PageToken: q.Get("commission_page"), TenantId: q.Get("tenant")})
	if err != nil {
		c.backendFail(w, r, s, err)
		return
	}
	tenantQ := url.Values{"tenant": {q.Get("tenant")}}
	d := growthData{
		Campaigns: camps, Referrals: refs, Days: days, Next: nextLink("/console/growth", r, refs.GetNextPageToken()),
		CSV: pageLink("/console/growth/payouts.csv", tenantQ, "state", state),

		State: state, Commissions: comms.GetCommissions(), Done: doneText(r),
		Actions: c.actionsFor("growth", r, s, nil),
	}
	if state == "all" {
		// Every conversion of the referrals active over the period; the
		// other states' exports cover every day, so nothing owed is left out.
		d.CSV = pageLink("/console/growth/payouts.csv", tenantQ, "days", strconv.Itoa(int(days)), "state", state)
	}
	if t := comms.GetNextPageToken(); t != "" {
		d.NextComm = pageLink("/console/growth", q, "commission_page", t)
	}
	for _, st := range commissionStates {
		d.StateTabs = append(d.StateTabs, tab{Name: st, Link: pageLink("/console/growth", q, "state", st, "commission_page", "", "done", "", "n", ""), Active: st == state})
	}
	// Batches: the one just created (?batch=), then those of the page's
	// commissions; paid once every commission of it shown is paid.
	paid, order := map[string]bool{}, []string{}
	if b := q.Get("batch"); b != "" {
		paid[b], order = false, append(order, b)
	}
	for _, cm := range comms.GetCommissions() {
		b := cm.GetBatchId()
		if b == "" {
			continue
		}
		if _, ok := paid[b]; !ok {
			paid[b], order = true, append(order, b)
		}
		if cm.GetState() != "paid" && cm.GetState() != "refunded" {
			paid[b] = false
		}
	}
	for _, b := range order {
		d.Batches = append(d.Batches, batchRow{ID: b, Paid: paid[b],
			CSV:     pageLink("/console/growth/payouts.csv", tenantQ, "batch_id", b),
			Actions: c.actionsFor("batch", r, s, map[string]string{"batch_id": b, "paid": strconv.FormatBool(paid[b])})})
	}
	c.render(w, r, s, http.StatusOK, "growth", "Growth", d)
}

// payoutsCSV streams growth's payout export through, as the person.
func (c *Console) payoutsCSV(w http.ResponseWriter, r *http.Request, s *session) {
	days, _ := strconv.Atoi(r.URL.Query().Get("days"))
	ctx, cancel := context.WithCancel(c.call(r, s))
	defer cancel()
	q := r.URL.Query()
	stream, err := c.c.growth.ExportPayouts(ctx, &growthv1.ExportPayoutsRequest{Days: int32(days), TenantId: q.Get("tenant"),
		State: q.Get("state"), BatchId: q.Get("batch_id")})
	if err != nil {
		c.backendFail(w, r, s, err)
		return
	}
	streamBody(c, w, r, s, stream, "payouts.csv")
}

// streamBody copies an HttpBody stream to w; an error before the first
// chunk is an error page, after it the download is cut short.
func streamBody(c *Console, w http.ResponseWriter, r *http.Request, s *session, stream grpc.ServerStreamingClient[httpbody.HttpBody], name string) {
	first := true
	for {
		chunk, err := stream.Recv()
		if err == io.EOF {
			return
		}
		if err != nil {
			if first {
				c.backendFail(w, r, s, err)
			}
			return
		}
		if first {
			w.Header().Set("Content-Type", chunk.GetContentType())
			w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
			first = false
		}
		if _, err := w.Write(chunk.GetData()); err != nil {
			return
		}
	}
}

// --- Tenants ----------------------------------------------------------------

type tenantsData struct {
	Info    *tenancyv1.GetTenantInfoResponse
	Tenants []*tenancyv1.Tenant
	Next    string
	Done    string
	Actions []actionLink
}

func (c *Console) tenantsPage(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := c.call(r, s)
	info, err := c.c.tenancy.GetTenantInfo(ctx, &tenancyv1.GetTenantInfoRequest{})
	if err != nil {
		c.backendFail(w, r, s, err)
		return
	}
	list, err := c.c.tenancy.ListTenants(c.callFor(r, s, ""), &tenancyv1.ListTenantsRequest{PageSize: pageSize, PageToken: r.URL.Query().Get("page_token")})
	if err != nil {
		c.backendFail(w, r, s, err)
		return
	}
	c.render(w, r, s, http.StatusOK, "tenants", "Tenants", tenantsData{
		Info: info, Tenants: list.GetTenants(), Next: nextLink("/console/tenants", r, list.GetNextPageToken()),
		Done: doneText(r), Actions: c.actionsFor("tenants", r, s, nil),
	})
}

// --- helpers ----------------------------------------------------------------

func nextLink(path string, r *http.Request, token string) string {
	if token == "" {
		return ""
	}
	return pageLink(path, r.URL.Query(), "page_token", token)
}

func prettyJSON(m proto.Message) string {
	if m == nil || !m.ProtoReflect().IsValid() {
		return ""
	}
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(m)
	if err != nil {
		return ""
	}
	return string(b)
}

func statusName(s queuev1.JobStatus) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "JOB_STATUS_"))
}

func severityName(s auditv1.Severity) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "SEVERITY_"))
}

func priorityName(p queuev1.Priority) string {
	return strings.ToLower(strings.TrimPrefix(p.String(), "PRIORITY_"))
}
