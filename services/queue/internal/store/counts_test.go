package store_test

import (
	"cmp"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/services/queue/internal/domain"
)

// TestCountsMatchJobs drives jobs through every write the store has
// (enqueue, duplicate, claim, heartbeat, complete, fail and retry, dead,
// cancel, lease expiry, retention) and checks after each that Counts
// agrees with grouping the jobs table itself: Counts reads counters kept by
// triggers (on PostgreSQL with deltas folded in), which must never drift
// from the rows.
func TestCountsMatchJobs(t *testing.T) {
	eachBackend(t, func(t *testing.T, f fixture) {
		ctx := t.Context()
		// Each step is checked with the counters' deltas not folded yet
		// (PostgreSQL), then again after a fold, which leaves none.
		var check func(step string)
		compare := func(step string) {
			t.Helper()
			for _, tenant := range []string{"acme", "globex"} {
				cs, err := f.st.Counts(ctx, tenant)
				if err != nil {
					t.Fatal(err)
				}
				got := slices.Clone(cs)
				rows, err := f.owner.QueryContext(ctx, f.owner.Rebind(
					"SELECT state, type, prio, count(*) FROM jobs WHERE tenant_id = ? GROUP BY state, type, prio"), tenant)
				if err != nil {
					t.Fatal(err)
				}
				var want []domain.Count
				for rows.Next() {
					var c domain.Count
					var state string
					var p int64
					if err := rows.Scan(&state, &c.Type, &p, &c.N); err != nil {
						t.Fatal(err)
					}
					c.Status, c.Priority = domain.Status(state), domain.Priority(p)
					want = append(want, c)
				}
				rows.Close()
				slices.SortFunc(got, cmpCount)
				slices.SortFunc(want, cmpCount)
				if !slices.Equal(got, want) {
					t.Fatalf("after %s, %s: Counts = %v, jobs say %v", step, tenant, got, want)
				}
			}
		}
		check = func(step string) {
			t.Helper()
			compare(step)
			if _, err := f.st.FoldCounts(ctx); err != nil {
				t.Fatal(err)
			}
			compare(step + ", folded")
			if f.db.Dialect == pstore.Postgres {
				var left int
				if err := f.owner.QueryRowContext(ctx, "SELECT count(*) FROM job_count_deltas").Scan(&left); err != nil || left != 0 {
					t.Fatalf("after %s and a fold: %d deltas left, %v", step, left, err)
				}
			}
		}
		check("nothing")
		for i := range 6 {
			f.enqueue(t, "acme", prio(domain.Priority(i%3)), jobType([]string{"ai_task", "data_sync"}[i%2]), maxAttempts(2))
		}
		f.enqueue(t, "globex", key("k"))
		if _, dup, err := f.st.Enqueue(ctx, newJob("globex", key("k"), createdAt(f.t0))); err != nil || !dup {
			t.Fatalf("duplicate enqueue: %v %v", dup, err)
		}
		check("enqueue")
		ls := f.claim(t, "acme", 5, f.t0)
		check("claim")
		if _, err := f.st.Heartbeat(ctx, ref(ls[0]), time.Minute, f.t0); err != nil {
			t.Fatal(err)
		}
		if _, err := f.st.Complete(ctx, ref(ls[0]), domain.Completion{Result: json.RawMessage(`{}`), Now: f.t0}); err != nil {
			t.Fatal(err)
		}
		check("complete")
		if _, err := f.st.Fail(ctx, ref(ls[1]), func(domain.Job) domain.Retry {
			return domain.Retry{RunAt: f.t0, Error: "again", Now: f.t0}
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.st.Fail(ctx, ref(ls[2]), func(domain.Job) domain.Retry { return domain.Retry{Dead: true, Now: f.t0} }); err != nil {
			t.Fatal(err)
		}
		check("fail")
		if _, err := f.cancel(ctx, "acme", ls[3].Job.ID, f.t0); err != nil {
			t.Fatal(err)
		}
		check("cancel")
		if _, err := f.st.ExpireLeases(ctx, "acme", f.t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		check("lease expiry")
		// Operator repairs: one job, then in bulk.
		if _, err := f.st.Repair(ctx, domain.Repair{TenantID: "acme", Action: domain.ActionRetry, JobID: ls[2].Job.ID, Limit: 1, Actor: "ops", Now: f.t0}); err != nil {
			t.Fatal(err)
		}
		check("retry")
		if _, err := f.st.Repair(ctx, domain.Repair{TenantID: "acme", Action: domain.ActionDelete, JobID: ls[3].Job.ID, Limit: 1, Actor: "ops", Now: f.t0}); err != nil {
			t.Fatal(err)
		}
		check("delete")
		for _, a := range []domain.Action{domain.ActionCancel, domain.ActionRetry, domain.ActionDelete} {
			if _, err := f.st.Repair(ctx, domain.Repair{TenantID: "acme", Action: a, Filter: domain.JobFilter{Statuses: a.Statuses(), Type: "ai_task"}, Limit: 2, Actor: "ops", Now: f.t0}); err != nil {
				t.Fatal(err)
			}
			check("bulk " + string(a))
		}
		if _, err := f.st.DeleteFinished(ctx, f.t0.Add(24*time.Hour)); err != nil {
			t.Fatal(err)
		}
		check("retention")
	})
}

func cmpCount(a, b domain.Count) int {
	return cmp.Or(strings.Compare(string(a.Status), string(b.Status)), strings.Compare(a.Type, b.Type), cmp.Compare(a.Priority, b.Priority))
}
