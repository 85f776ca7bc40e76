package grpcapi

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	"github.com/echopilot/echopilot/platform/page"
	"github.com/echopilot/echopilot/services/queue/internal/domain"
)

func (s *Server) CreateWorkerToken(ctx context.Context, req *queuev1.CreateWorkerTokenRequest) (*queuev1.CreateWorkerTokenResponse, error) {
	t, err := s.tenant(ctx)
	if err != nil {
		return nil, err
	}
	wt, tok, err := s.tokens.Create(ctx, t, domain.CreateTokenRequest{Name: req.GetName(), TTL: req.GetTtl()})
	if err != nil {
		return nil, err
	}
	return &queuev1.CreateWorkerTokenResponse{Token: tok, WorkerToken: workerTokenToProto(wt)}, nil
}

func (s *Server) ListWorkerTokens(ctx context.Context, req *queuev1.ListWorkerTokensRequest) (*queuev1.ListWorkerTokensResponse, error) {
	t, err := s.tenant(ctx)
	if err != nil {
		return nil, err
	}
	tokens, next, err := s.tokens.List(ctx, t, page.Request{PageSize: req.GetPageSize(), PageToken: req.GetPageToken()})
	if err != nil {
		return nil, err
	}
	out := &queuev1.ListWorkerTokensResponse{WorkerTokens: make([]*queuev1.WorkerToken, len(tokens)), NextPageToken: next}
	for i, wt := range tokens {
		out.WorkerTokens[i] = workerTokenToProto(wt)
	}
	return out, nil
}

func (s *Server) RevokeWorkerToken(ctx context.Context, req *queuev1.RevokeWorkerTokenRequest) (*queuev1.RevokeWorkerTokenResponse, error) {
	t, err := s.tenant(ctx)
	if err != nil {
		return nil, err
	}
	wt, err := s.tokens.Revoke(ctx, t, req.GetTokenId())
	if err != nil {
		return nil, err
	}
	return &queuev1.RevokeWorkerTokenResponse{WorkerToken: workerTokenToProto(wt)}, nil
}

func (s *Server) RefreshWorkerToken(ctx context.Context, _ *queuev1.RefreshWorkerTokenRequest) (*queuev1.RefreshWorkerTokenResponse, error) {
	c, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	tok, expires, err := s.tokens.Refresh(ctx, c.TokenTenant, c.Subject)
	if err != nil {
		return nil, err
	}
	return &queuev1.RefreshWorkerTokenResponse{Token: tok, ExpireTime: timestamppb.New(expires)}, nil
}

// workerTokenToProto lists a token's record: there is no secret to leave out,
// the token itself is never stored.
func workerTokenToProto(t domain.WorkerToken) *queuev1.WorkerToken {
	out := &queuev1.WorkerToken{
		TokenId: t.ID, TenantId: t.TenantID, Name: t.Name, Ttl: t.TTL.String(),
		CreateTime: timestamppb.New(t.Created), ExpireTime: timestamppb.New(t.Expires), MaxExpireTime: timestamppb.New(t.MaxExpires),
	}
	if t.Revoked() {
		out.RevokeTime = timestamppb.New(t.RevokedAt)
	}
	return out
}
