package gateway

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// GET /docs is the reference page: it loads only the vendored script, from
// the gateway, which points Redoc at /openapi.json, under a CSP that
// allows that script and no inline one.
func TestDocsPage(t *testing.T) {
	srv := newGateway(t, "optional")
	get := func(path string) (*http.Response, string) {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, page := get("/docs")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("/docs: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self';") || strings.Contains(csp, "unsafe-eval") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("/docs CSP: %q", csp)
	}
	scripts := regexp.MustCompile(`<script([^>]*)>`).FindAllStringSubmatch(page, -1)
	if len(scripts) != 1 || scripts[0][1] != ` src="/docs/redoc.standalone.js"` || !strings.Contains(page, `spec-url="/openapi.json"`) {
		t.Fatalf("/docs page: scripts %v\n%s", scripts, page)
	}
	if strings.Contains(page, "http://") || strings.Contains(page, "https://") {
		t.Error("/docs loads something from elsewhere")
	}
	resp, script := get("/docs/redoc.standalone.js")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") ||
		resp.Header.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(script, `Hw="2.5.4"`) {
		t.Fatalf("script: %d %v, %d bytes", resp.StatusCode, resp.Header, len(script))
	}
}
