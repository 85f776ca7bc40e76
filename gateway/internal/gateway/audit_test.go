package gateway

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
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
	for _, part := range []string{`"ok":true`, `"total":3`, `"verification":{"valid":true,"entries":3,`, `"seq":1,`, `"prev_hash":"genesis"`,
		`"mode":"full"`, `"verified_size":3`} {
		if r.status != http.StatusOK || !strings.Contains(r.raw, part) {
			t.Fatalf("chain %d %s\nlacks %s", r.status, r.raw, part)
		}
	}
	// Filtered, newest first, by token.
	do(t, srv, "POST", "/api/audit/entries", `{"entries":[{"event_type":"user.logout","user":"bob"}]}`, "X-Tenant-ID", "acme")
	r = do(t, srv, "GET", "/api/audit/chain?event_type=user.login&severity=medium&order=desc&limit=2", "", "X-Tenant-ID", "acme")
	for _, part := range []string{`"ok":true`, `"total":4`, `"seq":3,`, `"seq":2,`, `"next_page_token":"`, `"valid":true`} {
		if r.status != http.StatusOK || !strings.Contains(r.raw, part) || strings.Contains(r.raw, `"seq":4,`) {
			t.Fatalf("filtered chain %d %s\nlacks %s", r.status, r.raw, part)
		}
	}
	next := do(t, srv, "GET", "/api/audit/chain?event_type=user.login&severity=medium&order=desc&limit=2&page_token="+
		r.body["next_page_token"].(string), "", "X-Tenant-ID", "acme")
	if !strings.Contains(next.raw, `"seq":1,`) || strings.Contains(next.raw, `"seq":2,`) {
		t.Fatalf("next page: %s", next.raw)
	}
	// Severities are the seed's strings both ways; an unknown one keeps the
	// service's reason code, and a number was never a severity.
	if !strings.Contains(next.raw, `"severity":"high"`) {
		t.Fatalf("severity not shown as its seed string: %s", next.raw)
	}
	for body, reason := range map[string]string{`{"event_type":"x","severity":"urgent"}`: "ENTRY_INVALID",
		`{"event_type":"x","severity":"SEVERITY_HIGH"}`: "ENTRY_INVALID", `{"event_type":"x","severity":3}`: "INVALID_REQUEST"} {
		bad := do(t, srv, "POST", "/api/audit/entries", `{"entries":[`+body+`]}`, "X-Tenant-ID", "acme")
		if bad.status != http.StatusBadRequest || !strings.Contains(bad.raw, `"reason":"`+reason+`"`) {
			t.Fatalf("%s: %d %s", body, bad.status, bad.raw)
		}
	}
	for q, reason := range map[string]string{"severity=urgent": "FILTER_INVALID", "since=yesterday": "FILTER_INVALID",
		"severity=SEVERITY_HIGH": "FILTER_INVALID", "severity=3": "FILTER_INVALID",
		"order=up": "FILTER_INVALID", "user=bob&page_token=" + r.body["next_page_token"].(string): "PAGE_TOKEN_INVALID"} {
		if bad := do(t, srv, "GET", "/api/audit/chain?"+q, "", "X-Tenant-ID", "acme"); bad.status != http.StatusBadRequest ||
			!strings.Contains(bad.raw, `"reason":"`+reason+`"`) || !strings.Contains(bad.raw, `"ok":false`) {
			t.Fatalf("%s: %d %s", q, bad.status, bad.raw)
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
	if len(lines) != 5 || lines[0]["type"] != "checkpoint" || lines[4]["type"] != "entry" {
		t.Fatalf("export lines: %v", lines)
	}
	// A filtered export: the checkpoint, the filter, each entry with its
	// inclusion proof.
	req, _ = http.NewRequest("GET", srv.URL+"/api/audit/export?user=bob&severity=low", nil)
	req.Header.Set("X-Tenant-ID", "acme")
	fresp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer fresp.Body.Close()
	body, _ := io.ReadAll(fresp.Body)
	if fl := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n"); fresp.StatusCode != http.StatusOK || len(fl) != 3 ||
		!strings.HasPrefix(fl[1], `{"type":"filter","tenant_id":"acme","event_type":"","user":"bob",`) ||
		!strings.Contains(fl[2], `"seq":4,`) || !strings.Contains(fl[2], `"inclusion_proof":["`) {
		t.Fatalf("filtered export: %d\n%s", fresp.StatusCode, body)
	}
	paths := do(t, srv, "GET", "/openapi.json", "").body["paths"].(map[string]any)
	for _, p := range []string{"/api/audit/chain", "/api/audit/entries", "/api/audit/checkpoint", "/api/audit/export",
		"/api/audit/proofs/inclusion", "/api/audit/proofs/consistency", "/api/audit/checkpoints"} {
		if paths[p] == nil {
			t.Errorf("openapi lacks %s", p)
		}
	}
}

// GET /api/audit/checkpoints lists every checkpoint issued (one per
// append), from a tree size on, a page at a time, each one signed.
func TestAuditCheckpointList(t *testing.T) {
	srv := auditGateway(t)
	for range 3 {
		if r := do(t, srv, "POST", "/api/audit/entries", `{"entries":[{"event_type":"user.login"}]}`, "X-Tenant-ID", "acme"); r.status != http.StatusOK {
			t.Fatalf("append: %d %s", r.status, r.raw)
		}
	}
	do(t, srv, "POST", "/api/audit/entries", `{"entries":[{"event_type":"other"}]}`, "X-Tenant-ID", "beta")
	r := do(t, srv, "GET", "/api/audit/checkpoints?from=2&page_size=1", "", "X-Tenant-ID", "acme")
	items, _ := r.body["checkpoints"].([]any)
	tok, _ := r.body["next_page_token"].(string)
	if r.status != http.StatusOK || r.body["ok"] != true || len(items) != 1 || tok == "" || r.body["verifier_key"] == "" {
		t.Fatalf("first page: %d %s", r.status, r.raw)
	}
	first := items[0].(map[string]any)
	if fmt.Sprint(first["tree_size"]) != "2" || len(first["root_hash"].(string)) != 64 ||
		!strings.HasPrefix(first["checkpoint"].(string), "echopilot.audit/acme\n2\n") || first["issue_time"] == "" {
		t.Fatalf("first checkpoint: %s", r.raw)
	}
	r = do(t, srv, "GET", "/api/audit/checkpoints?from=2&page_size=1&page_token="+tok, "", "X-Tenant-ID", "acme")
	items, _ = r.body["checkpoints"].([]any)
	if r.status != http.StatusOK || len(items) != 1 || fmt.Sprint(items[0].(map[string]any)["tree_size"]) != "3" {
		t.Fatalf("second page: %d %s", r.status, r.raw)
	}
	r = do(t, srv, "GET", "/api/audit/checkpoints", "", "X-Tenant-ID", "beta")
	if items, _ = r.body["checkpoints"].([]any); len(items) != 1 || r.body["next_page_token"] != "" {
		t.Fatalf("beta sees %s", r.raw)
	}
	// A token of one query is not one of another.
	r = do(t, srv, "GET", "/api/audit/checkpoints?from=1&page_token="+tok, "", "X-Tenant-ID", "acme")
	if r.status != http.StatusBadRequest {
		t.Fatalf("token of another query: %d %s", r.status, r.raw)
	}
}

// Secrets and endpoints list a page at a time (next_page_token in the
// answer, page_size and page_token in the query), and a create beyond a
// tenant's cap is 429 with the cap's reason.
func TestAuditListsPageAndCaps(t *testing.T) {
	srv := backendGateway(t, "audit", audit.Spec(), "--signing-key-file="+filepath.Join(t.TempDir(), "key"),
		"--max-webhook-secrets=2", "--max-endpoints=2")
	for i := range 3 {
		r := do(t, srv, "POST", "/api/compliance/secrets", `{}`, "X-Tenant-ID", "acme")
		r2 := do(t, srv, "POST", "/api/audit/endpoints", `{"url":"https://93.184.215.14/hook"}`, "X-Tenant-ID", "acme")
		if i < 2 && (r.status != http.StatusOK || r2.status != http.StatusOK) {
			t.Fatalf("create %d: %d %s; %d %s", i, r.status, r.raw, r2.status, r2.raw)
		}
		if i == 2 && (r.status != http.StatusTooManyRequests || r.errCode != "WEBHOOK_SECRET_LIMIT" ||
			r2.status != http.StatusTooManyRequests || r2.errCode != "ENDPOINT_LIMIT") {
			t.Fatalf("create beyond the caps: %d %s; %d %s", r.status, r.raw, r2.status, r2.raw)
		}
	}
	for path, list := range map[string]string{"/api/compliance/secrets": "secrets", "/api/audit/endpoints": "endpoints"} {
		first := do(t, srv, "GET", path+"?page_size=1", "", "X-Tenant-ID", "acme")
		tok, _ := first.body["next_page_token"].(string)
		if items, _ := first.body[list].([]any); first.status != http.StatusOK || first.body["ok"] != true || tok == "" || len(items) != 1 {
			t.Fatalf("%s first page: %d %s", path, first.status, first.raw)
		}
		second := do(t, srv, "GET", path+"?page_size=5&page_token="+tok, "", "X-Tenant-ID", "acme")
		if items, _ := second.body[list].([]any); second.status != http.StatusOK || second.body["next_page_token"] != "" || len(items) != 1 {
			t.Fatalf("%s second page: %d %s", path, second.status, second.raw)
		}
		if bad := do(t, srv, "GET", path+"?page_token=x", "", "X-Tenant-ID", "acme"); bad.status != http.StatusBadRequest ||
			bad.errCode != "PAGE_TOKEN_INVALID" {
			t.Fatalf("%s bad token: %d %s", path, bad.status, bad.raw)
		}
	}
}

// PUT /api/audit/retention: a platform admin sets a tenant's retention
// (a Duration in JSON); a tenant's own admin may not, and a bad age is a
// 400 with a reason.
func TestAuditRetentionREST(t *testing.T) {
	srv := auditGateway(t)
	admin := "Bearer " + token(t, "default", "admin")
	r := do(t, srv, "PUT", "/api/audit/retention", `{"target_tenant_id":"acme","max_age":"2592000s"}`, "Authorization", admin)
	if r.status != http.StatusOK || !strings.Contains(r.raw, `"max_age":"2592000s"`) || !strings.Contains(r.raw, `"retained_from_seq":1`) {
		t.Fatalf("set: %d %s", r.status, r.raw)
	}
	r = do(t, srv, "GET", "/api/audit/chain?limit=1", "", "X-Tenant-ID", "acme")
	if r.status != http.StatusOK || !strings.Contains(r.raw, `"retention":{"max_age":"2592000s","retained_from_seq":1`) {
		t.Fatalf("chain: %d %s", r.status, r.raw)
	}
	for _, c := range []struct {
		body, auth string
		status     int
		reason     string
	}{
		{`{"target_tenant_id":"acme","max_age":"60s"}`, admin, http.StatusBadRequest, "RETENTION_INVALID"},
		{`{"target_tenant_id":"acme","max_age":"soon"}`, admin, http.StatusBadRequest, "INVALID_REQUEST"},
		{`{"max_age":"2592000s"}`, admin, http.StatusBadRequest, "FIELD_REQUIRED"},
		{`{"target_tenant_id":"../x","max_age":"2592000s"}`, admin, http.StatusBadRequest, "RETENTION_INVALID"},
		{`{"target_tenant_id":"acme","max_age":"2592000s"}`, "Bearer " + token(t, "acme", "admin"), http.StatusForbidden, "TENANT_NOT_ALLOWED"},
	} {
		r := do(t, srv, "PUT", "/api/audit/retention", c.body, "Authorization", c.auth)
		if r.status != c.status || r.errCode != c.reason {
			t.Errorf("%s: %d %s, want %d %s", c.body, r.status, r.raw, c.status, c.reason)
		}
	}
}

// The webhook repair paths route to their RPCs (custom verbs, PATCH) with
// the service's reasons, and the outbox repair paths answer platform
// admins only.
func TestAuditRepairREST(t *testing.T) {
	srv := auditGateway(t)
	r := do(t, srv, "POST", "/api/audit/endpoints", `{"url":"https://93.184.215.14/hook","event_types":["user.login"],"min_severity":"critical"}`,
		"X-Tenant-ID", "acme")
	ep, _ := r.body["endpoint"].(map[string]any)
	id, _ := ep["endpoint_id"].(string)
	if r.status != http.StatusOK || id == "" || ep["min_severity"] != "critical" || ep["enabled"] != true {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	base := "/api/audit/endpoints/" + id
	for _, c := range []struct {
		method, path, body, tenant string
		status                     int
		reason, want               string
	}{
		{"PATCH", base, `{"min_severity":"low"}`, "acme", 400, "ENDPOINT_FILTER_INVALID", ""},
		{"PATCH", base, `{"min_severity":"bogus"}`, "acme", 400, "ENDPOINT_FILTER_INVALID", ""},
		{"PATCH", base, `{"event_types":["a","b"]}`, "acme", 200, "", `"min_severity":"high"`},
		{"PATCH", base, `{}`, "globex", 404, "ENDPOINT_NOT_FOUND", ""},
		{"POST", base + ":disable", `{"reason":"maintenance"}`, "acme", 200, "", `"disabled_reason":"maintenance"`},
		{"POST", base + ":disable", `{}`, "globex", 404, "ENDPOINT_NOT_FOUND", ""},
		{"POST", base + ":redeliver", `{}`, "acme", 400, "ENDPOINT_DISABLED", ""},
		{"POST", base + ":enable", ``, "acme", 200, "", `"enabled":true`},
		{"POST", base + ":redeliver", `{}`, "acme", 200, "", `"redelivered"`},
		{"POST", base + ":redeliver", `{}`, "globex", 404, "ENDPOINT_NOT_FOUND", ""},
		{"POST", base + ":rotate-secret", `{"grace_seconds":604801}`, "acme", 400, "SECRET_GRACE_INVALID", ""},
		{"POST", base + ":rotate-secret", `{"grace_seconds":60}`, "globex", 404, "ENDPOINT_NOT_FOUND", ""},
		{"POST", base + ":rotate-secret", `{"grace_seconds":60}`, "acme", 200, "", `"secret":"whsec_`},
		{"POST", "/api/audit/deliveries/01JUNKNOWN:redeliver", `{}`, "acme", 404, "DELIVERY_NOT_FOUND", ""},
	} {
		r := do(t, srv, c.method, c.path, c.body, "X-Tenant-ID", c.tenant)
		if r.status != c.status || r.errCode != c.reason || !strings.Contains(r.raw, c.want) {
			t.Errorf("%s %s %s as %s: %d %s; want %d %s %s", c.method, c.path, c.body, c.tenant, r.status, r.raw, c.status, c.reason, c.want)
		}
	}

	admin := "Bearer " + token(t, "default", "admin")
	for _, c := range []struct {
		method, path, body string
		headers            []string
		status             int
		reason, want       string
	}{
		{"GET", "/api/audit/outbox/dead", "", []string{"X-Tenant-ID", "acme"}, 403, "TENANT_NOT_ALLOWED", ""},
		{"GET", "/api/audit/outbox/dead", "", []string{"Authorization", "Bearer " + token(t, "acme", "admin")}, 403, "TENANT_NOT_ALLOWED", ""},
		{"POST", "/api/audit/outbox/dead:requeue", `{"all":true}`, []string{"Authorization", "Bearer " + token(t, "default", "user")}, 403, "ROLE_REQUIRED", ""},
		{"GET", "/api/audit/outbox/dead?topic=audit.webhook", "", []string{"Authorization", admin}, 200, "", `"events":[]`},
		{"POST", "/api/audit/outbox/dead:requeue", `{"all":true}`, []string{"Authorization", admin}, 200, "", `"requeued"`},
		{"POST", "/api/audit/outbox/dead:requeue", `{"ids":["nope"]}`, []string{"Authorization", admin}, 404, "OUTBOX_EVENT_NOT_FOUND", ""},
		{"POST", "/api/audit/outbox/dead:requeue", `{}`, []string{"Authorization", admin}, 400, "OUTBOX_REQUEUE_INVALID", ""},
	} {
		r := do(t, srv, c.method, c.path, c.body, c.headers...)
		if r.status != c.status || r.errCode != c.reason || !strings.Contains(r.raw, c.want) {
			t.Errorf("%s %s %s: %d %s; want %d %s %s", c.method, c.path, c.body, r.status, r.raw, c.status, c.reason, c.want)
		}
	}
}
