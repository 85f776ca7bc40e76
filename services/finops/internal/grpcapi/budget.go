package grpcapi

import (
	"context"
	"strconv"

	"google.golang.org/protobuf/types/known/timestamppb"

	finopsv1 "github.com/echopilot/echopilot/gen/go/echopilot/finops/v1"
	"github.com/echopilot/echopilot/platform/page"
	"github.com/echopilot/echopilot/services/finops/internal/domain"
)

func budget(b domain.Budget) *finopsv1.Budget {
	return &finopsv1.Budget{
		TenantId:      b.TenantID,
		Amount:        domain.Dollars(b.AmountMicros),
		AmountMicros:  b.AmountMicros,
		ThresholdsPct: b.ThresholdsPct,
		Currency:      "USD",
		UpdatedAt:     timestamppb.New(b.UpdatedAt),
	}
}

func (s *Server) GetBudget(ctx context.Context, _ *finopsv1.GetBudgetRequest) (*finopsv1.GetBudgetResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	b, err := s.svc.GetBudget(ctx, c)
	if err != nil {
		return nil, err
	}
	return &finopsv1.GetBudgetResponse{Budget: budget(b)}, nil
}

func (s *Server) SetBudget(ctx context.Context, req *finopsv1.SetBudgetRequest) (*finopsv1.SetBudgetResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	b, err := s.svc.SetBudget(ctx, c, req.GetAmountMicros(), req.GetThresholdsPct())
	if err != nil {
		return nil, err
	}
	return &finopsv1.SetBudgetResponse{Budget: budget(b)}, nil
}

func (s *Server) DeleteBudget(ctx context.Context, _ *finopsv1.DeleteBudgetRequest) (*finopsv1.DeleteBudgetResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	ok, err := s.svc.DeleteBudget(ctx, c)
	if err != nil {
		return nil, err
	}
	return &finopsv1.DeleteBudgetResponse{Deleted: ok}, nil
}

func (s *Server) ListAlerts(ctx context.Context, req *finopsv1.ListAlertsRequest) (*finopsv1.ListAlertsResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	pg, err := s.svc.Alerts(ctx, c, page.Request{PageSize: req.GetPageSize(), PageToken: req.GetPageToken()})
	if err != nil {
		return nil, err
	}
	out := &finopsv1.ListAlertsResponse{Alerts: make([]*finopsv1.Alert, 0, len(pg.Alerts)), NextPageToken: pg.Next}
	for _, a := range pg.Alerts {
		out.Alerts = append(out.Alerts, &finopsv1.Alert{
			AlertId:      strconv.FormatInt(a.ID, 10),
			TenantId:     a.TenantID,
			Kind:         a.Kind,
			Metric:       a.Metric,
			Period:       a.Period,
			ThresholdPct: a.ThresholdPct,
			Value:        a.Value,
			Reference:    a.Reference,
			Message:      a.Message,
			CreatedAt:    timestamppb.New(a.CreatedAt),
		})
	}
	return out, nil
}
