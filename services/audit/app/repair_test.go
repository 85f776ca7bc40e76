package app_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	"github.com/echopilot/echopilot/services/audit/internal/webhook"
)

// hookLog is a webhook receiver on loopback that keeps every request and
// answers 503 while failing.
type hookLog struct {
	mu      sync.Mutex
	failing bool
	reqs    []hookReq // accepted ones
	tries   int
}

type hookReq struct {
	h    webhook.Headers
	body []byte
}

func (l *hookLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tries++
	if l.failing {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	l.reqs = append(l.reqs, hookReq{h: webhook.HeadersFrom(r.Header), body: body})
}

func (l *hookLog) setFailing(f bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failing = f
}

// accepted are the requests answered 2xx, in order.
func (l *hookLog) accepted() []hookReq {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]hookReq(nil), l.reqs...)
}

// ids are the distinct webhook-ids accepted.
func (l *hookLog) ids() map[string]bool {
	out := map[string]bool{}
	for _, r := range l.accepted() {
		out[r.h.ID] = true
	}
	return out
}

func newHook(t *testing.T, failing bool) (*hookLog, string) {
	l := &hookLog{failing: failing}
	srv := httptest.NewServer(l)
	t.Cleanup(srv.Close)
	return l, srv.URL + "/hook"
}

func appendEvent(t *testing.T, c auditv1.AuditServiceClient, ctx context.Context, eventType string, sev auditv1.Severity) {
	t.Helper()
	if _, err := c.AppendEntries(ctx, &auditv1.AppendEntriesRequest{Entries: []*auditv1.NewEntry{{
		EventType: eventType, User: "alice", Action: "act", Resource: "r", Severity: sev}}}); err != nil {
		t.Fatal(err)
	}
}

// deadDeliveries are the ids of the endpoint's deliveries whose latest
// attempt is dead.
func deadDeliveries(t *testing.T, c auditv1.AuditServiceClient, ctx context.Context, endpointID string) []string {
	t.Helper()
	res, err := c.ListDeliveryAttempts(ctx, &auditv1.ListDeliveryAttemptsRequest{EndpointId: endpointID, PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var dead []string
	for _, a := range res.GetAttempts() { // newest first
		if seen[a.GetDeliveryId()] {
			continue
		}
		seen[a.GetDeliveryId()] = true
		if a.GetOutcome() == "dead" {
			dead = append(dead, a.GetDeliveryId())
		}
	}
	return dead
}

// Redelivery, disabling and enabling, as the tenant repairs a receiver;
// another tenant can touch none of it.
func TestWebhookRepair(t *testing.T) {
	backends(t, func(t *testing.T, s stack) {
		acme, globex := as(t, "acme", "user"), as(t, "globex", "user")
		hook, url := newHook(t, true)
		res, err := s.c.CreateEndpoint(acme, &auditv1.CreateEndpointRequest{Url: url})
		if err != nil {
			t.Fatal(err)
		}
		ep := res.GetEndpoint()
		id := ep.GetEndpointId()
		if !ep.GetEnabled() || ep.GetMinSeverity() != auditv1.Severity_SEVERITY_HIGH {
			t.Fatalf("new endpoint = %v", ep)
		}
		appendEvent(t, s.c, acme, "user.login", auditv1.Severity_SEVERITY_CRITICAL)
		var dead []string
		waitUntil(t, "a dead delivery", func() bool { dead = deadDeliveries(t, s.c, acme, id); return len(dead) == 1 })

		// Tenant B can redeliver, disable, enable, update or rotate
		// nothing of tenant A's.
		_, err = s.c.RedeliverDelivery(globex, &auditv1.RedeliverDeliveryRequest{DeliveryId: dead[0]})
		wantErr(t, err, codes.NotFound, "DELIVERY_NOT_FOUND")
		_, err = s.c.RedeliverEndpoint(globex, &auditv1.RedeliverEndpointRequest{EndpointId: id})
		wantErr(t, err, codes.NotFound, "ENDPOINT_NOT_FOUND")
		_, err = s.c.DisableEndpoint(globex, &auditv1.DisableEndpointRequest{EndpointId: id})
		wantErr(t, err, codes.NotFound, "ENDPOINT_NOT_FOUND")
		_, err = s.c.EnableEndpoint(globex, &auditv1.EnableEndpointRequest{EndpointId: id})
		wantErr(t, err, codes.NotFound, "ENDPOINT_NOT_FOUND")
		_, err = s.c.UpdateEndpoint(globex, &auditv1.UpdateEndpointRequest{EndpointId: id, MinSeverity: auditv1.Severity_SEVERITY_CRITICAL})
		wantErr(t, err, codes.NotFound, "ENDPOINT_NOT_FOUND")
		_, err = s.c.RotateEndpointSecret(globex, &auditv1.RotateEndpointSecretRequest{EndpointId: id})
		wantErr(t, err, codes.NotFound, "ENDPOINT_NOT_FOUND")
		var pending int
		if err := s.owner.QueryRowContext(t.Context(), s.owner.Rebind("SELECT COUNT(*) FROM outbox WHERE id = ? AND dead_at IS NOT NULL"), dead[0]).Scan(&pending); err != nil || pending != 1 {
			t.Fatalf("tenant B's calls changed the dead delivery: %d, %v", pending, err)
		}
		if l, _ := s.c.ListEndpoints(acme, &auditv1.ListEndpointsRequest{}); l.GetEndpoints()[0].GetMinSeverity() != auditv1.Severity_SEVERITY_HIGH {
			t.Fatalf("tenant B's update changed the endpoint: %v", l)
		}
		_, err = s.c.DisableEndpoint(acme, &auditv1.DisableEndpointRequest{EndpointId: id, Reason: "bad\x00reason"})
		wantErr(t, err, codes.InvalidArgument, "DISABLE_REASON_INVALID")

		// The receiver is fixed: the dead delivery goes again, once.
		hook.setFailing(false)
		if _, err := s.c.RedeliverDelivery(acme, &auditv1.RedeliverDeliveryRequest{DeliveryId: dead[0]}); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "the redelivery", func() bool { return hook.ids()[dead[0]] })
		waitUntil(t, "the redelivery recorded", func() bool { return len(deadDeliveries(t, s.c, acme, id)) == 0 })
		_, err = s.c.RedeliverDelivery(acme, &auditv1.RedeliverDeliveryRequest{DeliveryId: dead[0]})
		wantErr(t, err, codes.NotFound, "DELIVERY_NOT_FOUND") // delivered

		// Two more die; the endpoint's redelivery sends both.
		hook.setFailing(true)
		appendEvent(t, s.c, acme, "user.login", auditv1.Severity_SEVERITY_HIGH)
		appendEvent(t, s.c, acme, "user.login", auditv1.Severity_SEVERITY_CRITICAL)
		waitUntil(t, "two dead deliveries", func() bool { dead = deadDeliveries(t, s.c, acme, id); return len(dead) == 2 })
		// A dead attempt is recorded before the relay marks its event dead,
		// in another transaction; redelivery takes the events marked.
		waitUntil(t, "both events marked dead", func() bool {
			var n int
			err := s.owner.QueryRowContext(t.Context(), s.owner.Rebind("SELECT COUNT(*) FROM outbox WHERE id IN (?, ?) AND dead_at IS NOT NULL"), dead[0], dead[1]).Scan(&n)
			return err == nil && n == 2
		})
		hook.setFailing(false)
		r, err := s.c.RedeliverEndpoint(acme, &auditv1.RedeliverEndpointRequest{EndpointId: id})
		if err != nil || r.GetRedelivered() != 2 {
			t.Fatalf("redeliver endpoint = %v, %v; want 2", r, err)
		}
		waitUntil(t, "both redelivered", func() bool { got := hook.ids(); return got[dead[0]] && got[dead[1]] })

		// Disabled: listed so, nothing appended meanwhile is sent, and a
		// redelivery is refused until it is enabled.
		d, err := s.c.DisableEndpoint(acme, &auditv1.DisableEndpointRequest{EndpointId: id, Reason: "receiver maintenance"})
		if err != nil || d.GetEndpoint().GetEnabled() || d.GetEndpoint().GetDisabledReason() != "receiver maintenance" || d.GetEndpoint().GetDisableTime() == nil {
			t.Fatalf("disable = %v, %v", d, err)
		}
		l, err := s.c.ListEndpoints(acme, &auditv1.ListEndpointsRequest{})
		if err != nil || len(l.GetEndpoints()) != 1 || l.GetEndpoints()[0].GetEnabled() || l.GetEndpoints()[0].GetDisabledReason() != "receiver maintenance" {
			t.Fatalf("listing of the disabled endpoint = %v, %v", l, err)
		}
		appendEvent(t, s.c, acme, "user.login", auditv1.Severity_SEVERITY_CRITICAL)
		if n := outboxRows(t, s, id); n != 3 {
			t.Fatalf("%d deliveries to the endpoint, want 3: none for an entry appended while it is disabled", n)
		}
		_, err = s.c.RedeliverEndpoint(acme, &auditv1.RedeliverEndpointRequest{EndpointId: id})
		wantErr(t, err, codes.FailedPrecondition, "ENDPOINT_DISABLED")

		e, err := s.c.EnableEndpoint(acme, &auditv1.EnableEndpointRequest{EndpointId: id})
		if err != nil || !e.GetEndpoint().GetEnabled() || e.GetEndpoint().GetDisableTime() != nil || e.GetRedelivered() != 0 {
			t.Fatalf("enable = %v, %v", e, err)
		}
		appendEvent(t, s.c, acme, "user.login", auditv1.Severity_SEVERITY_CRITICAL)
		waitUntil(t, "a delivery after enabling", func() bool { return len(hook.ids()) == 4 })
		for _, req := range hook.accepted() {
			if _, err := (webhook.Verifier{}).Verify(req.body, req.h, []string{res.GetSecret()}); err != nil {
				t.Fatalf("delivery %s does not verify: %v", req.h.ID, err)
			}
		}
	}, fastRetries...)
}

// outboxRows counts the deliveries queued for an endpoint, delivered or not.
func outboxRows(t *testing.T, s stack, endpointID string) int {
	t.Helper()
	var n int
	if err := s.owner.QueryRowContext(t.Context(), s.owner.Rebind("SELECT COUNT(*) FROM outbox WHERE event_key = ?"), endpointID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// An endpoint whose every delivery failed for the auto-disable period is
// disabled, with an entry in the tenant's own log; deliveries queued then
// wait (dead, "endpoint disabled") and go once it is enabled.
func TestEndpointAutoDisable(t *testing.T) {
	backends(t, func(t *testing.T, s stack) {
		acme := as(t, "acme", "user")
		hook, url := newHook(t, true)
		res, err := s.c.CreateEndpoint(acme, &auditv1.CreateEndpointRequest{Url: url})
		if err != nil {
			t.Fatal(err)
		}
		id := res.GetEndpoint().GetEndpointId()
		appendEvent(t, s.c, acme, "user.login", auditv1.Severity_SEVERITY_CRITICAL)
		waitUntil(t, "a dead delivery", func() bool { return len(deadDeliveries(t, s.c, acme, id)) == 1 })
		time.Sleep(2100 * time.Millisecond) // past --webhook-auto-disable-after
		appendEvent(t, s.c, acme, "user.login", auditv1.Severity_SEVERITY_HIGH)
		var ep *auditv1.Endpoint
		waitUntil(t, "the endpoint disabled", func() bool {
			l, err := s.c.ListEndpoints(acme, &auditv1.ListEndpointsRequest{})
			ep = l.GetEndpoints()[0]
			return err == nil && !ep.GetEnabled()
		})
		if !strings.HasPrefix(ep.GetDisabledReason(), "every delivery failed since ") {
			t.Errorf("reason = %q", ep.GetDisabledReason())
		}
		waitUntil(t, "both deliveries dead", func() bool { return len(deadDeliveries(t, s.c, acme, id)) == 2 })
		att, _ := s.c.ListDeliveryAttempts(acme, &auditv1.ListDeliveryAttemptsRequest{EndpointId: id, PageSize: 1})
		if a := att.GetAttempts()[0]; a.GetError() != "endpoint disabled" || a.GetOutcome() != "dead" {
			t.Errorf("latest attempt = %v, want parked as disabled", a)
		}
		log := chain(t, s.c, acme)
		var noted []*auditv1.Entry
		for _, e := range log.GetEntries() {
			if e.GetEventType() == "webhook.endpoint.disabled" {
				noted = append(noted, e)
			}
		}
		if len(noted) != 1 || noted[0].GetResource() != "webhook_endpoint/"+id || noted[0].GetSeverity() != auditv1.Severity_SEVERITY_MEDIUM ||
			noted[0].GetDetails().AsMap()["endpoint_id"] != id || !log.GetVerification().GetValid() {
			t.Fatalf("log entries about the disable = %v (log valid %v)", noted, log.GetVerification().GetValid())
		}
		// Disabled only once every attempt had failed for the period.
		details := noted[0].GetDetails().AsMap()
		since, err1 := time.Parse(time.RFC3339Nano, details["failing_since"].(string))
		at, err2 := time.Parse(time.RFC3339Nano, details["disabled_at"].(string))
		if err1 != nil || err2 != nil || at.Sub(since) < 2*time.Second || !ep.GetDisableTime().AsTime().Equal(at) {
			t.Fatalf("failing since %v, disabled at %v (%v, %v); want 2s or more apart", since, at, err1, err2)
		}
		// The other tenant's log says nothing of it.
		if g := chain(t, s.c, as(t, "globex", "user")); len(g.GetEntries()) != 0 {
			t.Fatalf("globex log = %v", g.GetEntries())
		}

		hook.setFailing(false)
		e, err := s.c.EnableEndpoint(acme, &auditv1.EnableEndpointRequest{EndpointId: id})
		if err != nil || !e.GetEndpoint().GetEnabled() || e.GetRedelivered() != 2 {
			t.Fatalf("enable = %v, %v; want both dead deliveries sent again", e, err)
		}
		waitUntil(t, "both delivered after enabling", func() bool { return len(hook.ids()) == 2 })
	}, append(fastRetries, "--webhook-max-attempts=2", "--webhook-auto-disable-after=2s")...)
}

// An endpoint receives only the event types and severities it asks for.
func TestEndpointFilters(t *testing.T) {
	backends(t, func(t *testing.T, s stack) {
		acme := as(t, "acme", "user")
		for _, bad := range []*auditv1.CreateEndpointRequest{
			{Url: "https://93.184.215.14/", MinSeverity: auditv1.Severity_SEVERITY_LOW},
			{Url: "https://93.184.215.14/", MinSeverity: auditv1.Severity(9)},
			{Url: "https://93.184.215.14/", EventTypes: []string{""}},
			{Url: "https://93.184.215.14/", EventTypes: []string{"a", "a"}},
			{Url: "https://93.184.215.14/", EventTypes: []string{strings.Repeat("x", 129)}},
		} {
			_, err := s.c.CreateEndpoint(acme, bad)
			wantErr(t, err, codes.InvalidArgument, "ENDPOINT_FILTER_INVALID")
		}
		hook, url := newHook(t, false)
		res, err := s.c.CreateEndpoint(acme, &auditv1.CreateEndpointRequest{Url: url,
			EventTypes: []string{"user.login", "user.logout"}, MinSeverity: auditv1.Severity_SEVERITY_CRITICAL})
		if err != nil {
			t.Fatal(err)
		}
		ep := res.GetEndpoint()
		if len(ep.GetEventTypes()) != 2 || ep.GetMinSeverity() != auditv1.Severity_SEVERITY_CRITICAL {
			t.Fatalf("endpoint = %v", ep)
		}
		appendEvent(t, s.c, acme, "user.login", auditv1.Severity_SEVERITY_HIGH)        // too low
		appendEvent(t, s.c, acme, "config.change", auditv1.Severity_SEVERITY_CRITICAL) // other type
		appendEvent(t, s.c, acme, "user.logout", auditv1.Severity_SEVERITY_CRITICAL)   // delivered
		if n := outboxRows(t, s, ep.GetEndpointId()); n != 1 {
			t.Fatalf("%d deliveries queued, want 1", n)
		}
		_, err = s.c.UpdateEndpoint(acme, &auditv1.UpdateEndpointRequest{EndpointId: ep.GetEndpointId(), MinSeverity: auditv1.Severity_SEVERITY_MEDIUM})
		wantErr(t, err, codes.InvalidArgument, "ENDPOINT_FILTER_INVALID")
		_, err = s.c.UpdateEndpoint(as(t, "globex", "user"), &auditv1.UpdateEndpointRequest{EndpointId: ep.GetEndpointId()})
		wantErr(t, err, codes.NotFound, "ENDPOINT_NOT_FOUND")
		up, err := s.c.UpdateEndpoint(acme, &auditv1.UpdateEndpointRequest{EndpointId: ep.GetEndpointId()})
		if err != nil || len(up.GetEndpoint().GetEventTypes()) != 0 || up.GetEndpoint().GetMinSeverity() != auditv1.Severity_SEVERITY_HIGH {
			t.Fatalf("update = %v, %v", up, err)
		}
		appendEvent(t, s.c, acme, "config.change", auditv1.Severity_SEVERITY_HIGH) // delivered now
		appendEvent(t, s.c, acme, "config.change", auditv1.Severity_SEVERITY_MEDIUM)
		if n := outboxRows(t, s, ep.GetEndpointId()); n != 2 {
			t.Fatalf("%d deliveries queued, want 2", n)
		}
		waitUntil(t, "two deliveries", func() bool { return len(hook.ids()) == 2 })
		var types []string
		for _, r := range hook.accepted() {
			var body struct {
				Entry struct {
					EventType string `json:"event_type"`
				} `json:"entry"`
			}
			if err := json.Unmarshal(r.body, &body); err != nil {
				t.Fatal(err)
			}
			types = append(types, body.Entry.EventType)
		}
		if strings.Join(types, ",") != "user.logout,config.change" {
			t.Fatalf("delivered %v", types)
		}
	}, fastRetries...)
}

// After a rotation, deliveries carry both signatures until the grace
// period ends, then only the new secret's.
func TestRotateEndpointSecret(t *testing.T) {
	backends(t, func(t *testing.T, s stack) {
		acme := as(t, "acme", "user")
		hook, url := newHook(t, false)
		res, err := s.c.CreateEndpoint(acme, &auditv1.CreateEndpointRequest{Url: url})
		if err != nil {
			t.Fatal(err)
		}
		id, s1 := res.GetEndpoint().GetEndpointId(), res.GetSecret()
		for _, g := range []int64{-1, 7*24*3600 + 1, 1 << 62} {
			_, err := s.c.RotateEndpointSecret(acme, &auditv1.RotateEndpointSecretRequest{EndpointId: id, GraceSeconds: &g})
			wantErr(t, err, codes.InvalidArgument, "SECRET_GRACE_INVALID")
		}
		_, err = s.c.RotateEndpointSecret(as(t, "globex", "user"), &auditv1.RotateEndpointSecretRequest{EndpointId: id})
		wantErr(t, err, codes.NotFound, "ENDPOINT_NOT_FOUND")

		before := time.Now()
		rot, err := s.c.RotateEndpointSecret(acme, &auditv1.RotateEndpointSecretRequest{EndpointId: id}) // default grace
		if err != nil || rot.GetSecret() == "" || rot.GetSecret() == s1 {
			t.Fatalf("rotate = %v, %v", rot, err)
		}
		s2 := rot.GetSecret()
		if exp := rot.GetEndpoint().GetPreviousSecretExpireTime().AsTime(); exp.Before(before.Add(24*time.Hour-time.Minute)) || exp.After(time.Now().Add(24*time.Hour+time.Minute)) {
			t.Fatalf("previous secret expires %v, want in 24h", exp)
		}
		verifies := func(r hookReq, secret string) bool {
			_, err := (webhook.Verifier{}).Verify(r.body, r.h, []string{secret})
			return err == nil
		}
		// A rotation within the grace drops the oldest secret; a few
		// seconds of grace for the one it replaces. A machine that stalls
		// past the grace before the delivery gets a longer grace and
		// another rotation (the secret before is then the previous one).
		prev, s3, old := s2, "", []string{s1}
		var graceEnd time.Time
		for i, grace := range []int64{3, 8, 20} {
			rot, err = s.c.RotateEndpointSecret(acme, &auditv1.RotateEndpointSecretRequest{EndpointId: id, GraceSeconds: &grace})
			if err != nil {
				t.Fatal(err)
			}
			s3, graceEnd = rot.GetSecret(), rot.GetEndpoint().GetPreviousSecretExpireTime().AsTime()
			appendEvent(t, s.c, acme, "user.login", auditv1.Severity_SEVERITY_CRITICAL)
			waitUntil(t, "a delivery in the grace period", func() bool { return len(hook.accepted()) == i+1 })
			if !time.Now().After(graceEnd) {
				break
			}
			if i == 2 {
				t.Fatal("the machine stalled past every grace period before the delivery")
			}
			old, prev = append(old, prev), s3
		}
		r := hook.accepted()[len(hook.accepted())-1]
		if n := len(strings.Fields(r.h.Signature)); n != 2 || !verifies(r, s3) || !verifies(r, prev) ||
			slices.ContainsFunc(old, func(o string) bool { return verifies(r, o) }) {
			t.Fatalf("in the grace period: %d signatures; verify new %v, previous %v", n, verifies(r, s3), verifies(r, prev))
		}
		delivered := len(hook.accepted())
		time.Sleep(time.Until(graceEnd) + 50*time.Millisecond)
		appendEvent(t, s.c, acme, "user.login", auditv1.Severity_SEVERITY_CRITICAL)
		waitUntil(t, "a delivery after the grace period", func() bool { return len(hook.accepted()) == delivered+1 })
		r = hook.accepted()[delivered]
		if n := len(strings.Fields(r.h.Signature)); n != 1 || !verifies(r, s3) || verifies(r, prev) {
			t.Fatalf("after the grace period: %d signatures; verify new %v, previous %v", n, verifies(r, s3), verifies(r, prev))
		}
		l, err := s.c.ListEndpoints(acme, &auditv1.ListEndpointsRequest{})
		if err != nil || !l.GetEndpoints()[0].GetPreviousSecretExpireTime().AsTime().Equal(graceEnd) {
			t.Fatalf("listing = %v, %v", l, err)
		}
		// No grace: the old secret stops at once.
		zero := int64(0)
		rot, err = s.c.RotateEndpointSecret(acme, &auditv1.RotateEndpointSecretRequest{EndpointId: id, GraceSeconds: &zero})
		if err != nil || rot.GetEndpoint().GetPreviousSecretExpireTime() != nil {
			t.Fatalf("rotate without grace = %v, %v", rot, err)
		}
		appendEvent(t, s.c, acme, "user.login", auditv1.Severity_SEVERITY_CRITICAL)
		waitUntil(t, "a delivery after an immediate rotation", func() bool { return len(hook.accepted()) == delivered+2 })
		if r := hook.accepted()[delivered+1]; len(strings.Fields(r.h.Signature)) != 1 || !verifies(r, rot.GetSecret()) || verifies(r, s3) {
			t.Fatalf("after an immediate rotation: signature %q", r.h.Signature)
		}
	}, fastRetries...)
}
