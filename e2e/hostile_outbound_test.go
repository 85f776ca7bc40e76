package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Attacks through outbound requests to URLs a tenant chose (issue 13,
// finding 2): a webhook endpoint or a data_sync target pointing into the
// platform's own network.

// allowLoopbackReceivers lets audit deliver to the tests' receivers, which
// listen on 127.0.0.1: the outbound guard refuses loopback otherwise. Only
// the suites that deliver to such a receiver set it.
const allowLoopbackReceivers = "ECHOPILOT_OUTBOUND_ALLOW=127.0.0.1/32"

// noOutboundAllow keeps a stack's allow-list empty even when the
// environment running the tests sets one (the last value wins).
const noOutboundAllow = "ECHOPILOT_OUTBOUND_ALLOW="

// Without an allow-list, audit refuses to register its own metrics
// endpoint, by address or by a name resolving to loopback, and every other
// non-public destination, saying only "destination not allowed"; and
// edge-worker refuses a data_sync payload URL on loopback although it lies
// under an allowed prefix.
func TestHostileOutboundRegistration(t *testing.T) {
	s := startWithEnv(t, "optional", nil, noOutboundAllow)
	user := s.token(t, "acme", "user")
	_, port, err := net.SplitHostPort(s.MetricsAddrs["audit"])
	if err != nil {
		t.Fatal(err)
	}
	urls := []string{
		"http://" + s.MetricsAddrs["audit"] + "/metrics", // the report
		"http://[::1]:" + port + "/metrics",
		"http://[::ffff:127.0.0.1]:" + port + "/metrics",
		"http://0.0.0.0:" + port + "/metrics",
		"http://169.254.169.254/latest/meta-data/",
		"http://10.0.0.1/hook",
	}
	if hostsMapLocalhost() {
		urls = append(urls, "http://localhost:"+port+"/metrics") // a name, resolved by audit
	}
	for _, u := range urls {
		code, body := s.call(t, "POST", "/api/audit/endpoints", user, nil, fmt.Sprintf(`{"url":%q}`, u))
		e, _ := body["error"].(map[string]any)
		if code != http.StatusBadRequest || errReason(body) != "ENDPOINT_URL_NOT_ALLOWED" || e["message"] != "destination not allowed" {
			t.Errorf("register %s = %d %v, want 400 ENDPOINT_URL_NOT_ALLOWED saying only \"destination not allowed\"", u, code, body)
		}
	}
	if _, body := s.call(t, "GET", "/api/audit/endpoints", user, nil, ""); len(body["endpoints"].([]any)) != 0 {
		t.Fatalf("endpoints after the refusals: %v", body)
	}

	// data_sync: the prefix admits the receiver, the guard does not.
	var hits atomic.Int32
	rcv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer rcv.Close()
	code, body := s.call(t, "POST", "/api/queue/enqueue", user, nil,
		fmt.Sprintf(`{"type":"data_sync","payload":{"url":%q,"rows":1}}`, rcv.URL+"/hooks/acme"))
	jobID, _ := body["job_id"].(string)
	if code != http.StatusOK || jobID == "" {
		t.Fatalf("enqueue = %d %v", code, body)
	}
	worker := s.worker(t, "acme", rcv, "--max-jobs=1", "--types=data_sync")
	worker.Env = append(worker.Env, "ECHOPILOT_DATA_SYNC_SECRET=e2e-sync-secret",
		"ECHOPILOT_DATA_SYNC_ALLOWED_PREFIXES="+rcv.URL+"/hooks/", noOutboundAllow)
	if out, err := worker.CombinedOutput(); err != nil {
		t.Fatalf("edge-worker: %v\n%s", err, out)
	}
	_, body = s.call(t, "GET", "/api/queue/jobs/"+jobID, user, nil, "")
	job, _ := body["job"].(map[string]any)
	if job["status"] != "dead" || job["last_error"] != `data_sync: payload "url": destination not allowed` {
		t.Fatalf("data_sync job = %v, want dead with only the refusal", job)
	}
	if hits.Load() != 0 {
		t.Fatalf("the loopback receiver got %d data_sync requests", hits.Load())
	}
}

// With 127.0.0.1 allow-listed, a receiver that redirects fails the
// delivery and its target sees nothing. Then the dial-time check, in the
// real binary: audit restarts without the allow-list, so an endpoint that
// passed registration now points at a refused address, the position a
// host name is in when its DNS answer changes after registration
// (rebinding, which a test cannot stage without a DNS server). Registration
// is out of the picture; only the check on the address being dialed stands
// between the stored URL and loopback. The attempt must fail as "destination
// not allowed" without the receiver seeing a connection.
func TestHostileOutboundDelivery(t *testing.T) {
	s := startWithEnv(t, "optional", nil, allowLoopbackReceivers)
	user := s.token(t, "acme", "user")

	var targetHits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { targetHits.Add(1) }))
	defer target.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Location", target.URL+"/internal")
		w.WriteHeader(http.StatusFound)
		_, _ = w.Write([]byte("internal-banner: redirecting to the admin console"))
	}))
	defer redirector.Close()
	redirectEP := s.createEndpoint(t, user, redirector.URL+"/hook")
	s.appendHigh(t, user)
	a := s.waitAttempt(t, user, redirectEP, func(a map[string]any) bool { return a["status_code"] == 302.0 })
	if a["error"] != "redirect not followed" || a["outcome"] != "failed" {
		t.Fatalf("redirected attempt = %v", a)
	}
	if n := targetHits.Load(); n != 0 {
		t.Fatalf("the redirect target got %d requests", n)
	}
	if code, body := s.call(t, "DELETE", "/api/audit/endpoints/"+redirectEP, user, nil, ""); code != http.StatusOK {
		t.Fatalf("delete endpoint = %d %v", code, body)
	}

	// A receiver that is allowed now: deliveries arrive.
	var conns, hits atomic.Int32
	rcv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	rcv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	rcv.Start()
	defer rcv.Close()
	ep := s.createEndpoint(t, user, rcv.URL+"/hook")
	s.appendHigh(t, user)
	s.waitAttempt(t, user, ep, func(a map[string]any) bool { return a["outcome"] == "delivered" && a["status_code"] == 200.0 })

	// The same endpoint after a restart without the allow-list.
	if err := s.Procs["audit"].Stop(15 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := s.RestartWith(t.Context(), "audit", noOutboundAllow); err != nil {
		t.Fatal(err)
	}
	connsBefore, hitsBefore := conns.Load(), hits.Load()
	s.appendHigh(t, user)
	a = s.waitAttempt(t, user, ep, func(a map[string]any) bool { return a["error"] == "destination not allowed" })
	if a["status_code"] != 0.0 || a["outcome"] != "failed" {
		t.Fatalf("refused attempt = %v, want no status code", a)
	}
	if conns.Load() != connsBefore || hits.Load() != hitsBefore {
		t.Fatalf("the receiver saw %d connections and %d requests after the restart, want none",
			conns.Load()-connsBefore, hits.Load()-hitsBefore)
	}

	// The deliveries list says nothing the receivers said.
	_, body := s.call(t, "GET", "/api/audit/deliveries", user, nil, "")
	raw, _ := json.Marshal(body)
	if strings.Contains(string(raw), "internal-banner") || strings.Contains(string(raw), "dial") {
		t.Fatalf("the deliveries list repeats a receiver's or the dialer's words: %s", raw)
	}
	for _, x := range body["attempts"].([]any) {
		switch a := x.(map[string]any); a["error"] {
		case "", "destination not allowed", "redirect not followed", "endpoint deleted":
		default:
			t.Errorf("attempt error %q is not a plain reason", a["error"])
		}
	}
}

func (s *suite) createEndpoint(t *testing.T, token, url string) string {
	t.Helper()
	code, body := s.call(t, "POST", "/api/audit/endpoints", token, nil, fmt.Sprintf(`{"url":%q}`, url))
	id, _ := dig(body, "endpoint", "endpoint_id").(string)
	if code != http.StatusOK || id == "" {
		t.Fatalf("register %s = %d %v", url, code, body)
	}
	return id
}

func (s *suite) appendHigh(t *testing.T, token string) {
	t.Helper()
	entry := `{"entries":[{"event_type":"e2e.outbound","user":"mallory","action":"probe","resource":"webhooks","severity":"high"}]}`
	if code, body := s.call(t, "POST", "/api/audit/entries", token, nil, entry); code != http.StatusOK {
		t.Fatalf("append = %d %v", code, body)
	}
}

// waitAttempt waits for an attempt of endpoint that ok accepts.
func (s *suite) waitAttempt(t *testing.T, token, endpoint string, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	var found map[string]any
	waitFor(t, 30*time.Second, "a delivery attempt of "+endpoint, func() bool {
		_, body := s.call(t, "GET", "/api/audit/deliveries?endpoint_id="+endpoint, token, nil, "")
		list, _ := body["attempts"].([]any)
		for _, x := range list {
			if a, _ := x.(map[string]any); ok(a) {
				found = a
				return true
			}
		}
		return false
	})
	return found
}

// hostsMapLocalhost reports whether /etc/hosts names localhost: then
// resolving it never leaves the machine.
func hostsMapLocalhost() bool {
	b, err := os.ReadFile("/etc/hosts")
	return err == nil && regexp.MustCompile(`(?m)^[ \t]*127\.\S+[ \t]+(\S+[ \t]+)*localhost([ \t#]|$)`).Match(b)
}
