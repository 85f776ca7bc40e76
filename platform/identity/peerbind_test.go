package identity

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/tlsconfig"
	"github.com/echopilot/echopilot/platform/tlsconfig/devca"
)

// tlsServe starts, on loopback over TLS with client auth, the echo tenancy
// service behind an interceptor that binds service tokens to certificates.
func tlsServe(t *testing.T, v *Verifier, ca *devca.CA, dir string, auth tlsconfig.ClientAuth) (string, *recorder) {
	t.Helper()
	r := loadFiles(t, ca, dir, "tenancy")
	creds, err := r.ServerCredentials(auth)
	if err != nil {
		t.Fatal(err)
	}
	sink := &recorder{}
	ic, err := NewInterceptor(InterceptorConfig{
		Verifier: v, Mode: ModeRequired, Sink: sink, BindServicePeers: true,
		Files: registry(t, tenancyv1.File_echopilot_tenancy_v1_tenancy_proto),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(creds), grpc.UnaryInterceptor(ic.UnaryServerInterceptor()))
	tenancyv1.RegisterTenancyServiceServer(srv, &echoTenancy{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return ln.Addr().String(), sink
}

// loadFiles writes a certificate naming service ("": only the CA bundle)
// and returns its Reloader.
func loadFiles(t *testing.T, ca *devca.CA, dir, service string) *tlsconfig.Reloader {
	t.Helper()
	caFile, err := ca.WriteCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := tlsconfig.Files{CAFile: caFile}
	if service != "" {
		p, err := ca.WriteLeaf(dir, service, devca.Leaf{Service: service, Hosts: []string{"127.0.0.1"}})
		if err != nil {
			t.Fatal(err)
		}
		files.CertFile, files.KeyFile = p.Cert, p.Key
	}
	r, err := tlsconfig.New(files, tlsconfig.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func tlsClient(t *testing.T, addr string, r *tlsconfig.Reloader) tenancyv1.TenancyServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(r.ClientCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return tenancyv1.NewTenancyServiceClient(conn)
}

func TestServiceTokenBoundToPeerCertificate(t *testing.T) {
	k := newTestKeys(t)
	v := k.verifier(t)
	ca, err := devca.New("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	addr, sink := tlsServe(t, v, ca, dir, tlsconfig.VerifyClientCertIfGiven)
	finopsToken := k.hs(t, serviceClaims(DefaultTenant, "finops"))
	userToken := k.hs(t, claimsFor("acme", "user"))
	finops := tlsClient(t, addr, loadFiles(t, ca, dir, "finops"))
	audit := tlsClient(t, addr, loadFiles(t, ca, dir, "audit"))
	anon := tlsClient(t, addr, loadFiles(t, ca, dir, ""))

	report := func(c tenancyv1.TenancyServiceClient, tok string) error {
		ctx := metadata.AppendToOutgoingContext(context.Background(), bearer(tok)...)
		_, err := c.ReportDecisions(ctx, &tenancyv1.ReportDecisionsRequest{})
		return err
	}
	info := func(c tenancyv1.TenancyServiceClient, tok string) error {
		ctx := metadata.AppendToOutgoingContext(context.Background(), bearer(tok)...)
		_, err := c.GetTenantInfo(ctx, &tenancyv1.GetTenantInfoRequest{})
		return err
	}
	for _, tc := range []struct {
		name   string
		call   func(tenancyv1.TenancyServiceClient, string) error
		client tenancyv1.TenancyServiceClient
		token  string
		reason string // "": allowed
	}{
		{"service token with its own certificate", report, finops, finopsToken, ""},
		{"finops's token over audit's certificate", report, audit, finopsToken, ReasonPeerIdentityMismatch},
		{"service token without a client certificate", report, anon, finopsToken, ReasonPeerIdentityMismatch},
		{"user token without a client certificate", info, anon, userToken, ""},
		{"user token over a service's certificate", info, audit, userToken, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink.take()
			err := tc.call(tc.client, tc.token)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if status.Code(err) != codes.Unauthenticated || apierr.Reason(err) != tc.reason {
				t.Fatalf("err = %v, want UNAUTHENTICATED %s", err, tc.reason)
			}
			if ds := sink.take(); len(ds) != 1 || ds[0].Allowed || ds[0].Reason != tc.reason {
				t.Errorf("decisions = %+v, want one refusal %s", ds, tc.reason)
			}
		})
	}
}

func TestMutualTLSRefusesClientWithoutCertificate(t *testing.T) {
	k := newTestKeys(t)
	ca, err := devca.New("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	addr, sink := tlsServe(t, k.verifier(t), ca, dir, tlsconfig.RequireClientCert)
	token := k.hs(t, serviceClaims(DefaultTenant, "finops"))
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), bearer(token)...), 10*time.Second)
	defer cancel()

	_, err = tlsClient(t, addr, loadFiles(t, ca, dir, "")).ReportDecisions(ctx, &tenancyv1.ReportDecisionsRequest{})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("no client certificate: err = %v, want the handshake refused (UNAVAILABLE)", err)
	}
	if ds := sink.take(); len(ds) != 0 {
		t.Errorf("a refused handshake reached the interceptor: %+v", ds)
	}
	if _, err := tlsClient(t, addr, loadFiles(t, ca, dir, "finops")).ReportDecisions(ctx, &tenancyv1.ReportDecisionsRequest{}); err != nil {
		t.Fatalf("right certificate and token: %v", err)
	}
}
