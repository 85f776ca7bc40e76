package gateway

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/echopilot/echopilot/gateway/internal/backendtest"
	"github.com/echopilot/echopilot/gateway/internal/console"
	"github.com/echopilot/echopilot/platform/store/storetest"
)

// TestConsoleMounted: with Config.Console the gateway serves the console
// at /console/ over its own backend connections, with its security
// headers, and the API beside it is unchanged and counted.
func TestConsoleMounted(t *testing.T) {
	conns := backendtest.Start(t, storetest.Backends()[0])
	backends := Backends()
	for i := range backends {
		backends[i].Conn = conns[backends[i].Name]
	}
	srv, gw := startGateway(t, Config{Console: &console.Config{}}, backends, false)

	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string) *http.Response {
		t.Helper()
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := get("/console/login"); r.StatusCode != http.StatusOK || !strings.Contains(r.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Fatalf("/console/login: %d %v", r.StatusCode, r.Header)
	}
	if r := get("/console/queue"); r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/console/login") {
		t.Fatalf("/console/queue signed out: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	if r := get("/console"); r.StatusCode != http.StatusMovedPermanently {
		t.Fatalf("/console: %d", r.StatusCode)
	}
	before := gw.traffic.snapshot()
	if r := get("/api/tenant/info"); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("/api/tenant/info without a token: %d", r.StatusCode)
	}
	after := gw.traffic.snapshot()
	if after.Requests != before.Requests+1 {
		t.Fatalf("API requests counted %d → %d, want one more", before.Requests, after.Requests)
	}
}

func TestTrafficRing(t *testing.T) {
	now := time.Date(2026, 1, 1, 10, 0, 30, 0, time.UTC)
	tr := newTraffic()
	tr.now = func() time.Time { return now }
	tr.record(200)
	tr.record(503)
	now = now.Add(time.Minute)
	tr.record(404)
	s := tr.snapshot()
	if s.Requests != 3 || s.Errors != 1 || len(s.Minutes) != trafficMinutes {
		t.Fatalf("snapshot %d requests, %d errors, %d minutes", s.Requests, s.Errors, len(s.Minutes))
	}
	if last := s.Minutes[len(s.Minutes)-1]; last.Requests != 1 || !last.Start.Equal(time.Date(2026, 1, 1, 10, 1, 0, 0, time.UTC)) {
		t.Fatalf("last minute %+v", last)
	}
	// An hour later the old minutes have left the ring, even where a
	// bucket is reused.
	now = now.Add(time.Hour)
	tr.record(200)
	if s := tr.snapshot(); s.Requests != 1 || s.Errors != 0 {
		t.Fatalf("an hour later: %d requests, %d errors", s.Requests, s.Errors)
	}
}
