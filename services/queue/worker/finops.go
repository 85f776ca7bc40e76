package worker

import (
	"context"
	"fmt"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"

	finopsv1 "github.com/echopilot/echopilot/gen/go/echopilot/finops/v1"
	"github.com/echopilot/echopilot/platform/identity"
)

// FinopsClient is the FinopsSource backed by the finops service. Its
// connection carries the worker's credentials, so a worker only ever reads
// its own tenant's figures.
type FinopsClient struct {
	client finopsv1.FinOpsServiceClient
}

// NewFinopsClient returns the FinopsSource of client.
func NewFinopsClient(client finopsv1.FinOpsServiceClient) *FinopsClient {
	return &FinopsClient{client: client}
}

// Summary implements FinopsSource with finops' GetSummary, in the REST
// field names. The map is built by hand because protojson writes int64
// counts as strings.
func (f *FinopsClient) Summary(ctx context.Context, tenantID string, periodDays int) (*structpb.Struct, error) {
	ctx = metadata.AppendToOutgoingContext(ctx, identity.MDTenant, tenantID)
	r, err := f.client.GetSummary(ctx, &finopsv1.GetSummaryRequest{Days: int32(periodDays)})
	if err != nil {
		return nil, err
	}
	ai, infra, p := r.GetCosts().GetAi(), r.GetCosts().GetInfrastructure(), r.GetProfitability()
	s, err := structpb.NewStruct(map[string]any{
		"period_days": r.GetPeriodDays(),
		"currency":    r.GetCurrency(),
		"revenue": map[string]any{
			"total_revenue": r.GetRevenue().GetTotalRevenue(),
			"payment_count": r.GetRevenue().GetPaymentCount(),
			"refunded":      r.GetRevenue().GetRefunded(),
		},
		"costs": map[string]any{
			"ai": map[string]any{
				"total_cost":         ai.GetTotalCost(),
				"job_count":          ai.GetJobCount(),
				"input_tokens":       ai.GetInputTokens(),
				"output_tokens":      ai.GetOutputTokens(),
				"unpriced_job_count": ai.GetUnpriced().GetJobCount(),
			},
			"infrastructure": map[string]any{
				"total_cost": infra.GetTotalCost(),
				"breakdown": map[string]any{
					"compute":  infra.GetBreakdown().GetCompute(),
					"database": infra.GetBreakdown().GetDatabase(),
				},
			},
		},
		"profitability": map[string]any{
			"profit":        p.GetProfit(),
			"margin_pct":    p.GetMarginPct(),
			"roi":           p.GetRoi(),
			"total_revenue": p.GetTotalRevenue(),
			"total_costs":   p.GetTotalCosts(),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("encode summary: %w", err)
	}
	return s, nil
}
