package app_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"google.golang.org/grpc"

	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	"github.com/echopilot/echopilot/platform/outbox"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/services/queue/app"
)

// A completion's usage reaches the publisher plugged in for finops, at
// once (the completion kicks the relay), keyed by job id.
func TestCompletionEventReachesPublisher(t *testing.T) {
	events := make(chan outbox.Event, 10)
	var gotAddr string
	spec := app.SpecWith(app.Options{FinOpsPublisher: func(conn grpc.ClientConnInterface) outbox.BatchPublisher {
		gotAddr = conn.(*grpc.ClientConn).Target()
		return func(_ context.Context, evs []outbox.Event) []error {
			for _, e := range evs {
				events <- e
			}
			return make([]error, len(evs))
		}
	}})
	conn := servicetest.Start(t, spec, servicetest.Options{AuthMode: "required", Args: []string{"--finops-addr=finops:9102"}})
	c := queuev1.NewQueueServiceClient(conn)
	user, worker := as(t, "acme", "user"), as(t, "acme", "worker")
	id := mustEnqueue(t, c, user, &queuev1.EnqueueJobRequest{Type: "ai_task"})
	l := mustLease(t, c, worker, &queuev1.LeaseJobsRequest{})[0]
	start := time.Now()
	if _, err := c.CompleteJob(worker, &queuev1.CompleteJobRequest{
		JobId: id, WorkerId: "w1", LeaseToken: l.GetLeaseToken(),
		Usage: &queuev1.Usage{Model: "gpt-4o-mini", InputTokens: 7, OutputTokens: 5, DurationMs: 9},
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-events:
		var p struct {
			JobID string `json:"job_id"`
			Usage struct {
				Model        string `json:"model"`
				OutputTokens int64  `json:"output_tokens"`
			} `json:"usage"`
		}
		if err := json.Unmarshal(e.Payload, &p); err != nil {
			t.Fatal(err)
		}
		if e.Topic != "queue.job.completed" || e.Key != id || e.TenantID != "acme" || p.JobID != id ||
			p.Usage.Model != "gpt-4o-mini" || p.Usage.OutputTokens != 5 {
			t.Errorf("event = %+v, payload %s", e, e.Payload)
		}
		// The relay polls every second; only the kick delivers sooner.
		if d := time.Since(start); d > 900*time.Millisecond {
			t.Errorf("event delivered after %v: the completion did not kick the relay", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event published")
	}
	if gotAddr != "finops:9102" {
		t.Errorf("publisher built for %q", gotAddr)
	}
}
