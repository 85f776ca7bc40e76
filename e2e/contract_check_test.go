package e2e

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/echopilot/echopilot/gen"
)

// The contract check fails on what a validating proxy would reject, and
// passes what the document allows: a stand-in gateway (a real HTTP server
// serving the committed document) answers each case.
func TestContractCheckCatchesViolations(t *testing.T) {
	answers := map[string]struct {
		status int
		body   string
	}{
		"/api/tenant/info":   {200, `{"ok":true,"tenant_id":"acme","tenant_verified":false,"stats":{"total_events":1,"tenants":{"acme":1},"denied_access":0,"cross_tenant_denied":0}}`},
		"/api/queue/status":  {200, `{"ok":true,"completed":"12"}`},      // an int64 as a string: protojson's, not the gateway's
		"/api/tenants/acme":  {404, `{"ok":false,"error":{"code":404}}`}, // an incomplete envelope
		"/api/queue/enqueue": {200, `{"ok":true,"job_id":"j1","status":"queued","duplicate":false}`},
		"/nowhere":           {200, `{}`}, // a path the document does not list, answered
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/openapi.json" {
			_, _ = w.Write(gen.OpenAPI)
			return
		}
		a := answers[r.URL.Path]
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		_, _ = io.WriteString(w, a.body)
	}))
	defer srv.Close()
	c := newContract(t, srv.URL)
	client := &http.Client{Transport: c}
	send := func(method, path, body string) []string {
		t.Helper()
		c.mu.Lock()
		c.violations = nil
		c.mu.Unlock()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.violations
	}
	if v := send("GET", "/api/tenant/info", ""); len(v) != 0 {
		t.Errorf("a conforming answer: %v", v)
	}
	for _, bad := range []struct{ method, path, body string }{
		{"GET", "/api/queue/status", ""},
		{"GET", "/api/tenants/acme", ""},
		{"POST", "/api/queue/enqueue", `{"priority":"urgent"}`}, // accepted, yet no type and no such priority
		{"GET", "/nowhere", ""},
	} {
		if v := send(bad.method, bad.path, bad.body); len(v) == 0 {
			t.Errorf("%s %s: no violation reported", bad.method, bad.path)
		} else {
			t.Logf("%s %s: %s", bad.method, bad.path, v[0])
		}
	}
}
