package e2e

import (
	"fmt"
	"net/http"
	"testing"
)

// The operator's repair paths through the gateway (issue 17): a dead job
// retried, its attempts read, a type paused and resumed, bulk changes by
// filter with a dry run, a finished job deleted; JSON in the seed's style
// (enums as lower-case names) and reason codes for bad input.
func TestQueueRepairREST(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		s := startOn(t, "optional", backend)
		user, worker := s.token(t, "acme", "user"), s.token(t, "acme", "worker")
		must := func(method, path, token, body string) map[string]any {
			t.Helper()
			code, res := s.call(t, method, path, token, nil, body)
			if code != http.StatusOK || res["ok"] != true {
				t.Fatalf("%s %s %s = %d %v", method, path, body, code, res)
			}
			return res
		}
		// A job that dies on its first attempt.
		id := must("POST", "/api/queue/enqueue", user, `{"type":"data_sync","max_attempts":1}`)["job_id"].(string)
		leases := must("POST", "/api/queue/lease", worker, `{"worker_id":"edge-1"}`)["leases"].([]any)
		token := leases[0].(map[string]any)["lease_token"]
		must("POST", "/api/queue/jobs/"+id+"/fail", worker, fmt.Sprintf(`{"worker_id":"edge-1","lease_token":%v,"error":"bad input"}`, token))

		// Pause data_sync, retry the job: it waits until the resume.
		p := must("POST", "/api/queue/types/data_sync:pause", user, `{}`)
		if dig(p, "paused_type", "job_type") != "data_sync" || dig(p, "paused_type", "paused_by") != "e2e-acme" {
			t.Fatalf("pause = %v", p)
		}
		j := must("POST", "/api/queue/jobs/"+id+"/retry", user, `{}`)
		if dig(j, "job", "status") != "queued" || dig(j, "job", "attempts") != 1.0 || dig(j, "job", "retried_by") != "e2e-acme" {
			t.Fatalf("retry = %v", j)
		}
		if l := must("POST", "/api/queue/lease", worker, `{"worker_id":"edge-2"}`)["leases"].([]any); len(l) != 0 {
			t.Fatalf("leased a paused type: %v", l)
		}
		st := must("GET", "/api/queue/status", user, "")
		if types, _ := st["paused_types"].([]any); len(types) != 1 || st["queued"] != 1.0 || st["dead"] != 0.0 {
			t.Fatalf("status = %v", st)
		}
		if types, _ := must("GET", "/api/queue/paused-types", user, "")["paused_types"].([]any); len(types) != 1 {
			t.Fatalf("paused types = %v", types)
		}
		if r := must("POST", "/api/queue/types/data_sync:resume", user, `{}`); r["resumed"] != true {
			t.Fatalf("resume = %v", r)
		}
		leases = must("POST", "/api/queue/lease", worker, `{"worker_id":"edge-2"}`)["leases"].([]any)
		if len(leases) != 1 || dig(leases[0].(map[string]any), "job", "attempts") != 2.0 {
			t.Fatalf("lease after resume = %v", leases)
		}
		token = leases[0].(map[string]any)["lease_token"]
		must("POST", "/api/queue/jobs/"+id+"/complete", worker, fmt.Sprintf(`{"worker_id":"edge-2","lease_token":%v}`, token))
		attempts := must("GET", "/api/queue/jobs/"+id+"/attempts", user, "")["attempts"].([]any)
		if len(attempts) != 2 {
			t.Fatalf("attempts = %v", attempts)
		}
		first, second := attempts[0].(map[string]any), attempts[1].(map[string]any)
		if first["outcome"] != "failed" || first["error"] != "bad input" || first["worker_id"] != "edge-1" || first["attempt"] != 1.0 ||
			second["outcome"] != "completed" || second["worker_id"] != "edge-2" || second["end_time"] == nil {
			t.Fatalf("attempts = %v", attempts)
		}

		// Bulk: a dry run, then the change; a delete of the finished job.
		batch := must("POST", "/api/queue/enqueue:batch", user,
			`{"jobs":[{"type":"report_gen","priority":"low"},{"type":"report_gen","priority":"low"},{"type":"report_gen","priority":"low"}]}`)
		if jobs, _ := batch["jobs"].([]any); len(jobs) != 3 || jobs[2].(map[string]any)["status"] != "queued" {
			t.Fatalf("batch enqueue = %v", batch)
		}
		b := must("POST", "/api/queue/jobs:bulk", user, `{"action":"cancel","filter":{"type":"report_gen","priority":"low"},"dry_run":true}`)
		if b["matched"] != 3.0 || b["affected"] != 0.0 || b["remaining"] != 3.0 || b["dry_run"] != true {
			t.Fatalf("dry run = %v", b)
		}
		b = must("POST", "/api/queue/jobs:bulk", user, `{"action":"cancel","filter":{"statuses":["queued"]},"limit":2}`)
		if b["matched"] != 3.0 || b["affected"] != 2.0 || b["remaining"] != 1.0 {
			t.Fatalf("bulk cancel = %v", b)
		}
		if d := must("DELETE", "/api/queue/jobs/"+id, user, ""); dig(d, "job", "status") != "completed" {
			t.Fatalf("delete = %v", d)
		}
		b = must("POST", "/api/queue/jobs:bulk", user, `{"action":"delete","filter":{"statuses":["cancelled"]}}`)
		if b["affected"] != 2.0 {
			t.Fatalf("bulk delete = %v", b)
		}
		if st := must("GET", "/api/queue/status", user, ""); st["total_jobs"] != 1.0 || st["queued"] != 1.0 {
			t.Fatalf("status after the repairs = %v", st)
		}

		for _, c := range []struct {
			method, path, body string
			status             int
			reason             string
		}{
			{"POST", "/api/queue/jobs:bulk", `{"action":"explode"}`, http.StatusBadRequest, "BULK_ACTION_INVALID"},
			{"POST", "/api/queue/jobs:bulk", `{"action":"retry","filter":{"statuses":["zombie"]}}`, http.StatusBadRequest, "STATUS_INVALID"},
			{"POST", "/api/queue/jobs:bulk", `{"action":"retry","limit":5000}`, http.StatusBadRequest, "BULK_LIMIT_INVALID"},
			{"POST", "/api/queue/jobs:bulk", `{"action":"delete","filter":{"created_after":"2026-01-02T00:00:00Z","created_before":"2026-01-01T00:00:00Z"}}`,
				http.StatusBadRequest, "CREATED_RANGE_INVALID"},
			{"POST", "/api/queue/types/Data%20Sync:pause", `{}`, http.StatusBadRequest, "TYPE_INVALID"},
			{"POST", "/api/queue/jobs/" + id + "/retry", `{}`, http.StatusNotFound, "JOB_NOT_FOUND"},
			{"DELETE", "/api/queue/jobs/" + id, "", http.StatusNotFound, "JOB_NOT_FOUND"},
		} {
			code, body := s.call(t, c.method, c.path, user, nil, c.body)
			if code != c.status || dig(body, "error", "reason") != c.reason {
				t.Errorf("%s %s %s = %d %v, want %d %s", c.method, c.path, c.body, code, body, c.status, c.reason)
			}
		}
		// Another tenant's bulk call and retry reach none of acme's jobs.
		other := s.token(t, "globex", "user")
		if b := must("POST", "/api/queue/jobs:bulk", other, `{"action":"cancel"}`); b["matched"] != 0.0 {
			t.Fatalf("globex's bulk cancel matched %v", b)
		}
		if st := must("GET", "/api/queue/status", user, ""); st["queued"] != 1.0 {
			t.Fatalf("acme's status after globex's call = %v", st)
		}
	})
}
