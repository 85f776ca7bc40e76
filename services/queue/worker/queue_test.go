package worker

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"

	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/services/queue/app"
)

// tokenConn sends a bearer token with every call, as edge-worker does.
type tokenConn struct {
	grpc.ClientConnInterface
	token string
}

func (c tokenConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	ctx = metadata.AppendToOutgoingContext(ctx, identity.MDAuthorization, "Bearer "+c.token)
	return c.ClientConnInterface.Invoke(ctx, method, args, reply, opts...)
}

// TestWithQueue runs the tests that need the queue service against one real
// instance in-process (SQLite, auth required). Each runs in parallel under a
// tenant of its own, which the queue keeps apart.
func TestWithQueue(t *testing.T) {
	t.Parallel()
	conn := servicetest.Start(t, app.Spec(), servicetest.Options{
		AuthMode: "required",
		// Released jobs come back after the first retry's backoff.
		Args: []string{"--retry-backoff-base=50ms"},
	})
	for name, test := range map[string]func(*testing.T, queuev1.QueueServiceClient){
		"ProcessesJobs":            testWorkerProcessesJobs,
		"Concurrency":              testWorkerConcurrency,
		"ShutdownReleasesJob":      testWorkerShutdownReleasesJob,
		"ShutdownLetsJobFinish":    testWorkerShutdownLetsJobFinish,
		"StopsCancelledJob":        testWorkerStopsCancelledJob,
		"HeartbeatsKeepLongJob":    testWorkerHeartbeatsKeepLongJob,
		"StopsJobWhenLeaseRunsOut": testWorkerStopsJobWhenLeaseRunsOut,
		"ReportsFailures":          testWorkerReportsFailures,
		"ReleasesSurplus":          testWorkerReleasesSurplus,
		"FailsRefusedResult":       testWorkerFailsRefusedResult,
		"FailsUnknownType":         testWorkerFailsUnknownType,
		"LeaseGone":                testLeaseGone,
		"ReportGenJobStatistics":   testReportGenJobStatistics,
		"ReportGenFinopsSection":   testReportGenFinopsSection,
		"ReportGenRefuses":         testReportGenRefuses,
		"RegistersItself":          testWorkerRegistersItself,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			test(t, queuev1.NewQueueServiceClient(tokenConn{conn, workerToken(t, tenantOf(t))}))
		})
	}
}

// tenantOf is the tenant of a TestWithQueue subtest.
func tenantOf(t *testing.T) string {
	_, name, _ := strings.Cut(t.Name(), "/")
	return "t-" + strings.ToLower(name)
}

func workerToken(t *testing.T, tenant string) string {
	t.Helper()
	tok, err := identity.MintHS256([]byte(servicetest.Secret), identity.Claims{
		Subject: "test-worker", TenantID: tenant, Roles: []string{"worker"},
	}, time.Hour)
	if err != nil {
		t.Fatalf("mint token: %v", err)
	}
	return tok
}

// enqueue adds a job and returns its id.
func enqueue(t *testing.T, q queuev1.QueueServiceClient, typ string, payload map[string]any) string {
	t.Helper()
	p, err := structpb.NewStruct(payload)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := q.EnqueueJob(context.Background(), &queuev1.EnqueueJobRequest{Type: typ, Payload: p})
	if err != nil {
		t.Fatalf("enqueue %s: %v", typ, err)
	}
	return resp.GetJobId()
}

func getJob(t *testing.T, q queuev1.QueueServiceClient, id string) *queuev1.Job {
	t.Helper()
	resp, err := q.GetJob(context.Background(), &queuev1.GetJobRequest{JobId: id})
	if err != nil {
		t.Fatalf("get job %s: %v", id, err)
	}
	return resp.GetJob()
}

func queueStatus(t *testing.T, q queuev1.QueueServiceClient) *queuev1.GetQueueStatusResponse {
	t.Helper()
	st, err := q.GetQueueStatus(context.Background(), &queuev1.GetQueueStatusRequest{})
	if err != nil {
		t.Fatalf("queue status: %v", err)
	}
	return st
}

// runWorker runs w until it stops by itself or the test's deadline nears.
func runWorker(t *testing.T, w *Worker) Stats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stats, err := w.Run(ctx)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("worker did not stop by itself; stats %+v", stats)
	}
	return stats
}

func newWorker(t *testing.T, q queuev1.QueueServiceClient, handlers map[string]Handler, cfg Config) *Worker {
	t.Helper()
	if cfg.WorkerID == "" {
		cfg.WorkerID = "test_worker"
	}
	w, err := New(q, handlers, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return w
}
