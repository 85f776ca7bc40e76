package app_test

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	"github.com/echopilot/echopilot/platform/metricstest"
	"github.com/echopilot/echopilot/platform/server"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/queue/app"
)

// TestJobHistograms: a lease observes the job's wait and a completion or
// failure its run time, by type and priority; types past the first 20
// share "other". Then the registry's names are the committed list the
// deploy checks hold alert rules and dashboards to.
func TestJobHistograms(t *testing.T) {
	for _, b := range []string{"sqlite", "postgres"} {
		t.Run(b, func(t *testing.T) {
			reg := server.NewRegistry()
			// A finops address (nothing listens there) starts the outbox
			// relay, whose series production has.
			opt := servicetest.Options{AuthMode: "required", Registry: reg, Quiet: true, Args: []string{"--finops-addr=127.0.0.1:1"}}
			if b == "postgres" {
				opt.MigrateURL, opt.DatabaseURL = storetest.Postgres(t)
			}
			c := queuev1.NewQueueServiceClient(servicetest.Start(t, app.Spec(), opt))
			user, worker := as(t, "acme", "user"), as(t, "acme", "worker")
			high := map[string]string{"type": "ai_task", "priority": "high"}

			mustEnqueue(t, c, user, &queuev1.EnqueueJobRequest{Type: "ai_task", Priority: queuev1.Priority_PRIORITY_HIGH})
			mustEnqueue(t, c, user, &queuev1.EnqueueJobRequest{Type: "ai_task", Priority: queuev1.Priority_PRIORITY_HIGH})
			leases := mustLease(t, c, worker, &queuev1.LeaseJobsRequest{MaxJobs: 2})
			if len(leases) != 2 {
				t.Fatalf("leased %d, want 2", len(leases))
			}
			if n := metricstest.SampleCount(t, reg, "echopilot_queue_job_wait_seconds", high); n != 2 {
				t.Errorf("wait observations = %d, want 2", n)
			}
			if n := metricstest.SampleCount(t, reg, "echopilot_queue_job_run_seconds", nil); n != 0 {
				t.Errorf("run observations before any end = %d, want 0", n)
			}
			if _, err := complete(c, worker, leases[0]); err != nil {
				t.Fatal(err)
			}
			if _, err := c.FailJob(worker, &queuev1.FailJobRequest{JobId: leases[1].GetJob().GetJobId(), WorkerId: "w1",
				LeaseToken: leases[1].GetLeaseToken(), Error: "boom"}); err != nil {
				t.Fatal(err)
			}
			if n := metricstest.SampleCount(t, reg, "echopilot_queue_job_run_seconds", high); n != 2 {
				t.Errorf("run observations = %d, want 2", n)
			}

			// 25 more types: the first 19 new ones get their own series.
			for i := range 25 {
				mustEnqueue(t, c, user, &queuev1.EnqueueJobRequest{Type: fmt.Sprintf("t%02d", i)})
			}
			for got := 0; got < 25; {
				got += len(mustLease(t, c, worker, &queuev1.LeaseJobsRequest{MaxJobs: 25}))
			}
			if n := metricstest.SampleCount(t, reg, "echopilot_queue_job_wait_seconds", map[string]string{"type": server.OverflowLabel}); n != 6 {
				t.Errorf("wait observations of type other = %d, want 6", n)
			}
			if n := countSeries(t, reg, "echopilot_queue_job_wait_seconds"); n != 21 {
				t.Errorf("wait series = %d, want 21 (20 types and other)", n)
			}
			if b == "sqlite" {
				metricstest.Golden(t, reg, "../../../deploy/testdata/metrics/queue.txt")
			}
		})
	}
}

func countSeries(t *testing.T, g prometheus.Gatherer, name string) int {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}
