package worker

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
)

// fixedFinops is a FinopsSource answering from memory: the seam a real
// finops client will fill.
type fixedFinops struct {
	summary map[string]any
	err     error
	tenant  string
	days    int
}

func (f *fixedFinops) Summary(_ context.Context, tenant string, days int) (*structpb.Struct, error) {
	f.tenant, f.days = tenant, days
	if f.err != nil {
		return nil, f.err
	}
	return structpb.NewStruct(f.summary)
}

func reportJob(tenant string, payload map[string]any) *queuev1.Job {
	p, err := structpb.NewStruct(payload)
	if err != nil {
		panic(err)
	}
	return &queuev1.Job{JobId: "01REPORT", TenantId: tenant, Type: "report_gen", Payload: p}
}

func testReportGenJobStatistics(t *testing.T, q queuev1.QueueServiceClient) {
	enqueue(t, q, "ai_task", nil)
	enqueue(t, q, "ai_task", nil)
	enqueue(t, q, "data_sync", nil)
	r := NewReportGen(q, nil)
	r.now = func() time.Time { return time.Date(2025, 10, 21, 11, 7, 0, 0, time.UTC) }

	res, err := r.Run(context.Background(), reportJob(tenantOf(t), nil))
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	got := res.Output.AsMap()
	jobs, _ := got["jobs"].(map[string]any)
	byType, _ := jobs["by_type"].(map[string]any)
	if got["tenant_id"] != tenantOf(t) || got["generated_at"] != "2025-10-21T11:07:00Z" ||
		jobs["total_jobs"] != 3.0 || jobs["queued"] != 3.0 || byType["ai_task"] != 2.0 || byType["data_sync"] != 1.0 {
		t.Errorf("report = %v", got)
	}
	if _, ok := got["finops"]; ok {
		t.Errorf("report has a finops section without a finops source: %v", got["finops"])
	}
}

func testReportGenFinopsSection(t *testing.T, q queuev1.QueueServiceClient) {
	f := &fixedFinops{summary: map[string]any{"revenue_usd": 120.5, "margin": 0.4}}
	res, err := NewReportGen(q, f).Run(context.Background(), reportJob(tenantOf(t), map[string]any{"period_days": 7}))
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	fin, _ := res.Output.AsMap()["finops"].(map[string]any)
	summary, _ := fin["summary"].(map[string]any)
	if fin["period_days"] != 7.0 || summary["revenue_usd"] != 120.5 {
		t.Errorf("finops section = %v", fin)
	}
	if f.tenant != tenantOf(t) || f.days != 7 {
		t.Errorf("finops asked for %q over %d days", f.tenant, f.days)
	}

	f.err = status.Error(codes.Unavailable, "finops down")
	if _, err := NewReportGen(q, f).Run(context.Background(), reportJob(tenantOf(t), nil)); err == nil || !IsRetryable(err) {
		t.Errorf("finops unavailable: err = %v (retryable %v), want retryable", err, IsRetryable(err))
	}
}

func testReportGenRefuses(t *testing.T, q queuev1.QueueServiceClient) {
	r := NewReportGen(q, nil)
	// A job of another tenant than the worker's token: the queue must refuse
	// rather than report the token's tenant under that name.
	_, err := r.Run(context.Background(), reportJob("globex", nil))
	if err == nil || IsRetryable(err) || status.Code(err) != codes.PermissionDenied {
		t.Errorf("other tenant: err = %v (retryable %v), want a permanent PermissionDenied", err, IsRetryable(err))
	}
	for _, days := range []any{0, 400, 1.5, "7"} {
		if _, err := r.Run(context.Background(), reportJob(tenantOf(t), map[string]any{"period_days": days})); err == nil || IsRetryable(err) {
			t.Errorf("period_days %v: err = %v, want permanent", days, err)
		}
	}
}
