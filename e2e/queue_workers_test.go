package e2e

import (
	"net/http"
	"os"
	"testing"
)

// An edge worker announces itself: GET /api/queue/workers through the
// gateway lists it with what it said of itself, to its own tenant only.
func TestQueueWorkers(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		s := startOn(t, "optional", backend)
		ai, _ := aiEndpoint(t, false)
		user := s.token(t, "acme", "user")
		if code, body := s.call(t, "POST", "/api/queue/enqueue", user, nil, `{"type":"ai_task","payload":{"prompt":"hi"}}`); code != http.StatusOK {
			t.Fatalf("enqueue = %d %v", code, body)
		}
		out, err := s.worker(t, "acme", ai, "--max-jobs=1", "--worker-id=e2e-edge", "--concurrency=3").CombinedOutput()
		if err != nil {
			t.Fatalf("edge-worker: %v\n%s", err, out)
		}

		code, body := s.call(t, "GET", "/api/queue/workers?page_size=10", user, nil, "")
		workers, _ := body["workers"].([]any)
		if code != http.StatusOK || body["ok"] != true || len(workers) != 1 {
			t.Fatalf("workers = %d %v", code, body)
		}
		host, _ := os.Hostname()
		w := workers[0].(map[string]any)
		if w["worker_id"] != "e2e-edge" || w["concurrency"] != 3.0 || w["host"] != host || w["version"] == "" ||
			w["leases_held"] != nil && w["leases_held"] != 0.0 || w["stale"] == true || w["last_seen"] == nil || w["first_seen"] == nil {
			t.Fatalf("worker = %v", w)
		}

		globex := s.token(t, "globex", "user")
		if code, body := s.call(t, "GET", "/api/queue/workers", globex, nil, ""); code != http.StatusOK || len(body["workers"].([]any)) != 0 {
			t.Fatalf("globex's workers = %d %v", code, body)
		}
		code, body = s.call(t, "GET", "/api/queue/workers", globex, map[string]string{"X-Tenant-ID": "acme"}, "")
		if code != http.StatusForbidden || dig(body, "error", "reason") != "CROSS_TENANT_DENIED" {
			t.Fatalf("globex naming acme = %d %v, want 403 CROSS_TENANT_DENIED", code, body)
		}
	})
}
