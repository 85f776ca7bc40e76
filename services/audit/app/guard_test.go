package app_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
)

// Endpoint URLs are the tenant's choice: registration refuses the
// platform's own network unless the operator allow-lists it, saying only
// "destination not allowed".
func TestEndpointDestinationRefused(t *testing.T) {
	metricsAddr := freeAddr(t)
	backends(t, func(t *testing.T, s stack) {
		acme := as(t, "acme", "user")
		for _, u := range []string{
			"http://" + metricsAddr + "/metrics", // the attack: audit's own metrics
			"http://[::1]:9203/metrics",
			"http://[::ffff:127.0.0.1]:9203/metrics",
			"http://0.0.0.0:9203/metrics",
			"http://169.254.169.254/latest/meta-data/",
			"http://10.0.0.1/hook",
			"http://[fd00::1]/hook",
		} {
			_, err := s.c.CreateEndpoint(acme, &auditv1.CreateEndpointRequest{Url: u})
			wantErr(t, err, codes.InvalidArgument, "ENDPOINT_URL_NOT_ALLOWED")
			if msg := status.Convert(err).Message(); msg != "destination not allowed" {
				t.Errorf("%s: message %q says more than the refusal", u, msg)
			}
		}
		for _, u := range []string{"http://user:pw@93.184.216.34/", "http://127.1/", "http://93.184.216.34:0/", "gopher://93.184.216.34/"} {
			_, err := s.c.CreateEndpoint(acme, &auditv1.CreateEndpointRequest{Url: u})
			wantErr(t, err, codes.InvalidArgument, "ENDPOINT_URL_INVALID")
		}
		if l, err := s.c.ListEndpoints(acme, &auditv1.ListEndpointsRequest{}); err != nil || len(l.GetEndpoints()) != 0 {
			t.Fatalf("endpoints = %v, %v", l, err)
		}
	}, "--metrics-addr="+metricsAddr)
}

// Failed deliveries record a status code and a plain reason, never what the
// receiver said; a redirect is a failure and its target is never called.
func TestDeliveryFailuresArePlain(t *testing.T) {
	backends(t, func(t *testing.T, s stack) {
		acme := as(t, "acme", "user")
		var targetHits atomic.Int32
		target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { targetHits.Add(1) }))
		defer target.Close()
		// Its answer's body names the target: "<a href=…>Found</a>".
		redirector := httptest.NewServer(http.RedirectHandler(target.URL+"/internal-banner", http.StatusFound))
		defer redirector.Close()
		failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "internal-banner: stack trace at db01.internal", http.StatusInternalServerError)
		}))
		defer failing.Close()
		want := map[string]struct {
			status int32
			reason string
		}{}
		for u, w := range map[string]struct {
			status int32
			reason string
		}{redirector.URL + "/hook": {302, "redirect not followed"}, failing.URL + "/hook": {500, "error status"}} {
			ep, err := s.c.CreateEndpoint(acme, &auditv1.CreateEndpointRequest{Url: u})
			if err != nil {
				t.Fatal(err)
			}
			want[ep.GetEndpoint().GetEndpointId()] = w
		}
		appendN(t, s.c, acme, 1, auditv1.Severity_SEVERITY_HIGH)
		var attempts []*auditv1.DeliveryAttempt
		waitUntil(t, "both deliveries dead", func() bool {
			res, err := s.c.ListDeliveryAttempts(acme, &auditv1.ListDeliveryAttemptsRequest{})
			attempts = res.GetAttempts()
			dead := 0
			for _, a := range attempts {
				if a.GetOutcome() == "dead" {
					dead++
				}
			}
			return err == nil && dead == 2
		})
		for _, a := range attempts {
			w := want[a.GetEndpointId()]
			if a.GetStatusCode() != w.status || a.GetError() != w.reason || strings.Contains(a.String(), "internal-banner") {
				t.Errorf("attempt %v, want status %d and error %q only", a, w.status, w.reason)
			}
		}
		if n := targetHits.Load(); n != 0 {
			t.Fatalf("the redirect target got %d requests", n)
		}
	}, fastRetries...)
}
