package gateway

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	audit "github.com/echopilot/echopilot/services/audit/app"
)

func auditGateway(t *testing.T) *httptest.Server {
	t.Helper()
	return backendGateway(t, "audit", audit.Spec(), "--signing-key-file="+filepath.Join(t.TempDir(), "key"))
}

// GET /api/audit/chain in the seed's shape, and the export streamed as
// JSON lines through the gateway.
func TestAuditChainAndExport(t *testing.T) {
	srv := auditGateway(t)
	for range 3 {
		r := do(t, srv, "POST", "/api/audit/entries", `{"entries":[{"event_type":"user.login","user":"alice","severity":"high"}]}`,
			"X-Tenant-ID", "acme")
		if r.status != http.StatusOK {
			t.Fatalf("append: %d %s", r.status, r.raw)
		}
	}
	r := do(t, srv, "GET", "/api/audit/chain?limit=2", "", "X-Tenant-ID", "acme")
	for _, part := range []string{`"ok":true`, `"total":3`, `"verification":{"valid":true,"entries":3,`, `"seq":1,`, `"prev_hash":"genesis"`} {
		if r.status != http.StatusOK || !strings.Contains(r.raw, part) {
			t.Fatalf("chain %d %s\nlacks %s", r.status, r.raw, part)
		}
	}
	req, _ := http.NewRequest("GET", srv.URL+"/api/audit/export", nil)
	req.Header.Set("X-Tenant-ID", "acme")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("export: %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	var lines []map[string]any
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 4 || lines[0]["type"] != "checkpoint" || lines[3]["type"] != "entry" {
		t.Fatalf("export lines: %v", lines)
	}
	paths := do(t, srv, "GET", "/openapi.json", "").body["paths"].(map[string]any)
	for _, p := range []string{"/api/audit/chain", "/api/audit/entries", "/api/audit/checkpoint", "/api/audit/export",
		"/api/audit/proofs/inclusion", "/api/audit/proofs/consistency"} {
		if paths[p] == nil {
			t.Errorf("openapi lacks %s", p)
		}
	}
}
