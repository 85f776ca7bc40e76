package app_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	"github.com/echopilot/echopilot/services/audit/internal/webhook"
)

// receiver is a webhook receiver outside our system: it verifies each
// delivery with the endpoint's secret and fails the first failFirst
// attempts of every delivery id.
type receiver struct {
	mu        sync.Mutex
	secret    string
	failFirst int
	tries     map[string]int // webhook-id → attempts seen
	got       map[string]int // webhook-id → deliveries accepted
	bad       int            // deliveries that failed verification
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := (webhook.Verifier{}).Verify(body, webhook.HeadersFrom(req.Header), []string{r.secret}); err != nil {
		r.bad++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	id := req.Header.Get("webhook-id")
	r.tries[id]++
	if r.tries[id] <= r.failFirst {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	r.got[id]++
}

func (r *receiver) delivered() (int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got), r.bad
}

// fastRetries make failed deliveries retry within the test, and let them
// reach the test's receivers on loopback, which the outbound guard refuses
// unless allow-listed.
var fastRetries = []string{"--webhook-retry-base=20ms", "--webhook-retry-cap=100ms", "--webhook-max-attempts=3", "--outbound-allow=127.0.0.1/32"}

func TestOutboundWebhooks(t *testing.T) {
	metricsAddr := freeAddr(t)
	backends(t, func(t *testing.T, s stack) {
		outboundWebhooks(t, s)
		chain(t, s.c, as(t, "acme", "user"))
		// What happened above, as the service's own metrics tell it.
		for series, want := range map[string]float64{
			`echopilot_audit_appended_entries_total`:                        7,
			`echopilot_audit_webhook_deliveries_total{outcome="delivered"}`: 3,
			`echopilot_audit_webhook_deliveries_total{outcome="failed"}`:    5,
			`echopilot_audit_webhook_deliveries_total{outcome="dead"}`:      1,
			`echopilot_audit_verifications_total{valid="true"}`:             1,
			`echopilot_audit_verifications_total{valid="false"}`:            0,
			// Every POST's latency: the three delivered, and the six that
			// failed (the five retried and the last, dead-lettered, try).
			`echopilot_audit_webhook_delivery_duration_seconds_count{outcome="delivered"}`: 3,
			`echopilot_audit_webhook_delivery_duration_seconds_count{outcome="failed"}`:    6,
		} {
			if got := scrape(t, "http://"+metricsAddr+"/metrics", series); got != want {
				t.Errorf("%s = %v, want %v", series, got, want)
			}
		}
		// No scrubber: its pass at start counts a verification too when it
		// happens to run after the first append (a busy machine).
	}, append([]string{"--metrics-addr=" + metricsAddr, "--scrub-interval=0"}, fastRetries...)...)
}

// freeAddr is a loopback address free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// scrape reads one series (name and labels exactly as exposed) from a
// Prometheus text endpoint.
func scrape(t *testing.T, url, series string) float64 {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("%s not exposed at %s", series, url)
	return 0
}

func outboundWebhooks(t *testing.T, s stack) {
	acme := as(t, "acme", "user")
	rcv := &receiver{failFirst: 1, tries: map[string]int{}, got: map[string]int{}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	ep, err := s.c.CreateEndpoint(acme, &auditv1.CreateEndpointRequest{Url: srv.URL + "/hook"})
	if err != nil || ep.GetSecret() == "" {
		t.Fatalf("create endpoint = %v, %v", ep, err)
	}
	rcv.mu.Lock()
	rcv.secret = ep.GetSecret()
	rcv.mu.Unlock()

	appendN(t, s.c, acme, 2, auditv1.Severity_SEVERITY_CRITICAL)
	appendN(t, s.c, acme, 3, auditv1.Severity_SEVERITY_LOW) // not delivered
	appendN(t, s.c, acme, 1, auditv1.Severity_SEVERITY_HIGH)
	waitUntil(t, "3 deliveries", func() bool { n, _ := rcv.delivered(); return n == 3 })
	if _, bad := rcv.delivered(); bad != 0 {
		t.Fatalf("%d deliveries failed verification", bad)
	}
	// The receiver counts a delivery before the service records the
	// attempt that made it.
	var res *auditv1.ListDeliveryAttemptsResponse
	waitUntil(t, "6 attempts recorded", func() bool {
		res, err = s.c.ListDeliveryAttempts(acme, &auditv1.ListDeliveryAttemptsRequest{})
		return err == nil && len(res.GetAttempts()) >= 6
	})
	if len(res.GetAttempts()) != 6 {
		t.Fatalf("attempts = %v", res)
	}
	outcomes := map[string]int{}
	for _, a := range res.GetAttempts() {
		outcomes[a.GetOutcome()]++
		if a.GetEndpointId() != ep.GetEndpoint().GetEndpointId() || a.GetDeliveryId() == "" {
			t.Fatalf("attempt %v", a)
		}
	}
	if outcomes["failed"] != 3 || outcomes["delivered"] != 3 {
		t.Fatalf("outcomes = %v, want 3 failed (503) then 3 delivered", outcomes)
	}
	// Another tenant sees neither the endpoint nor the attempts.
	globex := as(t, "globex", "user")
	if l, err := s.c.ListEndpoints(globex, &auditv1.ListEndpointsRequest{}); err != nil || len(l.GetEndpoints()) != 0 {
		t.Fatalf("globex endpoints = %v, %v", l, err)
	}
	if l, err := s.c.ListDeliveryAttempts(globex, &auditv1.ListDeliveryAttemptsRequest{}); err != nil || len(l.GetAttempts()) != 0 {
		t.Fatalf("globex attempts = %v, %v", l, err)
	}
	_, err = s.c.DeleteEndpoint(globex, &auditv1.DeleteEndpointRequest{EndpointId: ep.GetEndpoint().GetEndpointId()})
	wantErr(t, err, codes.NotFound, "ENDPOINT_NOT_FOUND")
	_, err = s.c.CreateEndpoint(acme, &auditv1.CreateEndpointRequest{Url: "ftp://example.com/x"})
	wantErr(t, err, codes.InvalidArgument, "ENDPOINT_URL_INVALID")

	// A receiver that always fails: dead after 3 attempts, each recorded.
	rcv.mu.Lock()
	rcv.failFirst = 1 << 30
	rcv.mu.Unlock()
	appendN(t, s.c, acme, 1, auditv1.Severity_SEVERITY_CRITICAL)
	waitUntil(t, "a dead delivery", func() bool {
		res, err := s.c.ListDeliveryAttempts(acme, &auditv1.ListDeliveryAttemptsRequest{PageSize: 1})
		return err == nil && len(res.GetAttempts()) == 1 && res.GetAttempts()[0].GetOutcome() == "dead"
	})
	res, _ = s.c.ListDeliveryAttempts(acme, &auditv1.ListDeliveryAttemptsRequest{PageSize: 3})
	for i, a := range res.GetAttempts() {
		if a.GetAttempt() != int32(3-i) || a.GetStatusCode() != 503 || a.GetError() != "error status" {
			t.Fatalf("attempts of the dead delivery: %v", res.GetAttempts())
		}
	}
	if _, err := s.c.DeleteEndpoint(acme, &auditv1.DeleteEndpointRequest{EndpointId: ep.GetEndpoint().GetEndpointId()}); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.c.ListEndpoints(acme, &auditv1.ListEndpointsRequest{}); len(l.GetEndpoints()) != 0 {
		t.Fatalf("deleted endpoint still listed: %v", l)
	}
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
