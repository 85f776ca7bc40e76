// Package grpcapi maps TenancyService RPCs onto the domain service. Handlers
// only translate: request → domain call → response.
package grpcapi

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	outboxv1 "github.com/echopilot/echopilot/gen/go/echopilot/outbox/v1"
	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/outbox"
	"github.com/echopilot/echopilot/platform/page"
	"github.com/echopilot/echopilot/services/tenancy/internal/domain"
)

// Server implements tenancyv1.TenancyServiceServer.
type Server struct {
	tenancyv1.UnimplementedTenancyServiceServer
	svc    *domain.Service
	outbox *outbox.AdminServer
}

// New returns the gRPC server of svc.
func New(svc *domain.Service, ob *outbox.AdminServer) *Server { return &Server{svc: svc, outbox: ob} }

// Register adds the service to g.
func (s *Server) Register(g *grpc.Server) { tenancyv1.RegisterTenancyServiceServer(g, s) }

// caller reads the caller once, through identity.Require like every
// service, and keeps what this service's domain decides on. The mapping
// stays per service because each domain's Caller holds only the facts its
// rules use (an admin's reach, a service role...).
func caller(ctx context.Context) (domain.Caller, error) {
	c, err := identity.Require(ctx)
	if err != nil {
		return domain.Caller{}, err
	}
	return domain.Caller{
		Tenant:        c.Tenant,
		Subject:       c.Subject,
		Verified:      c.Verified,
		PlatformAdmin: c.IsPlatformAdmin(),
		Roles:         c.Roles,
		APIKeyID:      c.APIKeyID,
	}, nil
}

func (s *Server) GetTenantInfo(ctx context.Context, _ *tenancyv1.GetTenantInfoRequest) (*tenancyv1.GetTenantInfoResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	st, err := s.svc.Info(ctx, c)
	if err != nil {
		return nil, err
	}
	return &tenancyv1.GetTenantInfoResponse{
		TenantId:       c.Tenant,
		TenantVerified: c.Verified,
		Stats: &tenancyv1.TenantStats{
			TotalEvents:       st.Total,
			Tenants:           st.PerTenant,
			DeniedAccess:      st.Denied,
			CrossTenantDenied: st.CrossTenantDenied,
		},
	}, nil
}

func (s *Server) TestAccess(ctx context.Context, req *tenancyv1.TestAccessRequest) (*tenancyv1.TestAccessResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	res, err := s.svc.TestAccess(ctx, c, domain.AccessQuery{
		Target: req.GetTargetTenantId(), Method: tenancyv1.TenancyService_TestAccess_FullMethodName})
	if err != nil {
		return nil, err
	}
	return &tenancyv1.TestAccessResponse{
		TenantId: c.Tenant, TargetTenantId: req.GetTargetTenantId(), Allowed: res.Allowed, Reason: res.Reason,
	}, nil
}

func (s *Server) CreateTenant(ctx context.Context, req *tenancyv1.CreateTenantRequest) (*tenancyv1.CreateTenantResponse, error) {
	in := fromProtoTenant(req.GetTenant())
	t, existed, err := s.svc.CreateTenant(ctx, domain.NewTenant{ID: in.ID, DisplayName: in.DisplayName, Limits: in.Limits})
	if err != nil {
		return nil, err
	}
	return &tenancyv1.CreateTenantResponse{Tenant: toProto(t), Existed: existed}, nil
}

func (s *Server) GetTenant(ctx context.Context, req *tenancyv1.GetTenantRequest) (*tenancyv1.GetTenantResponse, error) {
	t, err := s.svc.GetTenant(ctx, req.GetTenantId())
	if err != nil {
		return nil, err
	}
	return &tenancyv1.GetTenantResponse{Tenant: toProto(t)}, nil
}

func (s *Server) UpdateTenant(ctx context.Context, req *tenancyv1.UpdateTenantRequest) (*tenancyv1.UpdateTenantResponse, error) {
	in := fromProtoTenant(req.GetTenant())
	t, err := s.svc.UpdateTenant(ctx, domain.TenantUpdate{ID: in.ID, Fields: in, Paths: req.GetUpdateMask().GetPaths()})
	if err != nil {
		return nil, err
	}
	return &tenancyv1.UpdateTenantResponse{Tenant: toProto(t)}, nil
}

func (s *Server) ListTenants(ctx context.Context, req *tenancyv1.ListTenantsRequest) (*tenancyv1.ListTenantsResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	ts, next, err := s.svc.ListTenants(ctx, c, page.Request{PageSize: req.GetPageSize(), PageToken: req.GetPageToken()})
	if err != nil {
		return nil, err
	}
	out := &tenancyv1.ListTenantsResponse{Tenants: make([]*tenancyv1.Tenant, 0, len(ts)), NextPageToken: next}
	for _, t := range ts {
		out.Tenants = append(out.Tenants, toProto(t))
	}
	return out, nil
}

func (s *Server) ReportDecisions(ctx context.Context, req *tenancyv1.ReportDecisionsRequest) (*tenancyv1.ReportDecisionsResponse, error) {
	ds := make([]domain.Decision, 0, len(req.GetDecisions()))
	for _, d := range req.GetDecisions() {
		ds = append(ds, FromProtoDecision(d))
	}
	if err := s.svc.Record(ctx, ds); err != nil {
		return nil, err
	}
	return &tenancyv1.ReportDecisionsResponse{Recorded: int64(len(ds))}, nil
}

// FromProtoDecision converts a reported decision.
func FromProtoDecision(d *tenancyv1.Decision) domain.Decision {
	out := domain.Decision{
		TenantID: d.GetTenantId(), TargetTenantID: d.GetTargetTenantId(), Subject: d.GetSubject(),
		Method: d.GetMethod(), Service: d.GetService(), Allowed: d.GetOutcome() == tenancyv1.Outcome_OUTCOME_ALLOWED,
		Reason: d.GetReason(), Verified: d.GetVerified(),
	}
	if d.GetTime() != nil {
		out.Time = d.GetTime().AsTime()
	}
	return out
}

func toProto(t domain.Tenant) *tenancyv1.Tenant {
	return withState(&tenancyv1.Tenant{
		TenantId: t.ID, DisplayName: t.DisplayName, CreateTime: timestamppb.New(t.CreatedAt),
		RateLimitReadPerSecond: t.Limits.ReadPerSecond, RateLimitReadBurst: t.Limits.ReadBurst,
		RateLimitWritePerSecond: t.Limits.WritePerSecond, RateLimitWriteBurst: t.Limits.WriteBurst,
	}, t)
}

// fromProtoTenant is what a request's tenant asks for (not create_time,
// which is the service's to set).
func fromProtoTenant(t *tenancyv1.Tenant) domain.Tenant {
	return domain.Tenant{
		ID: t.GetTenantId(), DisplayName: t.GetDisplayName(),
		Limits: domain.RateLimits{
			ReadPerSecond: t.GetRateLimitReadPerSecond(), ReadBurst: t.GetRateLimitReadBurst(),
			WritePerSecond: t.GetRateLimitWritePerSecond(), WriteBurst: t.GetRateLimitWriteBurst(),
		},
	}
}

// ListDeadEvents lists the outbox's dead letters (platform/outbox).
func (s *Server) ListDeadEvents(ctx context.Context, req *outboxv1.ListDeadEventsRequest) (*outboxv1.ListDeadEventsResponse, error) {
	return s.outbox.ListDeadEvents(ctx, req)
}

// RequeueDeadEvents requeues the outbox's dead letters (platform/outbox).
func (s *Server) RequeueDeadEvents(ctx context.Context, req *outboxv1.RequeueDeadEventsRequest) (*outboxv1.RequeueDeadEventsResponse, error) {
	return s.outbox.RequeueDeadEvents(ctx, req)
}
