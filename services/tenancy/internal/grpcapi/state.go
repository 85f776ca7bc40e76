package grpcapi

import (
	"context"
	"errors"

	"google.golang.org/protobuf/types/known/timestamppb"

	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/apikeys"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/services/tenancy/internal/domain"
)

func (s *Server) SuspendTenant(ctx context.Context, req *tenancyv1.SuspendTenantRequest) (*tenancyv1.SuspendTenantResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	t, changed, err := s.svc.SuspendTenant(ctx, c, req.GetTargetTenantId(), req.GetReason())
	if err != nil {
		return nil, err
	}
	return &tenancyv1.SuspendTenantResponse{Tenant: toProto(t), Changed: changed}, nil
}

func (s *Server) ResumeTenant(ctx context.Context, req *tenancyv1.ResumeTenantRequest) (*tenancyv1.ResumeTenantResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	t, changed, err := s.svc.ResumeTenant(ctx, c, req.GetTargetTenantId(), req.GetReason())
	if err != nil {
		return nil, err
	}
	return &tenancyv1.ResumeTenantResponse{Tenant: toProto(t), Changed: changed}, nil
}

func (s *Server) GetTenantState(ctx context.Context, req *tenancyv1.GetTenantStateRequest) (*tenancyv1.GetTenantStateResponse, error) {
	st, err := s.svc.TenantState(ctx, req.GetTenantId())
	if errors.Is(err, identity.ErrTenantNotFound) {
		return nil, apierr.NotFound(domain.ReasonTenantNotFound, "tenant %q is not registered", apierr.Clip(req.GetTenantId())).InDomain(domain.Domain)
	}
	if err != nil {
		return nil, err
	}
	return &tenancyv1.GetTenantStateResponse{State: apikeys.StateToProto(st)}, nil
}

// withState adds t's state to its message.
func withState(pt *tenancyv1.Tenant, t domain.Tenant) *tenancyv1.Tenant {
	pt.State = apikeys.StateToProto(t.State.Identity())
	pt.StateReason, pt.StateChangedBy = t.StateReason, t.StateChangedBy
	if !t.StateChangedAt.IsZero() {
		pt.StateChangeTime = timestamppb.New(t.StateChangedAt)
	}
	return pt
}
