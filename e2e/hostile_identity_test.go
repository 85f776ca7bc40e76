package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	finopsv1 "github.com/echopilot/echopilot/gen/go/echopilot/finops/v1"
	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/tlsconfig"
)

// Attacks on the identity boundary (issue 13, findings 1, 4 and 6), each
// against the real binaries.

// Finding 1: a token from a tenant's identity provider that carries role
// "service" once read and wrote every tenant. Now only a platform service
// identity holds that role, and only on the methods that list it.
func TestHostileServiceRoleOfATenant(t *testing.T) {
	s := startSuite(t, "required")
	globex := map[string]string{"X-Tenant-ID": "globex"}
	forged := s.mint(t, identity.Claims{Subject: "service:queue", TenantID: "acme", Roles: []string{identity.RoleService}})

	code, body := s.call(t, "GET", "/api/finops/summary", forged, globex, "")
	if code != http.StatusForbidden || errReason(body) != identity.ReasonServiceIdentityInvalid {
		t.Fatalf("acme's service-role token reading globex's finops = %d %v, want 403 %s", code, body, identity.ReasonServiceIdentityInvalid)
	}
	entry := `{"entries":[{"event_type":"forged","user":"mallory","action":"write","resource":"x","severity":"low"}]}`
	code, body = s.call(t, "POST", "/api/audit/entries", forged, globex, entry)
	if code != http.StatusForbidden || errReason(body) != identity.ReasonServiceIdentityInvalid {
		t.Fatalf("acme's service-role token appending to globex's log = %d %v, want 403", code, body)
	}
	// Nor does the role buy anything in the token's own tenant.
	if code, body = s.call(t, "GET", "/api/finops/summary", forged, nil, ""); code != http.StatusForbidden {
		t.Fatalf("acme's service-role token in acme = %d %v, want 403", code, body)
	}
	// A genuine service identity is held to the methods that list it:
	// growth may append audit entries for a tenant, never read its costs.
	growth := s.mint(t, identity.Claims{Subject: identity.ServiceSubject("growth"), TenantID: identity.DefaultTenant, Roles: []string{identity.RoleService}})
	if s.TLS == nil {
		code, body = s.call(t, "GET", "/api/finops/summary", growth, globex, "")
		if code != http.StatusForbidden || errReason(body) != identity.ReasonServiceNotAllowed {
			t.Fatalf("growth's identity reading globex's finops = %d %v, want 403 %s", code, body, identity.ReasonServiceNotAllowed)
		}
	} else {
		// Over mutual TLS a service token passed through the gateway
		// (whose certificate names the gateway) is refused outright; from
		// growth's own certificate it meets the method's policy.
		code, body = s.call(t, "GET", "/api/finops/summary", growth, globex, "")
		if code != http.StatusUnauthorized || errReason(body) != identity.ReasonPeerIdentityMismatch {
			t.Fatalf("growth's identity through the gateway = %d %v, want 401 %s", code, body, identity.ReasonPeerIdentityMismatch)
		}
		r, err := tlsconfig.New(s.TLS.Files("growth"), tlsconfig.Options{})
		if err != nil {
			t.Fatal(err)
		}
		conn, err := grpc.NewClient(s.GRPCAddrs["finops"], grpc.WithTransportCredentials(r.ClientCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx := metadata.AppendToOutgoingContext(context.Background(), identity.MDAuthorization, "Bearer "+growth, identity.MDTenant, "globex")
		_, err = finopsv1.NewFinOpsServiceClient(conn).GetSummary(ctx, &finopsv1.GetSummaryRequest{})
		if status.Code(err) != codes.PermissionDenied || apierr.Reason(err) != identity.ReasonServiceNotAllowed {
			t.Fatalf("growth's identity and certificate reading globex's finops: %v, want PERMISSION_DENIED %s", err, identity.ReasonServiceNotAllowed)
		}
	}
	_, chain := s.call(t, "GET", "/api/audit/chain?limit=100", s.token(t, "globex", "user"), nil, "")
	for _, raw := range chain["entries"].([]any) {
		if e, _ := raw.(map[string]any); e["event_type"] == "forged" {
			t.Fatalf("the forged entry is in globex's log: %v", e)
		}
	}
}

// Finding 4: requests with a forged token, or anonymous probes that are
// refused, named a tenant and were counted (and audited) as that tenant's.
// They now land in the unverified bucket, on both databases.
func TestHostileForgedRequestsAreNotCountedAsTheTenant(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		s := startOn(t, "optional", backend)
		globex := map[string]string{"X-Tenant-ID": "globex"}
		wrongKey := make([]byte, 32)
		_, _ = rand.Read(wrongKey)
		forged, err := identity.MintHS256(wrongKey, identity.Claims{Subject: "mallory", TenantID: "globex", Roles: []string{"user"}}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		const probes = 20
		for range probes {
			if code, body := s.call(t, "GET", "/api/tenant/info", forged, globex, ""); code != http.StatusUnauthorized {
				t.Fatalf("forged token = %d %v, want 401", code, body)
			}
		}
		// An anonymous cross-tenant probe in auth=optional, claiming globex.
		if code, body := s.call(t, "GET", "/api/tenant/test-access?target_tenant_id=acme", "", globex, ""); code != http.StatusOK || body["allowed"] != false {
			t.Fatalf("anonymous probe = %d %v, want a refusal", code, body)
		}
		// A verified denial of globex's own user: counted and audited as
		// globex's, the control for both checks below.
		gx := s.token(t, "globex", "user")
		if code, body := s.call(t, "GET", "/api/tenant/info", gx, map[string]string{"X-Tenant-ID": "acme"}, ""); code != http.StatusForbidden {
			t.Fatalf("globex reading acme = %d %v, want 403", code, body)
		}

		_, body := s.call(t, "GET", "/api/tenant/info", gx, nil, "")
		// The anonymous call itself (allowed, as auth=optional allows it),
		// the verified denial and this call; none of the refusals.
		if dig(body, "stats", "denied_access") != 1.0 || dig(body, "stats", "total_events") != 3.0 || dig(body, "stats", "cross_tenant_denied") != 1.0 {
			t.Fatalf("globex stats = %v, want only its own two decisions", body["stats"])
		}
		_, body = s.call(t, "GET", "/api/tenant/info", s.token(t, "default", "admin"), nil, "")
		if n, _ := dig(body, "stats", "tenants", identity.UnverifiedBucket).(float64); n != probes+1 {
			t.Fatalf("unverified bucket = %v in %v, want %d", n, dig(body, "stats", "tenants"), probes+1)
		}

		var denials []map[string]any
		waitFor(t, 15*time.Second, "globex's own denial in its audit log", func() bool {
			denials = denials[:0]
			_, chain := s.call(t, "GET", "/api/audit/chain?limit=100", gx, nil, "")
			entries, _ := chain["entries"].([]any)
			for _, raw := range entries {
				if e, _ := raw.(map[string]any); e["event_type"] == "access.denied" {
					denials = append(denials, e)
				}
			}
			return len(denials) > 0
		})
		// Tenancy writes its decisions' events in one outbox in order; the
		// probes came first, so had they been audited they would be here.
		if len(denials) != 1 || dig(denials[0], "details", "verified") != true {
			t.Fatalf("globex's log holds %d denials %v, want only its verified one", len(denials), denials)
		}
	})
}

// Finding 6: gRPC reflection was on in every service, database URLs with
// passwords were printed by -h, and nothing stopped an anonymous-access
// service from listening on the network.
func TestHostileServiceHygiene(t *testing.T) {
	bin := filepath.Join(binDir, "tenancy")
	base := func(t *testing.T) []string {
		return append(os.Environ(),
			"ECHOPILOT_DATABASE_URL=sqlite://"+filepath.Join(t.TempDir(), "t.db"),
			"ECHOPILOT_METRICS_ADDR=127.0.0.1:0",
			"ECHOPILOT_JWT_HS256_SECRET="+hex.EncodeToString(make([]byte, 32)),
		)
	}

	t.Run("database password stays out of -h", func(t *testing.T) {
		cmd := exec.Command(bin, "-h")
		cmd.Env = append(os.Environ(), "ECHOPILOT_DATABASE_URL=postgres://app:hunter2-secret@127.0.0.1:1/x",
			"ECHOPILOT_MIGRATE_DATABASE_URL=postgres://owner:hunter3-secret@127.0.0.1:1/x")
		out, _ := cmd.CombinedOutput()
		if strings.Contains(string(out), "hunter") || !strings.Contains(string(out), "database-url") {
			t.Fatalf("-h output shows a database password or no database flag:\n%s", out)
		}
	})

	refuses := func(t *testing.T, want string, env ...string) {
		t.Helper()
		cmd := exec.Command(bin)
		cmd.Env = append(base(t), env...)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		done := make(chan struct{})
		var out []byte
		var err error
		go func() { out, err = cmd.CombinedOutput(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("started instead of refusing:\n%s", out)
		}
		if err == nil || !strings.Contains(string(out), want) {
			t.Fatalf("exit %v, output lacks %q:\n%s", err, want, out)
		}
	}
	t.Run("auth=optional refuses a network address", func(t *testing.T) {
		refuses(t, "not a loopback address", "ECHOPILOT_AUTH_MODE=optional", "ECHOPILOT_GRPC_ADDR=0.0.0.0:0")
	})
	t.Run("auth=required refuses tokens bound to no issuer and audience", func(t *testing.T) {
		refuses(t, "--allow-unbound-tokens", "ECHOPILOT_AUTH_MODE=required", "ECHOPILOT_GRPC_ADDR=127.0.0.1:0")
	})

	t.Run("reflection is off unless asked", func(t *testing.T) {
		for _, on := range []bool{false, true} {
			addr := freeAddr(t)
			cmd := exec.Command(bin)
			cmd.Env = append(base(t), "ECHOPILOT_AUTH_MODE=optional", "ECHOPILOT_GRPC_ADDR="+addr)
			if on {
				cmd.Env = append(cmd.Env, "ECHOPILOT_GRPC_REFLECTION=true")
			}
			out := &lockedWriter{b: &strings.Builder{}}
			cmd.Stdout, cmd.Stderr = out, out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			health := healthpb.NewHealthClient(conn)
			waitFor(t, 20*time.Second, "tenancy to serve", func() bool {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
				return err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
			})
			code := status.Code(listServices(conn))
			if want := map[bool]codes.Code{false: codes.Unimplemented, true: codes.OK}[on]; code != want {
				t.Fatalf("reflection %v: ListServices = %v, want %v\n%s", on, code, want, out.String())
			}
		}
	})
}

// listServices asks the server's reflection service for its services.
func listServices(conn *grpc.ClientConn) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		return err
	}
	// A refused stream may fail Send with io.EOF; its status comes with Recv.
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	_, err = stream.Recv()
	return err
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// mint signs arbitrary claims with the stack's secret, for tokens a
// tenant's identity provider could issue.
func (s *suite) mint(t *testing.T, c identity.Claims) string {
	t.Helper()
	tok, err := identity.MintHS256(s.secret, c, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
