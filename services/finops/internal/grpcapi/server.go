// Package grpcapi maps FinOpsService RPCs onto the domain service. Handlers
// only translate: request → domain call → response. Money leaves the domain
// as integers and becomes dollars here, for display only.
package grpcapi

import (
	"context"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	finopsv1 "github.com/echopilot/echopilot/gen/go/echopilot/finops/v1"
	"github.com/echopilot/echopilot/platform/bodystream"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/page"
	"github.com/echopilot/echopilot/services/finops/internal/domain"
)

// Server implements finopsv1.FinOpsServiceServer.
type Server struct {
	finopsv1.UnimplementedFinOpsServiceServer
	svc *domain.Service
}

// New returns the gRPC server of svc.
func New(svc *domain.Service) *Server { return &Server{svc: svc} }

// Register adds the service to g.
func (s *Server) Register(g *grpc.Server) { finopsv1.RegisterFinOpsServiceServer(g, s) }

// caller reads the caller once, through identity.Require like every
// service, and keeps what this service's domain decides on. The mapping
// stays per service because each domain's Caller holds only the facts its
// rules use (an admin's reach, a service role...).
func caller(ctx context.Context) (domain.Caller, error) {
	c, err := identity.Require(ctx)
	return domain.Caller{Tenant: c.Tenant, PlatformAdmin: c.IsPlatformAdmin()}, err
}

func (s *Server) GetSummary(ctx context.Context, req *finopsv1.GetSummaryRequest) (*finopsv1.GetSummaryResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	sum, err := s.svc.Summary(ctx, c, req.GetDays())
	if err != nil {
		return nil, err
	}
	t, p := sum.Totals, sum.Profit()
	out := &finopsv1.GetSummaryResponse{
		PeriodDays: int32(sum.Days),
		Revenue: &finopsv1.Revenue{
			TotalRevenue:       domain.CentsToDollars(t.RevenueCents),
			PaymentCount:       t.PaymentCount,
			Refunded:           domain.CentsToDollars(t.RefundedCents),
			TotalRevenueMicros: domain.CentsToMicros(t.RevenueCents),
			RefundedMicros:     domain.CentsToMicros(t.RefundedCents),
		},
		Costs: &finopsv1.Costs{
			Ai: &finopsv1.AICost{
				TotalCost:       domain.Dollars(t.AICostMicros),
				TotalCostMicros: t.AICostMicros,
				JobCount:        t.JobCount,
				InputTokens:     t.InputTokens,
				OutputTokens:    t.OutputTokens,
				Unpriced: &finopsv1.UnpricedUsage{
					JobCount:     t.UnpricedJobs,
					InputTokens:  t.UnpricedInputTokens,
					OutputTokens: t.UnpricedOutputTokens,
					Models:       sum.UnpricedModels,
				},
			},
			Infrastructure: &finopsv1.InfrastructureCost{
				TotalCost:       domain.Dollars(sum.InfraMicros()),
				TotalCostMicros: sum.InfraMicros(),
				Breakdown: &finopsv1.InfrastructureBreakdown{
					Compute:        domain.Dollars(sum.ComputeMicros),
					Database:       domain.Dollars(sum.DatabaseMicros),
					ComputeMicros:  sum.ComputeMicros,
					DatabaseMicros: sum.DatabaseMicros,
				},
				Allocation:         domain.AllocationRule,
				PlatformCost:       domain.Dollars(sum.PlatformMicros),
				PlatformCostMicros: sum.PlatformMicros,
			},
		},
		Profitability: profitability(p),
		Currency:      "USD",
	}
	if !sum.Scope.All {
		out.TenantId = sum.Scope.Tenant
	}
	return out, nil
}

func profitability(p domain.Profit) *finopsv1.Profitability {
	return &finopsv1.Profitability{
		Profit:             domain.Dollars(p.ProfitMicros()),
		MarginPct:          p.MarginPct(),
		Roi:                p.ROI(),
		TotalRevenue:       domain.Dollars(p.RevenueMicros),
		TotalCosts:         domain.Dollars(p.CostMicros),
		ProfitMicros:       p.ProfitMicros(),
		TotalRevenueMicros: p.RevenueMicros,
		TotalCostsMicros:   p.CostMicros,
	}
}

func (s *Server) ListTenantCosts(ctx context.Context, req *finopsv1.ListTenantCostsRequest) (*finopsv1.ListTenantCostsResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	pg, err := s.svc.TenantCosts(ctx, c, domain.TenantCostsRequest{
		Days: req.GetDays(), Request: page.Request{PageSize: req.GetPageSize(), PageToken: req.GetPageToken()}})
	if err != nil {
		return nil, err
	}
	out := &finopsv1.ListTenantCostsResponse{
		PeriodDays:         int32(pg.Days),
		Tenants:            make([]*finopsv1.TenantCost, 0, len(pg.Tenants)),
		NextPageToken:      pg.Next,
		PlatformCost:       domain.Dollars(pg.PlatformMicros),
		PlatformCostMicros: pg.PlatformMicros,
		Currency:           "USD",
	}
	for _, t := range pg.Tenants {
		infra := t.AllocComputeMicros + t.AllocDatabaseMicros
		p := domain.NewProfit(t.RevenueCents*domain.MicrosPerCent, t.AICostMicros+infra)
		out.Tenants = append(out.Tenants, &finopsv1.TenantCost{
			TenantId:                 t.TenantID,
			Revenue:                  domain.CentsToDollars(t.RevenueCents),
			PaymentCount:             t.PaymentCount,
			AiCost:                   domain.Dollars(t.AICostMicros),
			JobCount:                 t.JobCount,
			UnpricedJobCount:         t.UnpricedJobs,
			InfrastructureCost:       domain.Dollars(infra),
			TotalCosts:               domain.Dollars(p.CostMicros),
			Profit:                   domain.Dollars(p.ProfitMicros()),
			RevenueMicros:            p.RevenueMicros,
			AiCostMicros:             t.AICostMicros,
			InfrastructureCostMicros: infra,
			TotalCostsMicros:         p.CostMicros,
			ProfitMicros:             p.ProfitMicros(),
		})
	}
	return out, nil
}

func (s *Server) GetTimeseries(ctx context.Context, req *finopsv1.GetTimeseriesRequest) (*finopsv1.GetTimeseriesResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	ts, err := s.svc.Timeseries(ctx, c, req.GetDays())
	if err != nil {
		return nil, err
	}
	out := &finopsv1.GetTimeseriesResponse{
		PeriodDays: int32(ts.Days),
		Currency:   "USD",
		Days:       make([]*finopsv1.DayCost, 0, len(ts.Points)),
	}
	if !ts.Scope.All {
		out.TenantId = ts.Scope.Tenant
	}
	for _, p := range ts.Points {
		t, pr := p.Totals, p.Profit()
		out.Days = append(out.Days, &finopsv1.DayCost{
			Date:                     domain.DayStart(p.Day).Format(time.DateOnly),
			Revenue:                  domain.CentsToDollars(t.RevenueCents),
			PaymentCount:             t.PaymentCount,
			AiCost:                   domain.Dollars(t.AICostMicros),
			JobCount:                 t.JobCount,
			UnpricedJobCount:         t.UnpricedJobs,
			InfrastructureCost:       domain.Dollars(p.InfraMicros),
			TotalCosts:               domain.Dollars(pr.CostMicros),
			Profit:                   domain.Dollars(pr.ProfitMicros()),
			RevenueMicros:            pr.RevenueMicros,
			AiCostMicros:             t.AICostMicros,
			InfrastructureCostMicros: p.InfraMicros,
			TotalCostsMicros:         pr.CostMicros,
			ProfitMicros:             pr.ProfitMicros(),
		})
	}
	return out, nil
}

// ExportCosts streams the CSV as the store reads it. Nothing is sent before
// the first full chunk, so a bad request or a failed query is an error
// response rather than a truncated download.
func (s *Server) ExportCosts(req *finopsv1.ExportCostsRequest, stream grpc.ServerStreamingServer[httpbody.HttpBody]) error {
	ctx := stream.Context()
	c, err := caller(ctx)
	if err != nil {
		return err
	}
	w := bodystream.NewWriter(stream, "text/csv; charset=utf-8", "finops-costs-"+c.Tenant+".csv")
	if err := s.svc.Export(ctx, c, req.GetDays(), w); err != nil {
		return err
	}
	return w.Close()
}

func (s *Server) HandleStripeWebhook(ctx context.Context, req *finopsv1.HandleStripeWebhookRequest) (*finopsv1.HandleStripeWebhookResponse, error) {
	id, out, err := s.svc.HandleStripe(ctx, domain.StripeDelivery{Payload: req.GetPayload(), Signature: req.GetStripeSignature()})
	if err != nil {
		return nil, err
	}
	return &finopsv1.HandleStripeWebhookResponse{EventId: id, Outcome: out.Outcome, TenantId: out.TenantID}, nil
}

func (s *Server) RecordUsage(ctx context.Context, req *finopsv1.RecordUsageRequest) (*finopsv1.RecordUsageResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	recs := make([]domain.UsageRecord, len(req.GetRecords()))
	for i, r := range req.GetRecords() {
		recs[i] = domain.UsageRecord{
			TenantID:     r.GetTenantId(),
			JobID:        r.GetJobId(),
			JobType:      r.GetJobType(),
			Model:        r.GetModel(),
			InputTokens:  r.GetInputTokens(),
			OutputTokens: r.GetOutputTokens(),
			DurationMS:   r.GetDurationMs(),
			CompletedAt:  r.GetCompletedAt().AsTime(),
		}
	}
	res, err := s.svc.RecordUsage(ctx, c.Tenant, recs)
	if err != nil {
		return nil, err
	}
	return &finopsv1.RecordUsageResponse{Recorded: res.Recorded, Duplicates: res.Duplicates, Unpriced: res.Unpriced}, nil
}

func (s *Server) ListHeldStripeEvents(ctx context.Context, req *finopsv1.ListHeldStripeEventsRequest) (*finopsv1.ListHeldStripeEventsResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	pg, err := s.svc.HeldEvents(ctx, c, domain.HeldRequest{Customer: req.GetCustomerId(),
		Request: page.Request{PageSize: req.GetPageSize(), PageToken: req.GetPageToken()}})
	if err != nil {
		return nil, err
	}
	out := &finopsv1.ListHeldStripeEventsResponse{Events: make([]*finopsv1.HeldStripeEvent, 0, len(pg.Events)), NextPageToken: pg.Next}
	for _, e := range pg.Events {
		out.Events = append(out.Events, &finopsv1.HeldStripeEvent{
			EventId:        e.EventID,
			Type:           e.Type,
			CustomerId:     e.CustomerID,
			PaymentKey:     e.PaymentKey,
			Currency:       strings.ToUpper(e.Currency),
			Amount:         domain.CentsToDollars(e.GrossCents),
			AmountMicros:   domain.CentsToMicros(e.GrossCents),
			Refunded:       domain.CentsToDollars(e.RefundedCents),
			RefundedMicros: domain.CentsToMicros(e.RefundedCents),
			OccurredAt:     timestamppb.New(e.At),
			ReceivedAt:     timestamppb.New(e.ReceivedAt),
		})
	}
	return out, nil
}

func (s *Server) AssignStripeCustomer(ctx context.Context, req *finopsv1.AssignStripeCustomerRequest) (*finopsv1.AssignStripeCustomerResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	n, err := s.svc.AssignCustomer(ctx, c, req.GetCustomerId(), req.GetTargetTenantId())
	if err != nil {
		return nil, err
	}
	return &finopsv1.AssignStripeCustomerResponse{CustomerId: req.GetCustomerId(), TenantId: req.GetTargetTenantId(), ReleasedEvents: n}, nil
}
