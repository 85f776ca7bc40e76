package app_test

import (
	"slices"
	"testing"
	"time"

	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/platform/store/storetest"
)

// TestIdleWorkerPickup measures how soon a waiting worker gets a job
// enqueued by another client. Polling is set to 30 s, so only the wake-up
// on enqueue can answer in time.
func TestIdleWorkerPickup(t *testing.T) {
	backends(t, func(t *testing.T, c queuev1.QueueServiceClient) {
		user, worker := as(t, "acme", "user"), as(t, "acme", "worker")
		const rounds = 20
		var latencies []time.Duration
		for range rounds {
			type result struct {
				leases []*queuev1.Lease
				at     time.Time
			}
			got := make(chan result, 1)
			go func() {
				res, err := c.LeaseJobs(worker, &queuev1.LeaseJobsRequest{WorkerId: "idle", WaitMs: 10000})
				if err != nil {
					t.Error(err)
				}
				got <- result{res.GetLeases(), time.Now()}
			}()
			time.Sleep(20 * time.Millisecond) // let the worker start waiting
			enqueued := time.Now()
			id := mustEnqueue(t, c, user, &queuev1.EnqueueJobRequest{})
			r := <-got
			if len(r.leases) != 1 || r.leases[0].GetJob().GetJobId() != id {
				t.Fatalf("got %v, want %s", r.leases, id)
			}
			latencies = append(latencies, r.at.Sub(enqueued))
			if _, err := complete(c, worker, r.leases[0]); err != nil {
				t.Fatal(err)
			}
		}
		slices.Sort(latencies)
		t.Logf("enqueue → lease answered: p50 %v, max %v", latencies[rounds/2], latencies[rounds-1])
		if worst := latencies[rounds-1]; worst > 2*time.Second {
			t.Errorf("slowest pickup %v: a waiting worker was not woken by the enqueue", worst)
		}
	}, "--lease-poll-interval=30s")
}

// TestReplicasWakeEachOther runs two replicas on one PostgreSQL database: a
// worker waiting on one is woken by an enqueue on the other (LISTEN/NOTIFY).
func TestReplicasWakeEachOther(t *testing.T) {
	migrateURL, appURL := storetest.Postgres(t)
	opt := servicetest.Options{DatabaseURL: appURL, MigrateURL: migrateURL, Args: []string{"--lease-poll-interval=30s"}}
	a, b := start(t, opt), start(t, opt)
	user, worker := as(t, "acme", "user"), as(t, "acme", "worker")
	for range 3 {
		got := make(chan []*queuev1.Lease, 1)
		go func() {
			res, err := b.LeaseJobs(worker, &queuev1.LeaseJobsRequest{WorkerId: "on-b", WaitMs: 10000})
			if err != nil {
				t.Error(err)
			}
			got <- res.GetLeases()
		}()
		time.Sleep(100 * time.Millisecond)
		start := time.Now()
		id := mustEnqueue(t, a, user, &queuev1.EnqueueJobRequest{})
		select {
		case leases := <-got:
			if len(leases) != 1 || leases[0].GetJob().GetJobId() != id {
				t.Fatalf("replica b got %v, want %s", leases, id)
			}
			t.Logf("woken across replicas after %v", time.Since(start))
			if _, err := complete(b, worker, leases[0]); err != nil {
				t.Fatal(err)
			}
		case <-time.After(3 * time.Second):
			t.Fatal("replica b's waiting worker was not woken by replica a's enqueue")
		}
	}
}
