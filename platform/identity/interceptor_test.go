package identity

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	authv1 "github.com/echopilot/echopilot/gen/go/echopilot/auth/v1"
	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	"github.com/echopilot/echopilot/platform/apierr"
)

// echoTenancy answers with the Caller the interceptor gave it.
type echoTenancy struct {
	tenancyv1.UnimplementedTenancyServiceServer
	mu   sync.Mutex
	last Caller
}

func (s *echoTenancy) seen(ctx context.Context) Caller {
	c, _ := FromContext(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last = c
	return c
}

func (s *echoTenancy) lastCaller() Caller {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

func (s *echoTenancy) GetTenantInfo(ctx context.Context, _ *tenancyv1.GetTenantInfoRequest) (*tenancyv1.GetTenantInfoResponse, error) {
	c := s.seen(ctx)
	return &tenancyv1.GetTenantInfoResponse{TenantId: c.Tenant, TenantVerified: c.Verified}, nil
}

func (s *echoTenancy) GetTenant(ctx context.Context, _ *tenancyv1.GetTenantRequest) (*tenancyv1.GetTenantResponse, error) {
	c := s.seen(ctx)
	return &tenancyv1.GetTenantResponse{Tenant: &tenancyv1.Tenant{TenantId: c.Tenant}}, nil
}

func (s *echoTenancy) CreateTenant(ctx context.Context, _ *tenancyv1.CreateTenantRequest) (*tenancyv1.CreateTenantResponse, error) {
	c := s.seen(ctx)
	return &tenancyv1.CreateTenantResponse{Tenant: &tenancyv1.Tenant{TenantId: c.Tenant}}, nil
}

func (s *echoTenancy) ReportDecisions(ctx context.Context, in *tenancyv1.ReportDecisionsRequest) (*tenancyv1.ReportDecisionsResponse, error) {
	s.seen(ctx)
	return &tenancyv1.ReportDecisionsResponse{Recorded: int64(len(in.GetDecisions()))}, nil
}

// probeDesc serves ProbeService of fd: Bare echoes its request, Watch
// answers each message with the stream's tenant.
func probeDesc(fd protoreflect.FileDescriptor) *grpc.ServiceDesc {
	ping := fd.Messages().ByName("Ping")
	tenantID := ping.Fields().ByName("tenant_id")
	return &grpc.ServiceDesc{
		ServiceName: probeService,
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Bare",
			Handler: func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
				in := dynamicpb.NewMessage(ping)
				if err := dec(in); err != nil {
					return nil, err
				}
				info := &grpc.UnaryServerInfo{Server: srv, FullMethod: "/" + probeService + "/Bare"}
				return ic(ctx, in, info, func(context.Context, any) (any, error) { return in, nil })
			},
		}},
		Streams: []grpc.StreamDesc{{
			StreamName:    "Watch",
			ClientStreams: true,
			ServerStreams: true,
			Handler: func(_ any, stream grpc.ServerStream) error {
				c, _ := FromContext(stream.Context())
				for {
					if err := stream.RecvMsg(dynamicpb.NewMessage(ping)); err != nil {
						if errors.Is(err, io.EOF) {
							return nil
						}
						return err
					}
					out := dynamicpb.NewMessage(ping)
					out.Set(tenantID, protoreflect.ValueOfString(c.Tenant))
					if err := stream.SendMsg(out); err != nil {
						return err
					}
				}
			},
		}},
	}
}

type harness struct {
	tenancy tenancyv1.TenancyServiceClient
	health  healthpb.HealthClient
	conn    *grpc.ClientConn
	svc     *echoTenancy
	sink    *recorder
	ping    protoreflect.MessageDescriptor
}

// serve starts, over bufconn, a server with the interceptor in mode, the
// echo tenancy service, the probe service (Watch has a policy, Bare none)
// and the health service.
func serve(t *testing.T, v *Verifier, mode Mode) *harness {
	t.Helper()
	probe := probeFile(t, map[string]*authv1.Policy{
		"Watch": {Access: authv1.Access_ACCESS_READ, AdminCrossTenantRead: true},
	})
	h := &harness{svc: &echoTenancy{}, sink: &recorder{}, ping: probe.Messages().ByName("Ping")}
	ic, err := NewInterceptor(InterceptorConfig{
		Verifier: v,
		Mode:     mode,
		Sink:     h.sink,
		Files:    registry(t, tenancyv1.File_echopilot_tenancy_v1_tenancy_proto, probe),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(ic.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(ic.StreamServerInterceptor()),
	)
	tenancyv1.RegisterTenancyServiceServer(srv, h.svc)
	srv.RegisterService(probeDesc(probe), struct{}{})
	healthpb.RegisterHealthServer(srv, health.NewServer())

	lis := bufconn.Listen(1 << 20)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	h.conn, err = grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.conn.Close() })
	h.tenancy = tenancyv1.NewTenancyServiceClient(h.conn)
	h.health = healthpb.NewHealthClient(h.conn)
	return h
}

func bearer(tok string) []string { return []string{MDAuthorization, "Bearer " + tok} }

func TestInterceptorUnary(t *testing.T) {
	k := newTestKeys(t)
	v := k.verifier(t)
	tokens := matrixTokens(t, k)
	servers := map[Mode]*harness{ModeOptional: serve(t, v, ModeOptional), ModeRequired: serve(t, v, ModeRequired)}

	getInfo := func(ctx context.Context, h *harness) error {
		_, err := h.tenancy.GetTenantInfo(ctx, &tenancyv1.GetTenantInfoRequest{})
		return err
	}
	getTenant := func(id string) func(context.Context, *harness) error {
		return func(ctx context.Context, h *harness) error {
			_, err := h.tenancy.GetTenant(ctx, &tenancyv1.GetTenantRequest{TenantId: id})
			return err
		}
	}
	listTenants := func(ctx context.Context, h *harness) error {
		_, err := h.tenancy.ListTenants(ctx, &tenancyv1.ListTenantsRequest{})
		return err
	}
	createTenant := func(ctx context.Context, h *harness) error {
		// The nested tenant_id names the record, not the tenant acted for.
		_, err := h.tenancy.CreateTenant(ctx, &tenancyv1.CreateTenantRequest{Tenant: &tenancyv1.Tenant{TenantId: "acme"}})
		return err
	}
	report := func(ctx context.Context, h *harness) error {
		_, err := h.tenancy.ReportDecisions(ctx, &tenancyv1.ReportDecisionsRequest{})
		return err
	}
	bare := func(ctx context.Context, h *harness) error {
		return h.conn.Invoke(ctx, "/"+probeService+"/Bare", dynamicpb.NewMessage(h.ping), dynamicpb.NewMessage(h.ping))
	}

	type want struct {
		code   codes.Code
		reason string
		// Effective tenant the handler saw, when allowed.
		tenant string
		cross  bool
		// The one recorded decision.
		callerTenant, targetTenant string
	}
	cases := []struct {
		name string
		mode Mode
		md   []string
		call func(context.Context, *harness) error
		want want
	}{
		{"anonymous in optional mode", ModeOptional, nil, getInfo,
			want{codes.OK, ReasonAnonymous, "default", false, "default", "default"}},
		{"anonymous names its tenant", ModeOptional, []string{MDTenant, "acme"}, getInfo,
			want{codes.OK, ReasonAnonymous, "acme", false, "acme", "acme"}},
		{"anonymous in required mode", ModeRequired, []string{MDTenant, "acme"}, getInfo,
			want{codes.Unauthenticated, ReasonTokenMissing, "", false, UnverifiedBucket, "acme"}},
		{"expired token in optional mode", ModeOptional, bearer(tokens["expired"]), getInfo,
			want{codes.Unauthenticated, ReasonTokenExpired, "", false, UnverifiedBucket, "default"}},
		{"basic auth is no bearer token", ModeOptional, []string{MDAuthorization, "Basic YWxpY2U6c2VjcmV0"}, getInfo,
			want{codes.Unauthenticated, ReasonTokenInvalid, "", false, UnverifiedBucket, "default"}},
		{"two authorization values", ModeOptional, append(bearer(tokens["acme"]), bearer(tokens["admin"])...), getInfo,
			want{codes.Unauthenticated, ReasonTokenInvalid, "", false, UnverifiedBucket, "default"}},
		{"alg none", ModeOptional, bearer(tokens["alg-none"]), getInfo,
			want{codes.Unauthenticated, ReasonTokenInvalid, "", false, UnverifiedBucket, "default"}},
		{"own tenant", ModeRequired, bearer(tokens["acme"]), getInfo,
			want{codes.OK, ReasonSameTenant, "acme", false, "acme", "acme"}},
		{"own tenant, ES256", ModeRequired, append(bearer(tokens["acme-es"]), MDTenant, "acme"), getInfo,
			want{codes.OK, ReasonSameTenant, "acme", false, "acme", "acme"}},
		{"other tenant in header", ModeRequired, append(bearer(tokens["acme"]), MDTenant, "globex"), getInfo,
			want{codes.PermissionDenied, ReasonCrossTenantDenied, "", false, "acme", "globex"}},
		{"other tenant in query parameter", ModeRequired, append(bearer(tokens["acme"]), MDTenantQuery, "globex"), getInfo,
			want{codes.PermissionDenied, ReasonCrossTenantDenied, "", false, "acme", "globex"}},
		{"other tenant in request field", ModeRequired, bearer(tokens["acme"]), getTenant("globex"),
			want{codes.PermissionDenied, ReasonCrossTenantDenied, "", false, "acme", "globex"}},
		{"request field conflicts with header", ModeRequired, append(bearer(tokens["acme"]), MDTenant, "globex"), getTenant("acme"),
			want{codes.InvalidArgument, ReasonTenantConflict, "", false, "acme", "acme"}},
		{"header conflicts with query parameter", ModeOptional, []string{MDTenant, "acme", MDTenantQuery, "globex"}, getInfo,
			want{codes.InvalidArgument, ReasonTenantConflict, "", false, UnverifiedBucket, "default"}},
		{"malformed tenant header", ModeOptional, []string{MDTenant, "Acme Corp"}, getInfo,
			want{codes.InvalidArgument, ReasonTenantInvalid, "", false, UnverifiedBucket, "default"}},
		{"admin reads another tenant through GetTenant", ModeRequired, bearer(tokens["admin"]), getTenant("acme"),
			want{codes.OK, ReasonAdminReadOnly, "acme", true, "default", "acme"}},
		{"admin reads another tenant, ES256", ModeRequired, append(bearer(tokens["admin-es"]), MDTenant, "acme"), getTenant("acme"),
			want{codes.OK, ReasonAdminReadOnly, "acme", true, "default", "acme"}},
		{"admin cannot read across where the method does not allow it", ModeRequired, append(bearer(tokens["admin"]), MDTenant, "acme"), listTenants,
			want{codes.PermissionDenied, ReasonCrossTenantDenied, "", false, "default", "acme"}},
		{"admin cannot write to another tenant", ModeRequired, append(bearer(tokens["admin"]), MDTenant, "acme"), createTenant,
			want{codes.PermissionDenied, ReasonCrossTenantDenied, "", false, "default", "acme"}},
		{"admin registers a tenant from the default tenant", ModeRequired, bearer(tokens["admin"]), createTenant,
			want{codes.OK, ReasonSameTenant, "default", false, "default", "default"}},
		{"tenant user cannot create tenants", ModeRequired, bearer(tokens["acme"]), createTenant,
			want{codes.PermissionDenied, ReasonTenantNotAllowed, "", false, "acme", "acme"}},
		{"service reports decisions", ModeRequired, bearer(tokens["service"]), report,
			want{codes.OK, ReasonSameTenant, "default", false, "default", "default"}},
		{"user cannot report decisions", ModeRequired, bearer(tokens["acme"]), report,
			want{codes.PermissionDenied, ReasonRoleRequired, "", false, "acme", "acme"}},
		{"a service not listed by the method is refused", ModeRequired, append(bearer(tokens["service"]), MDTenant, "acme"), getInfo,
			want{codes.PermissionDenied, ReasonServiceNotAllowed, "", false, "default", "acme"}},
		{"service role of a tenant's token is refused", ModeRequired, bearer(tokens["acme-service"]), report,
			want{codes.PermissionDenied, ReasonServiceIdentityInvalid, "", false, "acme", "acme"}},
		{"service role of a tenant's token reads nothing, not even its own tenant", ModeRequired, bearer(tokens["acme-service"]), getInfo,
			want{codes.PermissionDenied, ReasonServiceIdentityInvalid, "", false, "acme", "acme"}},
		{"method without policy", ModeOptional, bearer(tokens["acme"]), bare,
			want{codes.PermissionDenied, ReasonPolicyMissing, "", false, "acme", "acme"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := servers[tc.mode]
			h.sink.take()
			ctx := metadata.AppendToOutgoingContext(context.Background(), tc.md...)
			err := tc.call(ctx, h)

			if got := status.Code(err); got != tc.want.code {
				t.Fatalf("code = %v (%v), want %v", got, err, tc.want.code)
			}
			if err != nil {
				if got := apierr.Reason(err); got != tc.want.reason {
					t.Errorf("reason = %q, want %q", got, tc.want.reason)
				}
			} else if c := h.svc.lastCaller(); c.Tenant != tc.want.tenant || c.CrossTenantRead != tc.want.cross {
				t.Errorf("handler saw %+v, want tenant %q cross %v", c, tc.want.tenant, tc.want.cross)
			}
			ds := h.sink.take()
			if len(ds) != 1 {
				t.Fatalf("recorded %d decisions, want 1: %+v", len(ds), ds)
			}
			d := ds[0]
			if d.Allowed != (err == nil) || d.Reason != tc.want.reason ||
				d.CallerTenant != tc.want.callerTenant || d.TargetTenant != tc.want.targetTenant {
				t.Errorf("decision = %+v, want %+v", d, tc.want)
			}
		})
	}
}

func TestInterceptorSkipsHealth(t *testing.T) {
	h := serve(t, newTestKeys(t).verifier(t), ModeRequired)
	resp, err := h.health.Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health check = %v, %v", resp, err)
	}
	if ds := h.sink.take(); len(ds) != 0 {
		t.Fatalf("health check recorded decisions: %+v", ds)
	}
}

func TestInterceptorStream(t *testing.T) {
	k := newTestKeys(t)
	v := k.verifier(t)
	tokens := matrixTokens(t, k)
	h := serve(t, v, ModeRequired)
	tenantID := h.ping.Fields().ByName("tenant_id")

	watch := func(t *testing.T, md ...string) grpc.ClientStream {
		t.Helper()
		ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(context.Background(), md...))
		t.Cleanup(cancel)
		s, err := h.conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, "/"+probeService+"/Watch")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// exchange sends a Ping naming tenant and returns the tenant answered.
	exchange := func(s grpc.ClientStream, tenant string) (string, error) {
		out := dynamicpb.NewMessage(h.ping)
		out.Set(tenantID, protoreflect.ValueOfString(tenant))
		if err := s.SendMsg(out); err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		in := dynamicpb.NewMessage(h.ping)
		if err := s.RecvMsg(in); err != nil {
			return "", err
		}
		return in.Get(tenantID).String(), nil
	}

	t.Run("admin reads another tenant named in metadata", func(t *testing.T) {
		h.sink.take()
		s := watch(t, append(bearer(tokens["admin"]), MDTenant, "acme")...)
		for _, named := range []string{"", "acme"} {
			got, err := exchange(s, named)
			if err != nil || got != "acme" {
				t.Fatalf("message naming %q: got %q, %v; want acme", named, got, err)
			}
		}
		_, err := exchange(s, "globex")
		if status.Code(err) != codes.InvalidArgument || apierr.Reason(err) != ReasonTenantConflict {
			t.Fatalf("message naming another tenant: %v, want TENANT_CONFLICT", err)
		}
		ds := h.sink.take()
		if len(ds) != 2 || !ds[0].Allowed || ds[0].Reason != ReasonAdminReadOnly || ds[1].Allowed || ds[1].Reason != ReasonTenantConflict {
			t.Fatalf("decisions = %+v, want the grant then the conflict", ds)
		}
	})
	t.Run("cross-tenant stream refused at start", func(t *testing.T) {
		h.sink.take()
		_, err := exchange(watch(t, append(bearer(tokens["acme"]), MDTenant, "globex")...), "")
		if status.Code(err) != codes.PermissionDenied || apierr.Reason(err) != ReasonCrossTenantDenied {
			t.Fatalf("got %v, want CROSS_TENANT_DENIED", err)
		}
		if ds := h.sink.take(); len(ds) != 1 || ds[0].Allowed {
			t.Fatalf("decisions = %+v, want one denial", ds)
		}
	})
	t.Run("no token in required mode", func(t *testing.T) {
		_, err := exchange(watch(t), "")
		if status.Code(err) != codes.Unauthenticated || apierr.Reason(err) != ReasonTokenMissing {
			t.Fatalf("got %v, want TOKEN_MISSING", err)
		}
	})
}

func TestNewInterceptorNeedsVerifierAndSink(t *testing.T) {
	v := newTestKeys(t).verifier(t)
	if _, err := NewInterceptor(InterceptorConfig{Sink: &recorder{}}); err == nil {
		t.Error("no verifier accepted")
	}
	if _, err := NewInterceptor(InterceptorConfig{Verifier: v}); err == nil {
		t.Error("no sink accepted")
	}
}
