package worker

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"

	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	"github.com/echopilot/echopilot/platform/identity"
)

// FinopsSource supplies the finops section of a tenant report: the
// tenant's revenue, costs and margin over the last periodDays days. The gRPC
// client comes with the finops service; without one, reports have no finops
// section.
type FinopsSource interface {
	Summary(ctx context.Context, tenantID string, periodDays int) (*structpb.Struct, error)
}

// Report periods, in days, when a payload names none and at most.
const (
	defaultReportDays = 30
	maxReportDays     = 366
)

// ReportGen is the report_gen handler: it builds a report of the job's tenant
// and stores it as the job's result.
//
// Payload: {"period_days": 30} (optional, for the finops section).
// Result: {"tenant_id", "generated_at", "jobs": {…queue status…}, "finops": {…}}.
type ReportGen struct {
	queue  queuev1.QueueServiceClient
	finops FinopsSource
	now    func() time.Time
}

// NewReportGen returns the report_gen handler. queue is the worker's own
// connection, whose token belongs to the tenant of the jobs it leases; finops
// may be nil.
func NewReportGen(queue queuev1.QueueServiceClient, finops FinopsSource) *ReportGen {
	return &ReportGen{queue: queue, finops: finops, now: time.Now}
}

// Run implements Handler.
func (r *ReportGen) Run(ctx context.Context, job *queuev1.Job) (Result, error) {
	days := defaultReportDays
	if v, ok := job.GetPayload().GetFields()["period_days"]; ok {
		n := v.GetNumberValue()
		if n != float64(int(n)) || n < 1 || n > maxReportDays {
			return Result{}, Permanent(fmt.Errorf("report_gen: payload \"period_days\" must be a whole number from 1 to %d", maxReportDays))
		}
		days = int(n)
	}
	tenant := job.GetTenantId()
	// Naming the job's tenant makes the queue refuse (rather than answer for
	// the token's tenant) should the two ever differ.
	sctx := metadata.AppendToOutgoingContext(ctx, identity.MDTenant, tenant)
	st, err := r.queue.GetQueueStatus(sctx, &queuev1.GetQueueStatusRequest{})
	if err != nil {
		return Result{}, classifyGRPC(fmt.Errorf("report_gen: queue status: %w", err))
	}
	report := map[string]any{
		"tenant_id":    tenant,
		"generated_at": r.now().UTC().Format(time.RFC3339),
		"jobs": map[string]any{
			"total_jobs":  st.GetTotalJobs(),
			"queued":      st.GetQueued(),
			"processing":  st.GetProcessing(),
			"completed":   st.GetCompleted(),
			"failed":      st.GetFailed(),
			"dead":        st.GetDead(),
			"cancelled":   st.GetCancelled(),
			"by_type":     counts(st.GetByType()),
			"by_priority": counts(st.GetByPriority()),
		},
	}
	if r.finops != nil {
		summary, err := r.finops.Summary(ctx, tenant, days)
		if err != nil {
			return Result{}, classifyGRPC(fmt.Errorf("report_gen: finops summary: %w", err))
		}
		report["finops"] = map[string]any{"period_days": days, "summary": summary.AsMap()}
	}
	out, err := structpb.NewStruct(report)
	if err != nil {
		return Result{}, Permanent(fmt.Errorf("report_gen: result: %w", err))
	}
	return Result{Output: out}, nil
}

// counts converts a count map for structpb, which takes map[string]any.
func counts(m map[string]int64) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
