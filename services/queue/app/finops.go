package app

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	finopsv1 "github.com/echopilot/echopilot/gen/go/echopilot/finops/v1"
	"github.com/echopilot/echopilot/platform/outbox"
	"github.com/echopilot/echopilot/services/queue/internal/domain"
)

// FinOpsRecorder delivers completed jobs' usage to finops' RecordUsage, a
// claimed batch per call, each record naming its job's tenant, with this
// service's token. finops deduplicates by job id, so redeliveries are
// harmless.
func FinOpsRecorder(conn grpc.ClientConnInterface) outbox.BatchPublisher {
	client := finopsv1.NewFinOpsServiceClient(conn)
	return outbox.CallPublisher(usageRecord, func(ctx context.Context, recs []*finopsv1.UsageRecord) error {
		_, err := client.RecordUsage(ctx, &finopsv1.RecordUsageRequest{Records: recs})
		return err
	})
}

// usageRecord decodes the event written by domain.CompletedEvent.
func usageRecord(e outbox.Event) (*finopsv1.UsageRecord, error) {
	var p domain.CompletedPayload
	if err := outbox.DecodePayload(e, &p); err != nil {
		return nil, err
	}
	return &finopsv1.UsageRecord{
		TenantId: e.TenantID, JobId: p.JobID, JobType: p.Type, Model: p.Usage.Model,
		InputTokens: p.Usage.InputTokens, OutputTokens: p.Usage.OutputTokens, DurationMs: p.Usage.DurationMS,
		CompletedAt: timestamppb.New(p.CompletedAt),
	}, nil
}
