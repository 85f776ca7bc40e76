package app

import (
	"context"
	"encoding/json"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	finopsv1 "github.com/echopilot/echopilot/gen/go/echopilot/finops/v1"
	"github.com/echopilot/echopilot/platform/outbox"
	"github.com/echopilot/echopilot/platform/service"
	"github.com/echopilot/echopilot/services/queue/internal/domain"
)

// FinOpsRecorder delivers completed jobs' usage to finops' RecordUsage, a
// claimed batch per call, each record naming its job's tenant, with this
// service's token. finops deduplicates by job id, so redeliveries are
// harmless.
func FinOpsRecorder(ctx context.Context, rt *service.Runtime, addr string) (outbox.BatchPublisher, error) {
	conn, err := rt.DialPeer(addr)
	if err != nil {
		return nil, err
	}
	context.AfterFunc(ctx, func() { _ = conn.Close() })
	client := finopsv1.NewFinOpsServiceClient(conn)
	record := func(ctx context.Context, recs []*finopsv1.UsageRecord) error {
		_, err := client.RecordUsage(ctx, &finopsv1.RecordUsageRequest{Records: recs})
		return err
	}
	return func(ctx context.Context, evs []outbox.Event) []error {
		errs := make([]error, len(evs))
		recs := make([]*finopsv1.UsageRecord, 0, len(evs))
		idx := make([]int, 0, len(evs)) // event index of each record
		for i, e := range evs {
			r, err := usageRecord(e)
			if err != nil {
				errs[i] = err
				continue
			}
			recs, idx = append(recs, r), append(idx, i)
		}
		err := record(ctx, recs)
		if status.Code(err) == codes.InvalidArgument && len(recs) > 1 {
			// One bad record fails the call: send them one by one, so only
			// that one is dead-lettered.
			for j, r := range recs {
				errs[idx[j]] = classify(record(ctx, []*finopsv1.UsageRecord{r}))
			}
			return errs
		}
		for _, i := range idx {
			errs[i] = classify(err)
		}
		return errs
	}, nil
}

// usageRecord decodes the event written by domain.CompletedEvent.
func usageRecord(e outbox.Event) (*finopsv1.UsageRecord, error) {
	var p domain.CompletedPayload
	if err := json.Unmarshal(e.Payload, &p); err != nil {
		return nil, fmt.Errorf("%w: event %s: %v", outbox.ErrPermanent, e.ID, err)
	}
	return &finopsv1.UsageRecord{
		TenantId: e.TenantID, JobId: p.JobID, JobType: p.Type, Model: p.Usage.Model,
		InputTokens: p.Usage.InputTokens, OutputTokens: p.Usage.OutputTokens, DurationMs: p.Usage.DurationMS,
		CompletedAt: timestamppb.New(p.CompletedAt),
	}, nil
}

// classify marks what finops will refuse however often it is sent.
func classify(err error) error {
	if status.Code(err) == codes.InvalidArgument {
		return fmt.Errorf("%w: %v", outbox.ErrPermanent, err)
	}
	return err
}
