package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/devstack"
)

// aiEndpoint is an OpenAI-compatible chat completions server: the one
// outside system the worker calls. With hold set, the first request waits
// until its client goes away (a worker killed mid-job).
func aiEndpoint(t *testing.T, hold bool) (*httptest.Server, *atomic.Int32) {
	return aiEndpointUsage(t, hold, 12, 3)
}

// aiEndpointUsage is aiEndpoint reporting the given token usage for the
// model the request names.
func aiEndpointUsage(t *testing.T, hold bool, promptTokens, completionTokens int) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/chat/completions" || r.Method != http.MethodPost {
			http.NotFound(w, r)
			return
		}
		// Reading the body lets the server notice the client going away.
		var req struct {
			Model string `json:"model"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			return
		}
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return
		}
		if calls.Add(1) == 1 && hold {
			select {
			case <-r.Context().Done():
			case <-stop:
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"c1","object":"chat.completion","model":%q,
			"choices":[{"index":0,"message":{"role":"assistant","content":"bonjour"},"finish_reason":"stop"}],
			"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`,
			req.Model, promptTokens, completionTokens, promptTokens+completionTokens)
	}))
	t.Cleanup(func() { close(stop); srv.Close() })
	return srv, &calls
}

// workerArgs are the edge-worker's arguments and extra environment for a
// worker of tenant against this stack and ai.
func (s *suite) workerArgs(t *testing.T, tenant string, ai *httptest.Server, args ...string) ([]string, []string) {
	t.Helper()
	env := []string{"ECHOPILOT_AI_BASE_URL=" + ai.URL, "ECHOPILOT_AI_MODEL=e2e-model"}
	if s.TLS != nil {
		// The CA bundle alone: edge workers prove themselves with their token.
		env = append(env, "ECHOPILOT_TLS_CA_FILE="+s.TLS.CAFile)
	}
	return append([]string{"--queue-addr=" + s.GRPCAddrs["queue"], "--token=" + s.token(t, tenant, "worker")}, args...), env
}

func (s *suite) worker(t *testing.T, tenant string, ai *httptest.Server, args ...string) *exec.Cmd {
	t.Helper()
	argv, env := s.workerArgs(t, tenant, ai, args...)
	cmd := exec.Command(filepath.Join(binDir, "edge-worker"), argv...)
	cmd.Env = append(cmd.Environ(), env...)
	return cmd
}

func (s *suite) status(t *testing.T, token string) map[string]any {
	t.Helper()
	code, body := s.call(t, "GET", "/api/queue/status", token, nil, "")
	if code != http.StatusOK {
		t.Fatalf("status = %d %v", code, body)
	}
	return body
}

// The seed's PHASE 119 gate: enqueue 2 jobs → 2 queued → a worker with
// --max-jobs=2 processes them → 2 completed, 0 queued.
func TestQueueGate(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		s := startOn(t, "optional", backend)
		ai, calls := aiEndpoint(t, false)
		user := s.token(t, "acme", "user")

		for i := 0; i < 2; i++ {
			code, body := s.call(t, "POST", "/api/queue/enqueue", user, nil, `{"type":"ai_task","priority":"high","payload":{"prompt":"Say hello in French"}}`)
			if code != http.StatusOK || body["status"] != "queued" || body["duplicate"] != false || body["job_id"] == "" {
				t.Fatalf("enqueue = %d %v", code, body)
			}
		}
		st := s.status(t, user)
		if st["total_jobs"] != 2.0 || st["queued"] != 2.0 || st["completed"] != 0.0 || st["by_type"].(map[string]any)["ai_task"] != 2.0 {
			t.Fatalf("status before = %v", st)
		}
		checkSeedStrings(t, s, user)

		out, err := s.worker(t, "acme", ai, "--max-jobs=2", "--worker-id=test_worker").CombinedOutput()
		if err != nil {
			t.Fatalf("edge-worker: %v\n%s", err, out)
		}
		text := string(out)
		if !strings.HasPrefix(text, "Starting edge worker: test_worker\n") || strings.Count(text, "✓ Completed: ") != 2 ||
			!strings.HasSuffix(text, "Worker stopped. Processed 2 jobs.\n") {
			t.Fatalf("worker output:\n%s", text)
		}
		st = s.status(t, user)
		if st["completed"] != 2.0 || st["queued"] != 0.0 || st["processing"] != 0.0 || st["total_jobs"] != 2.0 {
			t.Fatalf("status after = %v", st)
		}
		if calls.Load() != 2 {
			t.Fatalf("AI endpoint called %d times, want 2", calls.Load())
		}
		// Another tenant sees none of it.
		if other := s.status(t, s.token(t, "globex", "user")); other["total_jobs"] != 0.0 {
			t.Fatalf("globex sees acme's jobs: %v", other)
		}
	})
}

// checkSeedStrings checks that priorities and statuses are the seed's
// strings in bodies, query parameters and responses (the gRPC API has
// enums), and that unknown ones keep their reason codes. The caller's
// tenant has two queued high jobs.
func checkSeedStrings(t *testing.T, s *suite, user string) {
	t.Helper()
	code, body := s.call(t, "GET", "/api/queue/jobs?status=queued", user, nil, "")
	jobs, _ := body["jobs"].([]any)
	if code != http.StatusOK || len(jobs) != 2 {
		t.Fatalf("queued jobs = %d %v", code, body)
	}
	if j := jobs[0].(map[string]any); j["priority"] != "high" || j["status"] != "queued" {
		t.Fatalf("job = %v", j)
	}
	if code, body := s.call(t, "GET", "/api/queue/jobs?status=", user, nil, ""); code != http.StatusOK || len(body["jobs"].([]any)) != 2 {
		t.Fatalf("status= (any) = %d %v", code, body)
	}
	if code, body := s.call(t, "GET", "/api/queue/jobs?status=completed", user, nil, ""); code != http.StatusOK || len(body["jobs"].([]any)) != 0 {
		t.Fatalf("completed jobs = %d %v", code, body)
	}
	if st := s.status(t, user); dig(st, "by_priority", "high") != 2.0 || dig(st, "by_priority", "critical") != 0.0 {
		t.Fatalf("by_priority = %v", st["by_priority"])
	}
	for _, c := range []struct{ method, path, body, reason string }{
		{"GET", "/api/queue/jobs?status=done", "", "STATUS_INVALID"},
		{"GET", "/api/queue/jobs?status=JOB_STATUS_QUEUED", "", "STATUS_INVALID"},
		{"POST", "/api/queue/enqueue", `{"type":"ai_task","priority":"urgent"}`, "PRIORITY_INVALID"},
		{"POST", "/api/queue/enqueue", `{"type":"ai_task","priority":"PRIORITY_HIGH"}`, "PRIORITY_INVALID"},
		{"POST", "/api/queue/enqueue", `{"type":"ai_task","priority":2}`, "INVALID_REQUEST"},
	} {
		code, body := s.call(t, c.method, c.path, user, nil, c.body)
		if code != http.StatusBadRequest || dig(body, "error", "reason") != c.reason {
			t.Errorf("%s %s %s = %d %v, want 400 %s", c.method, c.path, c.body, code, body, c.reason)
		}
	}
}

// A worker killed with SIGKILL mid-job: the lease expires, the job is
// redelivered to the next worker and completed once.
func TestQueueWorkerKilledMidJob(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		s := startOn(t, "optional", backend)
		ai, calls := aiEndpoint(t, true)
		user := s.token(t, "acme", "user")
		code, body := s.call(t, "POST", "/api/queue/enqueue", user, nil, `{"type":"ai_task","payload":{"prompt":"slow"}}`)
		if code != http.StatusOK {
			t.Fatalf("enqueue = %d %v", code, body)
		}
		jobID := body["job_id"].(string)

		argv, env := s.workerArgs(t, "acme", ai, "--max-jobs=1", "--worker-id=doomed", "--lease=2s")
		p, err := devstack.Start("doomed-worker", filepath.Join(binDir, "edge-worker"), env, s.out, argv...)
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, 20*time.Second, "the job to be processing", func() bool { return s.status(t, user)["processing"] == 1.0 })
		waitFor(t, 10*time.Second, "the AI call to start", func() bool { return calls.Load() == 1 })
		p.Kill()

		out, err := s.worker(t, "acme", ai, "--max-jobs=1", "--worker-id=survivor", "--wait=30s").CombinedOutput()
		if err != nil {
			t.Fatalf("second worker: %v\n%s", err, out)
		}
		st := s.status(t, user)
		if st["completed"] != 1.0 || st["processing"] != 0.0 || st["queued"] != 0.0 || st["total_jobs"] != 1.0 {
			t.Fatalf("status after redelivery = %v", st)
		}
		code, body = s.call(t, "GET", "/api/queue/jobs/"+jobID, user, nil, "")
		job, _ := body["job"].(map[string]any)
		if code != http.StatusOK || job["status"] != "completed" || job["attempts"] != 2.0 || job["last_error"] != "lease expired" {
			raw, _ := json.Marshal(body)
			t.Fatalf("job after redelivery = %d %s", code, raw)
		}
		if calls.Load() != 2 {
			t.Fatalf("AI endpoint called %d times, want 2 (one per delivery)", calls.Load())
		}
	})
}

func waitFor(t *testing.T, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
