package grpcapi

import (
	"context"
	"crypto/sha256"
	"errors"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/page"
	"github.com/echopilot/echopilot/services/tenancy/internal/domain"
)

func (s *Server) CreateAPIKey(ctx context.Context, req *tenancyv1.CreateAPIKeyRequest) (*tenancyv1.CreateAPIKeyResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	ttl, err := duration(req.GetTtl(), 0, domain.ReasonAPIKeyTTLInvalid, "ttl")
	if err != nil {
		return nil, err
	}
	k, raw, err := s.svc.CreateAPIKey(ctx, c, domain.NewAPIKey{
		Tenant: c.Tenant, Name: req.GetName(), Roles: req.GetRoles(), ReadOnly: req.GetReadOnly(), TTL: ttl,
	})
	if err != nil {
		return nil, err
	}
	return &tenancyv1.CreateAPIKeyResponse{Secret: raw, ApiKey: keyToProto(k)}, nil
}

func (s *Server) ListAPIKeys(ctx context.Context, req *tenancyv1.ListAPIKeysRequest) (*tenancyv1.ListAPIKeysResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	ks, next, err := s.svc.ListAPIKeys(ctx, c, page.Request{PageSize: req.GetPageSize(), PageToken: req.GetPageToken()})
	if err != nil {
		return nil, err
	}
	out := &tenancyv1.ListAPIKeysResponse{ApiKeys: make([]*tenancyv1.APIKey, 0, len(ks)), NextPageToken: next}
	for _, k := range ks {
		out.ApiKeys = append(out.ApiKeys, keyToProto(k))
	}
	return out, nil
}

func (s *Server) GetAPIKey(ctx context.Context, req *tenancyv1.GetAPIKeyRequest) (*tenancyv1.GetAPIKeyResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	k, err := s.svc.GetAPIKey(ctx, c, req.GetKeyId())
	if err != nil {
		return nil, err
	}
	return &tenancyv1.GetAPIKeyResponse{ApiKey: keyToProto(k)}, nil
}

func (s *Server) FindAPIKey(ctx context.Context, req *tenancyv1.FindAPIKeyRequest) (*tenancyv1.FindAPIKeyResponse, error) {
	k, err := s.svc.FindAPIKey(ctx, req.GetKeyId())
	if err != nil {
		return nil, err
	}
	return &tenancyv1.FindAPIKeyResponse{ApiKey: keyToProto(k)}, nil
}

func (s *Server) RotateAPIKey(ctx context.Context, req *tenancyv1.RotateAPIKeyRequest) (*tenancyv1.RotateAPIKeyResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	grace, err := duration(req.GetGracePeriod(), domain.DefaultAPIKeyGrace, domain.ReasonAPIKeyGraceInvalid, "grace_period")
	if err != nil {
		return nil, err
	}
	k, raw, err := s.svc.RotateAPIKey(ctx, c, req.GetKeyId(), grace)
	if err != nil {
		return nil, err
	}
	return &tenancyv1.RotateAPIKeyResponse{Secret: raw, ApiKey: keyToProto(k)}, nil
}

func (s *Server) RevokeAPIKey(ctx context.Context, req *tenancyv1.RevokeAPIKeyRequest) (*tenancyv1.RevokeAPIKeyResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	k, err := s.svc.RevokeAPIKey(ctx, c, req.GetKeyId())
	if err != nil {
		return nil, err
	}
	return &tenancyv1.RevokeAPIKeyResponse{ApiKey: keyToProto(k)}, nil
}

func (s *Server) LookupAPIKey(ctx context.Context, req *tenancyv1.LookupAPIKeyRequest) (*tenancyv1.LookupAPIKeyResponse, error) {
	var presented [sha256.Size]byte
	copy(presented[:], req.GetPresentedHash())
	rec, err := s.svc.LookupAPIKey(ctx, req.GetKeyId(), presented)
	if errors.Is(err, identity.ErrAPIKeyNotFound) {
		return nil, apierr.NotFound(domain.ReasonAPIKeyNotFound, "no live API key %s", apierr.Clip(req.GetKeyId())).InDomain(domain.Domain)
	}
	if err != nil {
		return nil, err
	}
	out := &tenancyv1.LookupAPIKeyResponse{KeyTenantId: rec.Tenant, Roles: rec.Roles, ReadOnly: rec.ReadOnly, ExpireTime: optTime(rec.ExpireTime)}
	for _, sec := range rec.Secrets {
		out.SecretHashes = append(out.SecretHashes, &tenancyv1.APIKeySecretHash{Sha256: sec.Hash, ExpireTime: optTime(sec.ExpireTime)})
	}
	return out, nil
}

// duration parses a duration field; empty is def.
func duration(s string, def time.Duration, reason, field string) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, apierr.InvalidArgument(reason, "%s %q is not a duration such as \"24h\"", field, apierr.Clip(s)).InDomain(domain.Domain)
	}
	return d, nil
}

func keyToProto(k domain.APIKey) *tenancyv1.APIKey {
	return &tenancyv1.APIKey{
		KeyId: k.ID, TenantId: k.TenantID, Prefix: k.Prefix(), Name: k.Name, Roles: k.Roles, ReadOnly: k.ReadOnly,
		CreatedBy: k.CreatedBy, CreateTime: timestamppb.New(k.CreatedAt), ExpireTime: optTime(k.ExpiresAt),
		LastUsedTime: optTime(k.LastUsedAt), RotateTime: optTime(k.RotatedAt),
		PreviousSecretExpireTime: optTime(k.PreviousExpiresAt), RevokeTime: optTime(k.RevokedAt),
	}
}

// optTime leaves a zero time unset.
func optTime(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
