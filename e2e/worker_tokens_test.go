package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A tenant admin mints a worker token through the gateway; an edge worker
// reading it from a file completes a job with it (and finops accepts it);
// once the admin revokes it, the worker's next lease is refused.
func TestWorkerTokensThroughGateway(t *testing.T) {
	s := startSuite(t, "required")
	ai, _ := aiEndpoint(t, false)
	admin, user := s.token(t, "acme", "admin"), s.token(t, "acme", "user")

	code, body := s.call(t, "POST", "/api/queue/worker-tokens", user, nil, `{"name":"edge-e2e","ttl":"1h"}`)
	if code != http.StatusForbidden || dig(body, "error", "reason") != "ROLE_REQUIRED" {
		t.Fatalf("user minting = %d %v, want 403 ROLE_REQUIRED", code, body)
	}
	code, body = s.call(t, "POST", "/api/queue/worker-tokens", admin, map[string]string{"X-Tenant-ID": "globex"}, `{"name":"x"}`)
	if code != http.StatusForbidden || dig(body, "error", "reason") != "CROSS_TENANT_DENIED" {
		t.Fatalf("acme's admin minting for globex = %d %v, want 403 CROSS_TENANT_DENIED", code, body)
	}
	code, body = s.call(t, "POST", "/api/queue/worker-tokens", admin, nil, `{"name":"edge-e2e","ttl":"2m"}`)
	token, _ := body["token"].(string)
	id, _ := dig(body, "worker_token", "token_id").(string)
	if code != http.StatusOK || body["ok"] != true || token == "" || id == "" || dig(body, "worker_token", "ttl") != "2m0s" {
		t.Fatalf("mint = %d %v", code, body)
	}
	code, body = s.call(t, "POST", "/api/queue/worker-tokens", admin, nil, `{"name":"x","ttl":"48h"}`)
	if code != http.StatusBadRequest || dig(body, "error", "reason") != "WORKER_TOKEN_TTL_INVALID" {
		t.Fatalf("ttl 48h = %d %v, want 400 WORKER_TOKEN_TTL_INVALID", code, body)
	}

	// finops trusts the queue's key too (report_gen reads it with this token).
	if code, body := s.call(t, "GET", "/api/finops/summary", token, nil, ""); code != http.StatusOK {
		t.Fatalf("finops with the worker token = %d %v", code, body)
	}

	file := filepath.Join(t.TempDir(), "worker-token")
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func() ([]byte, error) {
		env := []string{"ECHOPILOT_AI_BASE_URL=" + ai.URL, "ECHOPILOT_AI_MODEL=e2e-model"}
		if s.TLS != nil {
			env = append(env, "ECHOPILOT_TLS_CA_FILE="+s.TLS.CAFile)
		}
		cmd := exec.Command(filepath.Join(binDir, "edge-worker"), "--queue-addr="+s.GRPCAddrs["queue"],
			"--token-file="+file, "--max-jobs=1", "--worker-id=e2e-token", "--wait=1s")
		cmd.Env = append(cmd.Environ(), env...)
		return cmd.CombinedOutput()
	}
	if code, body := s.call(t, "POST", "/api/queue/enqueue", user, nil, `{"type":"ai_task","payload":{"prompt":"hi"}}`); code != http.StatusOK {
		t.Fatalf("enqueue = %d %v", code, body)
	}
	if out, err := run(); err != nil || !strings.Contains(string(out), "Completed") {
		t.Fatalf("edge-worker with the minted token: %v\n%s", err, out)
	}
	if st := s.status(t, user); st["completed"] != 1.0 {
		t.Fatalf("status = %v, want 1 completed", st)
	}

	code, body = s.call(t, "GET", "/api/queue/worker-tokens", admin, nil, "")
	list, _ := body["worker_tokens"].([]any)
	if code != http.StatusOK || len(list) != 1 || strings.Contains(mustJSON(t, body), token[strings.LastIndexByte(token, '.')+1:]) {
		t.Fatalf("list = %d %v", code, body)
	}
	if code, body := s.call(t, "DELETE", "/api/queue/worker-tokens/"+id, admin, nil, ""); code != http.StatusOK || dig(body, "worker_token", "revoke_time") == nil {
		t.Fatalf("revoke = %d %v", code, body)
	}

	if code, body := s.call(t, "POST", "/api/queue/enqueue", user, nil, `{"type":"ai_task","payload":{"prompt":"again"}}`); code != http.StatusOK {
		t.Fatalf("enqueue = %d %v", code, body)
	}
	out, err := run()
	if err == nil || !strings.Contains(string(out), "Unauthenticated desc = the worker token was revoked") {
		t.Fatalf("edge-worker with the revoked token: %v, want it refused as revoked\n%s", err, out)
	}
	if st := s.status(t, user); st["completed"] != 1.0 || st["queued"] != 1.0 {
		t.Fatalf("status after revocation = %v, want the second job still queued", st)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}
