package worker

import (
	"context"
	"os"
	"testing"

	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
)

// testWorkerRegistersItself: the queue's worker registry shows what the
// worker's lease calls said of it.
func testWorkerRegistersItself(t *testing.T, q queuev1.QueueServiceClient) {
	enqueue(t, q, "a", nil)
	done := HandlerFunc(func(context.Context, *queuev1.Job) (Result, error) { return Result{}, nil })
	runWorker(t, newWorker(t, q, map[string]Handler{"a": done}, Config{WorkerID: "edge-7", Concurrency: 2, Version: "v-test", MaxJobs: 1}))
	res, err := q.ListWorkers(context.Background(), &queuev1.ListWorkersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	ws := res.GetWorkers()
	if len(ws) != 1 || ws[0].GetWorkerId() != "edge-7" || ws[0].GetVersion() != "v-test" || ws[0].GetHost() != host ||
		ws[0].GetConcurrency() != 2 || ws[0].GetLeasesHeld() != 0 {
		t.Fatalf("registered workers = %v", ws)
	}
}

func TestDescribeDefaults(t *testing.T) {
	info := describe(Config{Concurrency: 3})
	host, _ := os.Hostname()
	if info.GetVersion() == "" || info.GetHost() != host || info.GetConcurrency() != 3 {
		t.Fatalf("describe = %v; want a build version, the hostname and the concurrency", info)
	}
}
