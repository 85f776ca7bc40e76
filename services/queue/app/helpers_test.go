package app_test

import (
	"context"
	"testing"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"

	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/queue/app"
)

// backends runs fn against the service on SQLite and, when configured, on
// PostgreSQL as a non-owner role. args are extra flags.
func backends(t *testing.T, fn func(t *testing.T, c queuev1.QueueServiceClient), args ...string) {
	t.Run("sqlite", func(t *testing.T) {
		fn(t, start(t, servicetest.Options{Args: args}))
	})
	t.Run("postgres", func(t *testing.T) {
		migrateURL, appURL := storetest.Postgres(t)
		fn(t, start(t, servicetest.Options{DatabaseURL: appURL, MigrateURL: migrateURL, Args: args}))
	})
}

func start(t *testing.T, opt servicetest.Options) queuev1.QueueServiceClient {
	t.Helper()
	if opt.AuthMode == "" {
		opt.AuthMode = "required"
	}
	return queuev1.NewQueueServiceClient(servicetest.Start(t, app.Spec(), opt))
}

// as is a caller of tenant with roles, through a verified token.

func mustEnqueue(t *testing.T, c queuev1.QueueServiceClient, ctx context.Context, req *queuev1.EnqueueJobRequest) string {
	t.Helper()
	if req.GetType() == "" {
		req.Type = "ai_task"
	}
	res, err := c.EnqueueJob(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.GetStatus() != queuev1.JobStatus_JOB_STATUS_QUEUED || res.GetDuplicate() {
		t.Fatalf("enqueue = %v", res)
	}
	return res.GetJobId()
}

func mustLease(t *testing.T, c queuev1.QueueServiceClient, ctx context.Context, req *queuev1.LeaseJobsRequest) []*queuev1.Lease {
	t.Helper()
	if req.GetWorkerId() == "" {
		req.WorkerId = "w1"
	}
	res, err := c.LeaseJobs(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	return res.GetLeases()
}

func mustStatus(t *testing.T, c queuev1.QueueServiceClient, ctx context.Context) *queuev1.GetQueueStatusResponse {
	t.Helper()
	st, err := c.GetQueueStatus(ctx, &queuev1.GetQueueStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func complete(c queuev1.QueueServiceClient, ctx context.Context, l *queuev1.Lease) (*queuev1.CompleteJobResponse, error) {
	return c.CompleteJob(ctx, &queuev1.CompleteJobRequest{
		JobId: l.GetJob().GetJobId(), WorkerId: l.GetJob().GetWorkerId(), LeaseToken: l.GetLeaseToken(),
	})
}

func object(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// withTenant names tenant in the x-tenant-id header.
func withTenant(ctx context.Context, tenant string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "x-tenant-id", tenant)
}

var (
	as      = servicetest.As
	wantErr = servicetest.WantErr
)
