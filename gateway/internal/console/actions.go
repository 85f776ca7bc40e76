package console

import (
	"context"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"go.uber.org/zap"

	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	growthv1 "github.com/echopilot/echopilot/gen/go/echopilot/growth/v1"
	outboxv1 "github.com/echopilot/echopilot/gen/go/echopilot/outbox/v1"
	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	"github.com/echopilot/echopilot/platform/apierr"
)

// Action is one thing the console changes: a handler (Do) and a
// confirmation template. GET /console/actions/{Name} shows the
// confirmation with the query's Fields; POST runs Do only with the
// session's CSRF token and confirm=yes, as the signed-in person (Do calls
// the backend with their token, so the backend's own audit names them).
//
// A new repair API (retry, delete, redeliver, …) plugs in as one more
// entry in actions and one template confirm_<name>.html.
type Action struct {
	Name  string
	Title string
	// On names the page that offers it (job, webhooks, tenants, …).
	On string
	// Fields are the form values the action takes (hidden in the
	// confirmation, or inputs the template shows).
	Fields []string
	// Offer, when set, decides whether a page shows the action for an
	// object (say, cancel only for a job that has not finished).
	Offer func(s *session, obj map[string]string) bool
	// Do performs it and returns where to go next.
	Do func(ctx context.Context, c *Console, form url.Values) (next string, err error)
	// Show, instead of Do, performs it and shows its answer once on the
	// page result_<name>.html rather than redirecting (a new secret must
	// not travel in a URL).
	Show func(ctx context.Context, c *Console, form url.Values) (any, error)
	// Prepare, when set, runs before the confirmation shows, as the
	// person: it checks the query and may ask the backends (a dry run, the
	// selected jobs); its answer is the template's .Prepared. An error is
	// the error page, nothing changed.
	Prepare func(ctx context.Context, c *Console, q url.Values) (any, error)
	// Done, when set, words the notice on the page Do redirected to, from
	// that page's query; otherwise "<Title>: done.".
	Done func(q url.Values) string
}

// actions is every action the console offers, by name.
var actions = map[string]Action{
	"cancel_job": {
		Name: "cancel_job", Title: "Cancel job", On: "job", Fields: []string{"job_id"},
		Offer: func(_ *session, job map[string]string) bool {
			return slices.Contains([]string{"queued", "processing", "failed"}, job["status"])
		},
		Do: func(ctx context.Context, c *Console, f url.Values) (string, error) {
			resp, err := c.c.queue.CancelJob(ctx, &queuev1.CancelJobRequest{JobId: f.Get("job_id")})
			if err != nil {
				return "", err
			}
			return pageLink("/console/queue/jobs/"+url.PathEscape(resp.GetJob().GetJobId()), f, "done", "cancel_job", "job_id", "", "confirm", "", "csrf", ""), nil
		},
	},
	"create_tenant": {
		Name: "create_tenant", Title: "Create tenant", On: "tenants", Fields: []string{"tenant_id", "display_name"},
		Offer: func(s *session, _ map[string]string) bool { return s.Admin() },
		Do: func(ctx context.Context, c *Console, f url.Values) (string, error) {
			_, err := c.c.tenancy.CreateTenant(ctx, &tenancyv1.CreateTenantRequest{Tenant: &tenancyv1.Tenant{
				TenantId: strings.TrimSpace(f.Get("tenant_id")), DisplayName: strings.TrimSpace(f.Get("display_name")),
			}})
			if err != nil {
				return "", err
			}
			return "/console/tenants?done=create_tenant", nil
		},
	},

	// --- Webhooks (the tenant's own: audit refuses another tenant's
	// endpoint or delivery as NotFound) ---
	"redeliver_delivery": {
		Name: "redeliver_delivery", Title: "Redeliver", On: "delivery", Fields: []string{"delivery_id", "endpoint_id"},
		Offer: func(_ *session, d map[string]string) bool { return d["outcome"] == "dead" || d["outcome"] == "failed" },
		Do: func(ctx context.Context, c *Console, f url.Values) (string, error) {
			if _, err := c.c.audit.RedeliverDelivery(ctx, &auditv1.RedeliverDeliveryRequest{DeliveryId: f.Get("delivery_id")}); err != nil {
				return "", err
			}
			return doneLink("/console/webhooks", f, "redeliver_delivery", "endpoint", f.Get("endpoint_id")), nil
		},
	},
	"redeliver_endpoint": {
		Name: "redeliver_endpoint", Title: "Redeliver dead deliveries", On: "endpoint", Fields: []string{"endpoint_id"},
		// A disabled endpoint's are sent again by enabling it.
		Offer: func(_ *session, e map[string]string) bool { return e["enabled"] == "true" },
		Do: func(ctx context.Context, c *Console, f url.Values) (string, error) {
			resp, err := c.c.audit.RedeliverEndpoint(ctx, &auditv1.RedeliverEndpointRequest{EndpointId: f.Get("endpoint_id")})
			if err != nil {
				return "", err
			}
			return doneLink("/console/webhooks", f, "redeliver_endpoint", "endpoint", f.Get("endpoint_id"), "n", strconv.FormatInt(resp.GetRedelivered(), 10)), nil
		},
	},
	"disable_endpoint": {
		Name: "disable_endpoint", Title: "Disable", On: "endpoint", Fields: []string{"endpoint_id", "reason"},
		Offer: func(_ *session, e map[string]string) bool { return e["enabled"] == "true" },
		Do: func(ctx context.Context, c *Console, f url.Values) (string, error) {
			if _, err := c.c.audit.DisableEndpoint(ctx, &auditv1.DisableEndpointRequest{
				EndpointId: f.Get("endpoint_id"), Reason: strings.TrimSpace(f.Get("reason")),
			}); err != nil {
				return "", err
			}
			return doneLink("/console/webhooks", f, "disable_endpoint"), nil
		},
	},
	"enable_endpoint": {
		Name: "enable_endpoint", Title: "Enable", On: "endpoint", Fields: []string{"endpoint_id"},
		Offer: func(_ *session, e map[string]string) bool { return e["enabled"] != "true" },
		Do: func(ctx context.Context, c *Console, f url.Values) (string, error) {
			resp, err := c.c.audit.EnableEndpoint(ctx, &auditv1.EnableEndpointRequest{EndpointId: f.Get("endpoint_id")})
			if err != nil {
				return "", err
			}
			return doneLink("/console/webhooks", f, "enable_endpoint", "n", strconv.FormatInt(resp.GetRedelivered(), 10)), nil
		},
	},
	"update_endpoint": {
		Name: "update_endpoint", Title: "Change filters", On: "endpoint", Fields: []string{"endpoint_id", "event_types", "min_severity"},
		Do: func(ctx context.Context, c *Console, f url.Values) (string, error) {
			sev := auditv1.Severity_SEVERITY_UNSPECIFIED
			if name := strings.TrimSpace(f.Get("min_severity")); name != "" {
				if sev = severity(name); sev == auditv1.Severity_SEVERITY_UNSPECIFIED {
					return "", apierr.InvalidArgument("INVALID_SEVERITY", "There is no severity %q.", name)
				}
			}
			types := strings.FieldsFunc(f.Get("event_types"), func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
			if _, err := c.c.audit.UpdateEndpoint(ctx, &auditv1.UpdateEndpointRequest{
				EndpointId: f.Get("endpoint_id"), EventTypes: types, MinSeverity: sev,
			}); err != nil {
				return "", err
			}
			return doneLink("/console/webhooks", f, "update_endpoint"), nil
		},
	},
	"rotate_endpoint_secret": {
		Name: "rotate_endpoint_secret", Title: "Rotate secret", On: "endpoint", Fields: []string{"endpoint_id", "grace_seconds"},
		Show: func(ctx context.Context, c *Console, f url.Values) (any, error) {
			req := &auditv1.RotateEndpointSecretRequest{EndpointId: f.Get("endpoint_id")}
			if g := strings.TrimSpace(f.Get("grace_seconds")); g != "" {
				n, err := strconv.ParseInt(g, 10, 64)
				if err != nil {
					return nil, apierr.InvalidArgument("INVALID_GRACE", "The grace period must be a number of seconds, not %q.", g)
				}
				req.GraceSeconds = &n
			}
			resp, err := c.c.audit.RotateEndpointSecret(ctx, req)
			if err != nil {
				return nil, err
			}
			return rotatedSecret{Endpoint: resp.GetEndpoint(), Secret: resp.GetSecret()}, nil
		},
	},

	// --- Outbox dead letters (platform admins only: the services refuse
	// anyone else with PermissionDenied) ---
	"requeue_dead_events": {
		Name: "requeue_dead_events", Title: "Requeue all dead events", On: "outbox", Fields: []string{"service", "topic"},
		Offer: func(s *session, o map[string]string) bool { return s.Admin() && o["dead"] != "0" },
		Do: func(ctx context.Context, c *Console, f url.Values) (string, error) {
			return requeue(ctx, c, f, &outboxv1.RequeueDeadEventsRequest{All: true, Topic: strings.TrimSpace(f.Get("topic"))}, "requeue_dead_events")
		},
	},
	"requeue_dead_event": {
		Name: "requeue_dead_event", Title: "Requeue", On: "dead_event", Fields: []string{"service", "id"},
		Offer: func(s *session, _ map[string]string) bool { return s.Admin() },
		Do: func(ctx context.Context, c *Console, f url.Values) (string, error) {
			return requeue(ctx, c, f, &outboxv1.RequeueDeadEventsRequest{Ids: []string{f.Get("id")}}, "requeue_dead_event")
		},
	},

	// --- Growth payouts (the tenant's own: growth refuses another
	// tenant's batch as NotFound) ---
	"create_payout_batch": {
		Name: "create_payout_batch", Title: "Create payout batch", On: "growth",
		Do: func(ctx context.Context, c *Console, f url.Values) (string, error) {
			resp, err := c.c.growth.CreatePayoutBatch(ctx, &growthv1.CreatePayoutBatchRequest{})
			if err != nil {
				return "", err
			}
			return doneLink("/console/growth", f, "create_payout_batch", "state", "approved", "batch", resp.GetBatch().GetBatchId()), nil
		},
	},
	"mark_payout_paid": {
		Name: "mark_payout_paid", Title: "Mark paid", On: "batch", Fields: []string{"batch_id"},
		Offer: func(_ *session, b map[string]string) bool { return b["paid"] != "true" },
		Do: func(ctx context.Context, c *Console, f url.Values) (string, error) {
			resp, err := c.c.growth.MarkPayoutPaid(ctx, &growthv1.MarkPayoutPaidRequest{BatchId: strings.TrimSpace(f.Get("batch_id"))})
			if err != nil {
				return "", err
			}
			return doneLink("/console/growth", f, "mark_payout_paid", "state", "paid", "n", strconv.FormatInt(resp.GetBatch().GetPaidCount(), 10)), nil
		},
	},
}

// rotatedSecret is what result_rotate_endpoint_secret shows, once.
type rotatedSecret struct {
	Endpoint *auditv1.Endpoint
	Secret   string
}

// requeue puts dead events of the form's service back for its relay.
func requeue(ctx context.Context, c *Console, f url.Values, req *outboxv1.RequeueDeadEventsRequest, done string) (string, error) {
	svc, err := c.outbox(f.Get("service"))
	if err != nil {
		return "", err
	}
	resp, err := svc.RequeueDeadEvents(ctx, req)
	if err != nil {
		return "", err
	}
	return pageLink("/console/outbox", url.Values{"service": {f.Get("service")}}, "done", done, "n", strconv.FormatInt(resp.GetRequeued(), 10)), nil
}

// doneLink is where an action goes back to: path for the form's tenant,
// with ?done= naming the action and kv added.
func doneLink(path string, f url.Values, done string, kv ...string) string {
	return pageLink(path, url.Values{"tenant": {f.Get("tenant")}}, append([]string{"done", done}, kv...)...)
}

func init() { maps.Copy(actions, queueActions) }

// actionLink is an action a page offers, with the link to its confirmation.
type actionLink struct {
	Name, Title, Link string
}

// actionsFor lists the actions page offers for obj, linked with obj's
// fields and the page's tenant (none when r is nil).
func (c *Console) actionsFor(page string, r *http.Request, s *session, obj map[string]string) []actionLink {
	var out []actionLink
	for _, a := range actions {
		if a.On != page || (a.Offer != nil && !a.Offer(s, obj)) {
			continue
		}
		q := url.Values{}
		if r != nil { // nil: an action of the platform, not of a tenant
			if t := viewTenant(r); t != "" {
				q.Set("tenant", t)
			}
		}
		for _, f := range a.Fields {
			if v := obj[f]; v != "" {
				q.Set(f, v)
			}
		}
		out = append(out, actionLink{Name: a.Name, Title: a.Title, Link: pageLink("/console/actions/"+a.Name, q)})
	}
	slices.SortFunc(out, func(a, b actionLink) int { return strings.Compare(a.Name, b.Name) })
	return out
}

type confirmData struct {
	Action   Action
	Values   map[string]string
	Prepared any
}

func (c *Console) confirmAction(w http.ResponseWriter, r *http.Request, s *session) {
	a, ok := actions[r.PathValue("action")]
	if !ok {
		c.fail(w, r, s, http.StatusNotFound, "NO_SUCH_ACTION", "The console has no action "+r.PathValue("action")+".")
		return
	}
	vals := map[string]string{}
	for _, f := range append([]string{"tenant"}, a.Fields...) {
		vals[f] = r.URL.Query().Get(f)
	}
	d := confirmData{Action: a, Values: vals}
	if a.Prepare != nil {
		var err error
		if d.Prepared, err = a.Prepare(c.call(r, s), c, r.URL.Query()); err != nil {
			c.backendFail(w, r, s, err)
			return
		}
	}
	c.render(w, r, s, http.StatusOK, "confirm_"+a.Name, a.Title, d)
}

func (c *Console) runAction(w http.ResponseWriter, r *http.Request, s *session) {
	a, ok := actions[r.PathValue("action")]
	if !ok {
		c.fail(w, r, s, http.StatusNotFound, "NO_SUCH_ACTION", "The console has no action "+r.PathValue("action")+".")
		return
	}
	if r.PostFormValue("confirm") != "yes" {
		c.fail(w, r, s, http.StatusBadRequest, "CONFIRMATION_REQUIRED", a.Title+" needs confirmation: nothing was changed.")
		return
	}
	ctx := c.call(r, s)
	var data any
	var next string
	var err error
	if a.Show != nil {
		data, err = a.Show(ctx, c, r.PostForm)
	} else {
		next, err = a.Do(ctx, c, r.PostForm)
	}
	if err != nil {
		c.backendFail(w, r, s, err)
		return
	}
	if err := c.record(ctx, s, a, r.PostForm); err != nil {
		c.log.Error("console action not recorded in the audit log", zap.String("action", a.Name),
			zap.String("subject", s.Subject), zap.Error(err))
		c.fail(w, r, s, http.StatusBadGateway, ReasonAuditRecordFailed,
			a.Title+" was done, but it could not be recorded in the audit log: tell the platform's operators.")
		return
	}
	if a.Show != nil {
		c.render(w, r, s, http.StatusOK, "result_"+a.Name, a.Title, data)
		return
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// doneText is the notice after an action redirected to a page (?done=).
func doneText(r *http.Request) string {
	if a, ok := actions[r.URL.Query().Get("done")]; ok {
		if a.Done != nil {
			return a.Done(r.URL.Query())
		}
		if n := r.URL.Query().Get("n"); n != "" {
			if _, err := strconv.Atoi(n); err == nil {
				return a.Title + ": done (" + n + ")."
			}
		}
		return a.Title + ": done."
	}
	return ""
}
