package identity

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
)

// benchInterceptor measures one unary call through the interceptor:
// metadata and tenant extraction, token parse and verification, Decide,
// recording and the context, with a handler that only reads the Caller.
func benchInterceptor(b *testing.B, cacheSize int, token func(testKeys) string) {
	k := newTestKeys(b)
	v, err := NewVerifier(VerifierConfig{HS256Secret: k.secret, PublicKeyFiles: []string{k.esFile},
		Issuer: testIssuer, Audience: testAudience, TokenCacheSize: cacheSize})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(v.Close)
	ic, err := NewInterceptor(InterceptorConfig{Verifier: v, Mode: ModeOptional, Sink: SinkFunc(func(Decision) {})})
	if err != nil {
		b.Fatal(err)
	}
	md := metadata.MD{}
	if tok := token(k); tok != "" {
		md.Set(MDAuthorization, "Bearer "+tok)
	}
	ctx := metadata.NewIncomingContext(context.Background(), md)
	req := &tenancyv1.GetTenantInfoRequest{}
	info := &grpc.UnaryServerInfo{FullMethod: tenancyv1.TenancyService_GetTenantInfo_FullMethodName}
	handler := func(ctx context.Context, _ any) (any, error) {
		if _, ok := FromContext(ctx); !ok {
			return nil, errors.New("no caller")
		}
		return nil, nil
	}
	unary := ic.UnaryServerInterceptor()

	b.ReportAllocs()
	for b.Loop() {
		if _, err := unary(ctx, req, info, handler); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkInterceptorNoToken(b *testing.B) {
	benchInterceptor(b, 0, func(testKeys) string { return "" })
}

// The Uncached variants check the signature on every call (a new token per
// request); the cached ones are a client reusing its token.
func BenchmarkInterceptorHS256Uncached(b *testing.B) {
	benchInterceptor(b, -1, func(k testKeys) string { return k.hs(b, claimsFor("acme", "user")) })
}

func BenchmarkInterceptorES256Uncached(b *testing.B) {
	benchInterceptor(b, -1, func(k testKeys) string { return k.es256(b, claimsFor("acme", "user")) })
}

func BenchmarkInterceptorHS256Cached(b *testing.B) {
	benchInterceptor(b, 0, func(k testKeys) string { return k.hs(b, claimsFor("acme", "user")) })
}

func BenchmarkInterceptorES256Cached(b *testing.B) {
	benchInterceptor(b, 0, func(k testKeys) string { return k.es256(b, claimsFor("acme", "user")) })
}
