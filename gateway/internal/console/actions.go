package console

import (
	"context"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
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
}

func init() { maps.Copy(actions, queueActions) }

// actionLink is an action a page offers, with the link to its confirmation.
type actionLink struct {
	Name, Title, Link string
}

// actionsFor lists the actions page offers for obj, linked with obj's
// fields and the page's tenant.
func (c *Console) actionsFor(page string, r *http.Request, s *session, obj map[string]string) []actionLink {
	var out []actionLink
	for _, a := range actions {
		if a.On != page || (a.Offer != nil && !a.Offer(s, obj)) {
			continue
		}
		q := url.Values{}
		if t := viewTenant(r); t != "" {
			q.Set("tenant", t)
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
	next, err := a.Do(c.call(r, s), c, r.PostForm)
	if err != nil {
		c.backendFail(w, r, s, err)
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
		return a.Title + ": done."
	}
	return ""
}
