package app_test

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
)

// TestWorkerRegistry: workers announce themselves on lease and heartbeat;
// the list shows their info, exact leases held, staleness and pages, per
// tenant only.
func TestWorkerRegistry(t *testing.T) {
	backends(t, func(t *testing.T, c queuev1.QueueServiceClient) {
		user, worker := as(t, "acme", "user"), as(t, "acme", "worker")
		list := func(req *queuev1.ListWorkersRequest) map[string]*queuev1.Worker {
			t.Helper()
			res, err := c.ListWorkers(user, req)
			if err != nil {
				t.Fatal(err)
			}
			out := map[string]*queuev1.Worker{}
			for _, w := range res.GetWorkers() {
				out[w.GetWorkerId()] = w
			}
			return out
		}
		for range 3 {
			mustEnqueue(t, c, user, &queuev1.EnqueueJobRequest{})
		}
		info := &queuev1.WorkerInfo{Version: "1.2.3", Host: "edge-a", Concurrency: 4}
		leases := mustLease(t, c, worker, &queuev1.LeaseJobsRequest{WorkerId: "edge-1", MaxJobs: 2, WorkerInfo: info})
		mustLease(t, c, worker, &queuev1.LeaseJobsRequest{WorkerId: "edge-2", MaxJobs: 1})
		if _, err := complete(c, worker, leases[1]); err != nil {
			t.Fatal(err)
		}
		ws := list(&queuev1.ListWorkersRequest{})
		e1, e2 := ws["edge-1"], ws["edge-2"]
		if len(ws) != 2 || e1.GetVersion() != "1.2.3" || e1.GetHost() != "edge-a" || e1.GetConcurrency() != 4 ||
			e1.GetLeasesHeld() != 1 || e1.GetStale() || e2.GetLeasesHeld() != 1 || e2.GetVersion() != "" ||
			time.Since(e1.GetLastSeen().AsTime()) > time.Minute || e1.GetFirstSeen().AsTime().After(e1.GetLastSeen().AsTime()) {
			t.Fatalf("workers after leasing = %v", ws)
		}

		// edge-2 goes quiet; edge-1 heartbeats with new info.
		time.Sleep(1200 * time.Millisecond)
		info.Version = "1.2.4"
		if _, err := c.Heartbeat(worker, &queuev1.HeartbeatRequest{
			JobId: leases[0].GetJob().GetJobId(), WorkerId: "edge-1", LeaseToken: leases[0].GetLeaseToken(), WorkerInfo: info,
		}); err != nil {
			t.Fatal(err)
		}
		ws = list(&queuev1.ListWorkersRequest{})
		if e1 := ws["edge-1"]; e1.GetStale() || e1.GetVersion() != "1.2.4" || !e1.GetLastSeen().AsTime().After(e1.GetFirstSeen().AsTime()) {
			t.Errorf("edge-1 after its heartbeat = %v", e1)
		}
		if e2 := ws["edge-2"]; !e2.GetStale() {
			t.Errorf("edge-2, quiet past --worker-stale-after, = %v; want stale", e2)
		}

		// A heartbeat announces a worker too, even one whose lease it lost.
		_, err := c.Heartbeat(worker, &queuev1.HeartbeatRequest{JobId: leases[1].GetJob().GetJobId(), WorkerId: "edge-3", LeaseToken: 1})
		wantErr(t, err, codes.FailedPrecondition, "LEASE_LOST")
		first, err := c.ListWorkers(user, &queuev1.ListWorkersRequest{PageSize: 2})
		if err != nil || len(first.GetWorkers()) != 2 || first.GetNextPageToken() == "" {
			t.Fatalf("first page = %v, %v", first, err)
		}
		second, err := c.ListWorkers(user, &queuev1.ListWorkersRequest{PageSize: 2, PageToken: first.GetNextPageToken()})
		if err != nil || len(second.GetWorkers()) != 1 || second.GetWorkers()[0].GetWorkerId() != "edge-3" || second.GetNextPageToken() != "" {
			t.Fatalf("second page = %v, %v", second, err)
		}
	}, "--worker-stale-after=1s")
}

func TestWorkerRegistryIsolation(t *testing.T) {
	backends(t, func(t *testing.T, c queuev1.QueueServiceClient) {
		acme, acmeWorker := as(t, "acme", "user"), as(t, "acme", "worker")
		globexWorker := as(t, "globex", "worker")
		mustLease(t, c, globexWorker, &queuev1.LeaseJobsRequest{WorkerId: "theirs"})
		mustLease(t, c, acmeWorker, &queuev1.LeaseJobsRequest{WorkerId: "ours"})
		res, err := c.ListWorkers(acme, &queuev1.ListWorkersRequest{})
		if err != nil || len(res.GetWorkers()) != 1 || res.GetWorkers()[0].GetWorkerId() != "ours" {
			t.Fatalf("acme's workers = %v, %v", res, err)
		}
		_, err = c.ListWorkers(withTenant(acme, "globex"), &queuev1.ListWorkersRequest{})
		wantErr(t, err, codes.PermissionDenied, "CROSS_TENANT_DENIED")
		// A platform admin reads across tenants.
		res, err = c.ListWorkers(withTenant(as(t, "default", "admin"), "globex"), &queuev1.ListWorkersRequest{})
		if err != nil || len(res.GetWorkers()) != 1 || res.GetWorkers()[0].GetWorkerId() != "theirs" {
			t.Fatalf("admin's read of globex = %v, %v", res, err)
		}

		_, err = c.LeaseJobs(acmeWorker, &queuev1.LeaseJobsRequest{WorkerId: "w", WorkerInfo: &queuev1.WorkerInfo{Concurrency: 10001}})
		wantErr(t, err, codes.InvalidArgument, "WORKER_INFO_INVALID")
		_, err = c.ListWorkers(acme, &queuev1.ListWorkersRequest{PageToken: "garbage"})
		wantErr(t, err, codes.InvalidArgument, "PAGE_TOKEN_INVALID")
		_, err = c.ListWorkers(acme, &queuev1.ListWorkersRequest{PageSize: -1})
		wantErr(t, err, codes.InvalidArgument, "PAGE_SIZE_INVALID")
	})
}
