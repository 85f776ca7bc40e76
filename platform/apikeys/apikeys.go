// Package apikeys lets a service or the gateway resolve API keys and tenant
// states through tenancy, which keeps them: identity.Verifier and
// identity.TenantStates call these lookups on a cache miss (see
// identity.APIKeyCacheTTL and identity.TenantStateCacheTTL).
package apikeys

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	"github.com/echopilot/echopilot/platform/identity"
)

// lookupTimeout bounds one lookup: a request waiting on it fails with
// API_KEY_LOOKUP_UNAVAILABLE rather than hanging.
const lookupTimeout = 2 * time.Second

// Remote resolves keys with tenancy's LookupAPIKey. The calls must carry the
// caller's own service identity (a connection from DialPeer, or opts).
func Remote(client tenancyv1.TenancyServiceClient, opts ...grpc.CallOption) identity.APIKeyLookup {
	return func(ctx context.Context, id string, presented [sha256.Size]byte) (identity.APIKeyRecord, error) {
		ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
		defer cancel()
		res, err := client.LookupAPIKey(ctx, &tenancyv1.LookupAPIKeyRequest{KeyId: id, PresentedHash: presented[:]}, opts...)
		if status.Code(err) == codes.NotFound {
			return identity.APIKeyRecord{}, identity.ErrAPIKeyNotFound
		}
		if err != nil {
			return identity.APIKeyRecord{}, fmt.Errorf("lookup api key %s: %w", id, err)
		}
		return fromProto(res), nil
	}
}

// fromProto is the record a LookupAPIKeyResponse describes.
func fromProto(res *tenancyv1.LookupAPIKeyResponse) identity.APIKeyRecord {
	rec := identity.APIKeyRecord{Tenant: res.GetKeyTenantId(), Roles: res.GetRoles(), ReadOnly: res.GetReadOnly()}
	if res.GetExpireTime() != nil {
		rec.ExpireTime = res.GetExpireTime().AsTime()
	}
	for _, h := range res.GetSecretHashes() {
		s := identity.APIKeySecret{Hash: h.GetSha256()}
		if h.GetExpireTime() != nil {
			s.ExpireTime = h.GetExpireTime().AsTime()
		}
		rec.Secrets = append(rec.Secrets, s)
	}
	return rec
}

// RemoteTenantStates reads tenant states with tenancy's GetTenantState,
// with the caller's own service identity like Remote.
func RemoteTenantStates(client tenancyv1.TenancyServiceClient, opts ...grpc.CallOption) identity.TenantStateLookup {
	return func(ctx context.Context, tenant string) (identity.TenantState, error) {
		ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
		defer cancel()
		res, err := client.GetTenantState(ctx, &tenancyv1.GetTenantStateRequest{TenantId: tenant}, opts...)
		if status.Code(err) == codes.NotFound {
			return identity.TenantActive, identity.ErrTenantNotFound
		}
		if err != nil {
			return identity.TenantActive, fmt.Errorf("get tenant state of %s: %w", tenant, err)
		}
		return StateFromProto(res.GetState()), nil
	}
}

// The registry's states and the identity layer's, one for one; an unknown
// or unset state counts as active.
var (
	toProto = map[identity.TenantState]tenancyv1.TenantState{
		identity.TenantActive:      tenancyv1.TenantState_TENANT_STATE_ACTIVE,
		identity.TenantSuspended:   tenancyv1.TenantState_TENANT_STATE_SUSPENDED,
		identity.TenantOffboarding: tenancyv1.TenantState_TENANT_STATE_OFFBOARDING,
		identity.TenantDeleted:     tenancyv1.TenantState_TENANT_STATE_DELETED,
	}
	fromProtoState = func() map[tenancyv1.TenantState]identity.TenantState {
		m := map[tenancyv1.TenantState]identity.TenantState{}
		for k, v := range toProto {
			m[v] = k
		}
		return m
	}()
)

// StateFromProto maps a registry state onto the identity layer's.
func StateFromProto(s tenancyv1.TenantState) identity.TenantState { return fromProtoState[s] }

// StateToProto maps an identity-layer state onto the registry's.
func StateToProto(s identity.TenantState) tenancyv1.TenantState {
	if p, ok := toProto[s]; ok {
		return p
	}
	return tenancyv1.TenantState_TENANT_STATE_ACTIVE
}
