// Package grpcapi maps GrowthService RPCs onto the domain service. Handlers
// only translate: request → domain call → response. Money leaves the domain
// in cents and becomes dollars here, for display only.
package grpcapi

import (
	"context"
	"time"

	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	growthv1 "github.com/echopilot/echopilot/gen/go/echopilot/growth/v1"
	"github.com/echopilot/echopilot/platform/bodystream"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/page"
	"github.com/echopilot/echopilot/services/growth/internal/domain"
	"github.com/echopilot/echopilot/services/growth/internal/money"
)

// Server implements growthv1.GrowthServiceServer.
type Server struct {
	growthv1.UnimplementedGrowthServiceServer
	svc *domain.Service
}

// New returns the gRPC server of svc.
func New(svc *domain.Service) *Server { return &Server{svc: svc} }

// Register adds the service to g.
func (s *Server) Register(g *grpc.Server) { growthv1.RegisterGrowthServiceServer(g, s) }

// caller is the tenant a call acts for, as the identity layer settled it.
func caller(ctx context.Context) (domain.Caller, error) {
	c, err := identity.Require(ctx)
	return domain.Caller{Tenant: c.Tenant}, err
}

func (s *Server) CreateReferral(ctx context.Context, req *growthv1.CreateReferralRequest) (*growthv1.CreateReferralResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	r, err := s.svc.CreateReferral(ctx, c, domain.NewReferral{ReferrerID: req.GetReferrerId(), Campaign: req.GetCampaign()})
	if err != nil {
		return nil, err
	}
	return &growthv1.CreateReferralResponse{
		ReferralCode: r.Code, ReferrerId: r.ReferrerID, Campaign: r.Campaign,
		CreatedAt: timestamppb.New(r.CreatedAt), Clicks: r.Clicks, Signups: r.Signups, Conversions: r.Conversions,
		Created: r.New,
	}, nil
}

func (s *Server) RecordEvent(ctx context.Context, req *growthv1.RecordEventRequest) (*growthv1.RecordEventResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	out, err := s.svc.RecordEvents(ctx, c, []domain.EventInput{eventInput(req.GetEvent())})
	if err != nil {
		return nil, err
	}
	o := out[0]
	return &growthv1.RecordEventResponse{
		EventId: req.GetEvent().GetEventId(), ReferralCode: o.Code, Duplicate: o.Duplicate, SelfReferral: o.SelfReferral,
	}, nil
}

func (s *Server) RecordEvents(ctx context.Context, req *growthv1.RecordEventsRequest) (*growthv1.RecordEventsResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	in := make([]domain.EventInput, len(req.GetEvents()))
	for i, e := range req.GetEvents() {
		in[i] = eventInput(e)
	}
	out, err := s.svc.RecordEvents(ctx, c, in)
	if err != nil {
		return nil, err
	}
	resp := &growthv1.RecordEventsResponse{Results: make([]*growthv1.EventResult, len(out))}
	for i, o := range out {
		resp.Results[i] = &growthv1.EventResult{
			EventId: in[i].ID, ReferralCode: o.Code, Duplicate: o.Duplicate, SelfReferral: o.SelfReferral,
		}
	}
	return resp, nil
}

func eventInput(e *growthv1.Event) domain.EventInput {
	in := domain.EventInput{
		Code: e.GetReferralCode(), Type: e.GetType(), ID: e.GetEventId(), CustomerID: e.GetCustomerId(),
		RefundOf: e.GetRefundOf(), Revenue: e.GetRevenue(),
	}
	if e.GetOccurredAt() != nil {
		at := e.GetOccurredAt().AsTime()
		in.OccurredAt = &at
	}
	return in
}

// TrackClick ignores the deprecated event_id: a click's id is always the
// service's.
func (s *Server) TrackClick(ctx context.Context, req *growthv1.TrackClickRequest) (*growthv1.TrackClickResponse, error) {
	click, err := s.svc.TrackClick(ctx, domain.ClickRequest{Code: req.GetReferralCode(), Visitor: domain.Visitor{
		ID: req.GetVisitorId(), Address: req.GetClientAddress(), ForwardedFor: req.GetForwardedFor(), UserAgent: req.GetUserAgent(),
	}})
	if err != nil {
		return nil, err
	}
	return &growthv1.TrackClickResponse{
		LandingUrl: click.LandingURL, ReferralCode: click.Code,
		AttributionWindowSeconds: int64(click.AttributionWindow / time.Second), EventId: click.EventID,
		VisitorId: click.VisitorID, Duplicate: click.Duplicate, Paused: click.Paused,
	}, nil
}

func (s *Server) ListReferrals(ctx context.Context, req *growthv1.ListReferralsRequest) (*growthv1.ListReferralsResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	st, err := s.svc.Stats(ctx, c, domain.StatsQuery{
		Days:    req.GetDays(),
		Filter:  domain.Filter{ReferrerID: req.GetReferrerId(), Campaign: req.GetCampaign()},
		Request: page.Request{PageSize: req.GetPageSize(), PageToken: req.GetPageToken()},
	})
	if err != nil {
		return nil, err
	}
	t := st.Totals
	out := &growthv1.ListReferralsResponse{
		PeriodDays: int32(st.Days), TotalReferrals: st.Referrals,
		TotalClicks: t.Clicks, TotalSignups: t.Signups, TotalConversions: t.Conversions, TotalSelfReferrals: t.SelfReferrals,
		TotalRevenue: money.Dollars(t.RevenueCents), TotalPayout: money.Dollars(t.PayoutCents),
		TotalRefunded: money.Dollars(t.RefundedCents),
		Referrals:     make([]*growthv1.Referral, len(st.Page)), NextPageToken: st.Next,
	}
	for i, r := range st.Page {
		out.Referrals[i] = &growthv1.Referral{
			ReferralCode: r.Code, ReferrerId: r.ReferrerID, Campaign: r.Campaign, CreatedAt: timestamppb.New(r.CreatedAt),
			Clicks: r.Clicks, Signups: r.Signups, Conversions: r.Conversions, SelfReferrals: r.SelfReferrals,
			Revenue: money.Dollars(r.RevenueCents), Payout: money.Dollars(r.PayoutCents), Refunded: money.Dollars(r.RefundedCents),
		}
	}
	return out, nil
}

// ExportPayouts checks the request before it writes anything, so a bad
// one is an error response rather than a CSV download.
func (s *Server) ExportPayouts(req *growthv1.ExportPayoutsRequest, stream grpc.ServerStreamingServer[httpbody.HttpBody]) error {
	ctx := stream.Context()
	c, err := caller(ctx)
	if err != nil {
		return err
	}
	exp, err := s.svc.PayoutExport(c, domain.PayoutQuery{Days: req.GetDays(), MinPayout: req.GetMinPayout(),
		State: req.GetState(), BatchID: req.GetBatchId()})
	if err != nil {
		return err
	}
	w := bodystream.NewWriter(stream, "text/csv; charset=utf-8", domain.ExportFileName)
	if err := exp.WriteCSV(ctx, w); err != nil {
		return err
	}
	return w.Close()
}

func (s *Server) PutCampaign(ctx context.Context, req *growthv1.PutCampaignRequest) (*growthv1.PutCampaignResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	camp, err := s.svc.PutCampaign(ctx, c, domain.CampaignUpdate{
		Name: req.GetCampaign(), Rate: req.CommissionRate, LandingURL: req.GetLandingUrl()})
	if err != nil {
		return nil, err
	}
	return &growthv1.PutCampaignResponse{Campaign: campaign(camp)}, nil
}

func (s *Server) ListCampaigns(ctx context.Context, req *growthv1.ListCampaignsRequest) (*growthv1.ListCampaignsResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	p, err := s.svc.Campaigns(ctx, c, page.Request{PageSize: req.GetPageSize(), PageToken: req.GetPageToken()})
	if err != nil {
		return nil, err
	}
	out := &growthv1.ListCampaignsResponse{
		Campaigns: make([]*growthv1.Campaign, len(p.Campaigns)), NextPageToken: p.Next,
		DefaultCommissionRate: money.Rate(p.DefaultRateBPS), DefaultLandingUrl: p.DefaultLandingURL,
	}
	for i, camp := range p.Campaigns {
		out.Campaigns[i] = campaign(camp)
	}
	return out, nil
}

func campaign(c domain.CampaignSettings) *growthv1.Campaign {
	return &growthv1.Campaign{
		Campaign: c.Name, CommissionRate: money.Rate(c.RateBPS), LandingUrl: c.LandingURL, UpdatedAt: timestamppb.New(c.UpdatedAt),
	}
}

func (s *Server) CreatePayoutBatch(ctx context.Context, _ *growthv1.CreatePayoutBatchRequest) (*growthv1.CreatePayoutBatchResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	b, err := s.svc.CreatePayoutBatch(ctx, c)
	if err != nil {
		return nil, err
	}
	return &growthv1.CreatePayoutBatchResponse{Batch: batch(b)}, nil
}

func (s *Server) MarkPayoutPaid(ctx context.Context, req *growthv1.MarkPayoutPaidRequest) (*growthv1.MarkPayoutPaidResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	b, changed, err := s.svc.MarkPayoutPaid(ctx, c, req.GetBatchId())
	if err != nil {
		return nil, err
	}
	return &growthv1.MarkPayoutPaidResponse{Batch: batch(b), Changed: changed}, nil
}

func batch(b domain.Batch) *growthv1.PayoutBatch {
	return &growthv1.PayoutBatch{
		BatchId: b.ID, CreatedAt: timestamppb.New(b.CreatedAt), CommissionCount: b.Count, Payout: money.Dollars(b.PayoutCents),
		PaidAt: timestampOrNil(b.PaidAt), PaidCount: b.PaidCount, PaidPayout: money.Dollars(b.PaidCents),
	}
}

func (s *Server) ListCommissions(ctx context.Context, req *growthv1.ListCommissionsRequest) (*growthv1.ListCommissionsResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	p, err := s.svc.Commissions(ctx, c, domain.CommissionQuery{State: req.GetState(),
		Request: page.Request{PageSize: req.GetPageSize(), PageToken: req.GetPageToken()}})
	if err != nil {
		return nil, err
	}
	out := &growthv1.ListCommissionsResponse{Commissions: make([]*growthv1.Commission, len(p.Commissions)), NextPageToken: p.Next}
	for i, r := range p.Commissions {
		con := r.State.Contribution()
		out.Commissions[i] = &growthv1.Commission{
			ConversionId: r.ID, ReferralCode: r.State.Code, State: r.StateName,
			OccurredAt: timestampOrNil(r.State.OccurredAt), HoldUntil: timestampOrNil(r.State.HoldUntil),
			Revenue: money.Dollars(con.RevenueCents), Refunded: money.Dollars(con.RefundedCents), Commission: money.Dollars(con.PayoutCents),
			BatchId: r.BatchID, PaidAt: timestampOrNil(r.PaidAt),
		}
	}
	return out, nil
}

// timestampOrNil leaves a zero time unset.
func timestampOrNil(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
