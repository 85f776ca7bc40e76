package e2e

import (
	"context"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/tlsconfig"
)

// The stack's gRPC is TLS only, mutual between services: plaintext and
// certificate-less clients are turned away at the handshake where client
// certificates are required, and a service token is honored only over a
// certificate naming that service. REST through the gateway (which dials
// every backend over mutual TLS) works as ever.
func TestTransportSecurity(t *testing.T) {
	s := startSuite(t, "required")
	if s.TLS == nil {
		t.Skip(envPlaintext + " is set: the stack runs without TLS")
	}
	tenancyAddr := s.GRPCAddrs["tenancy"]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	health := func(opt grpc.DialOption) error {
		conn, err := grpc.NewClient(tenancyAddr, opt)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		cctx, ccancel := context.WithTimeout(ctx, 3*time.Second)
		defer ccancel()
		_, err = healthpb.NewHealthClient(conn).Check(cctx, &healthpb.HealthCheckRequest{})
		return err
	}
	if err := health(grpc.WithTransportCredentials(insecure.NewCredentials())); status.Code(err) != codes.Unavailable {
		t.Errorf("plaintext to tenancy: err = %v, want UNAVAILABLE", err)
	}
	caOnly, err := tlsconfig.New(tlsconfig.Files{CAFile: s.TLS.CAFile}, tlsconfig.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := health(grpc.WithTransportCredentials(caOnly.ClientCredentials())); status.Code(err) != codes.Unavailable {
		t.Errorf("TLS without a client certificate to tenancy (mutual TLS required): err = %v, want UNAVAILABLE", err)
	}
	if err := health(s.DialOption()); err != nil {
		t.Fatalf("health over mutual TLS: %v", err)
	}

	// finops's service token, stolen, over a certificate that is not finops's.
	conn, err := grpc.NewClient(tenancyAddr, s.DialOption())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stolen := s.mint(t, identity.Claims{Subject: identity.ServiceSubject("finops"), TenantID: identity.DefaultTenant, Roles: []string{identity.RoleService}})
	_, err = tenancyv1.NewTenancyServiceClient(conn).ReportDecisions(
		metadata.AppendToOutgoingContext(ctx, identity.MDAuthorization, "Bearer "+stolen), &tenancyv1.ReportDecisionsRequest{})
	if status.Code(err) != codes.Unauthenticated || apierr.Reason(err) != identity.ReasonPeerIdentityMismatch {
		t.Errorf("a service token over another certificate: err = %v, want UNAUTHENTICATED %s", err, identity.ReasonPeerIdentityMismatch)
	}

	// The gateway's backend connections are mutual TLS.
	if code, body := s.call(t, "GET", "/api/tenant/info", s.token(t, "acme", "user"), nil, ""); code != http.StatusOK || body["tenant_id"] != "acme" {
		t.Errorf("GET /api/tenant/info through the gateway = %d %v", code, body)
	}
}
