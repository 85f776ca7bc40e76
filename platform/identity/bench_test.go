package identity

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
)

// benchInterceptor measures one unary call through the interceptor:
// metadata and tenant extraction, token parse and verification, Decide,
// recording and the context, with a handler that only reads the Caller.
//
// tokens is how many distinct tokens the calls cycle through: 1 sends the
// same token every call; 0 mints b.N distinct ones before the timer starts,
// so each call carries a token the verifier has never seen and minting is
// not measured. mint returns the n-th token ("" for none); every token
// carries a jti of the same length, so all variants parse tokens of one
// size.
func benchInterceptor(b *testing.B, cacheSize, tokens int, mint func(k testKeys, n int) string) {
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
	if tokens == 0 {
		tokens = b.N
	}
	bearers := make([]string, tokens)
	for i := range bearers {
		if tok := mint(k, i); tok != "" {
			bearers[i] = "Bearer " + tok
		}
	}
	md := metadata.MD{}
	if bearers[0] != "" {
		md.Set(MDAuthorization, bearers[0])
	}
	// The context holds md itself, so swapping the value in place gives the
	// next call its token without building a context per call.
	auth := md[MDAuthorization]
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
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if auth != nil {
			auth[0] = bearers[i%tokens]
		}
		if _, err := unary(ctx, req, info, handler); err != nil {
			b.Fatal(err)
		}
	}
}

// mintHS and mintES return the n-th distinct token of one caller: only the
// jti differs.
func mintHS(b *testing.B) func(testKeys, int) string {
	return func(k testKeys, n int) string { return k.hs(b, benchClaims(n)) }
}

func mintES(b *testing.B) func(testKeys, int) string {
	return func(k testKeys, n int) string { return k.es256(b, benchClaims(n)) }
}

func benchClaims(n int) tokenClaims {
	c := claimsFor("acme", "user")
	c.ID = fmt.Sprintf("%010d", n)
	return c
}

func BenchmarkInterceptorNoToken(b *testing.B) {
	benchInterceptor(b, 0, 1, func(testKeys, int) string { return "" })
}

// NewToken: a new token on every call, with the default cache (10,000
// entries): each call misses, checks the signature and stores the token,
// evicting when full. This is the cost a client that never reuses its token
// imposes.
func BenchmarkInterceptorHS256NewToken(b *testing.B) {
	benchInterceptor(b, 0, 0, mintHS(b))
}

func BenchmarkInterceptorES256NewToken(b *testing.B) {
	benchInterceptor(b, 0, 0, mintES(b))
}

// CacheOffSameToken: one token reused with the cache disabled, so every call
// checks the signature but pays no cache lookup or insertion.
func BenchmarkInterceptorHS256CacheOffSameToken(b *testing.B) {
	benchInterceptor(b, -1, 1, mintHS(b))
}

func BenchmarkInterceptorES256CacheOffSameToken(b *testing.B) {
	benchInterceptor(b, -1, 1, mintES(b))
}

// Cached: a client reusing its token, served from the default cache.
func BenchmarkInterceptorHS256Cached(b *testing.B) {
	benchInterceptor(b, 0, 1, mintHS(b))
}

func BenchmarkInterceptorES256Cached(b *testing.B) {
	benchInterceptor(b, 0, 1, mintES(b))
}
