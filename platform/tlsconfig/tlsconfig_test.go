package tlsconfig_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/echopilot/echopilot/platform/tlsconfig"
	"github.com/echopilot/echopilot/platform/tlsconfig/devca"
)

// everyHandshake makes a Reloader look at its files on each handshake.
const everyHandshake = time.Nanosecond

type fixture struct {
	t   *testing.T
	dir string
	ca  *devca.CA
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ca, err := devca.New("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, dir: t.TempDir(), ca: ca}
}

// files writes a certificate for service from ca under name, and ca's
// bundle, and returns their paths.
func (f *fixture) files(ca *devca.CA, name, service string) tlsconfig.Files {
	f.t.Helper()
	p, err := ca.WriteLeaf(f.dir, name, devca.Leaf{Service: service, Hosts: []string{"127.0.0.1", "localhost"}})
	if err != nil {
		f.t.Fatal(err)
	}
	caFile := filepath.Join(f.dir, name+"-ca.pem")
	if err := os.WriteFile(caFile, ca.PEM, 0o644); err != nil {
		f.t.Fatal(err)
	}
	return tlsconfig.Files{CertFile: p.Cert, KeyFile: p.Key, CAFile: caFile}
}

func (f *fixture) reloader(files tlsconfig.Files) *tlsconfig.Reloader {
	f.t.Helper()
	r, err := tlsconfig.New(files, tlsconfig.Options{Interval: everyHandshake, Log: zaptest.NewLogger(f.t)})
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

// listen serves TLS on loopback: each connection is handshaken and sent
// "ok". It returns the address and the certificates clients presented.
func listen(t *testing.T, cfg *tls.Config) (string, <-chan []*x509.Certificate) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	seen := make(chan []*x509.Certificate, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := c.(*tls.Conn)
				if err := tc.Handshake(); err != nil {
					return
				}
				seen <- tc.ConnectionState().PeerCertificates
				_, _ = tc.Write([]byte("ok"))
			}()
		}
	}()
	return ln.Addr().String(), seen
}

// dial handshakes with addr and reads the server's "ok"; it returns the
// server's leaf certificate. With TLS 1.3 a refused client certificate
// shows only on that first read.
func dial(addr string, cfg *tls.Config) (*x509.Certificate, error) {
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil {
		return nil, err
	}
	return c.ConnectionState().PeerCertificates[0], nil
}

func TestHandshakeVerifiesServerAgainstCA(t *testing.T) {
	f := newFixture(t)
	srv := f.reloader(f.files(f.ca, "server", "tenancy"))
	cfg, err := srv.ServerConfig(tlsconfig.NoClientCert)
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := listen(t, cfg)

	client := f.reloader(tlsconfig.Files{CAFile: f.files(f.ca, "client", "").CAFile})
	leaf, err := dial(addr, client.ClientConfig())
	if err != nil {
		t.Fatalf("handshake with the CA's server: %v", err)
	}
	if got := tlsconfig.ServiceName(leaf); got != "tenancy" {
		t.Errorf("server certificate names %q, want tenancy", got)
	}

	other, err := devca.New("other CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	stranger := f.reloader(tlsconfig.Files{CAFile: f.files(other, "stranger", "").CAFile})
	var unknown x509.UnknownAuthorityError
	if _, err := dial(addr, stranger.ClientConfig()); !errors.As(err, &unknown) {
		t.Fatalf("client trusting another CA: err = %v, want an unknown authority", err)
	}
}

func TestRotationWithoutRestart(t *testing.T) {
	f := newFixture(t)
	files := f.files(f.ca, "server", "queue")
	srv := f.reloader(files)
	cfg, err := srv.ServerConfig(tlsconfig.NoClientCert)
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := listen(t, cfg)
	client := f.reloader(tlsconfig.Files{CAFile: files.CAFile})

	first, err := dial(addr, client.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	// Rotate: the same paths, a new pair.
	if _, err := f.ca.WriteLeaf(f.dir, "server", devca.Leaf{Service: "queue", Hosts: []string{"127.0.0.1"}}); err != nil {
		t.Fatal(err)
	}
	second, err := dial(addr, client.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	if first.SerialNumber.Cmp(second.SerialNumber) == 0 {
		t.Fatal("the handshake after the rotation still served the old certificate")
	}
	if srv.Reloads() != 1 || srv.Failures() != 0 {
		t.Errorf("reloads = %d, failures = %d; want 1, 0", srv.Reloads(), srv.Failures())
	}
}

func TestBadReloadKeepsLastGoodPair(t *testing.T) {
	f := newFixture(t)
	files := f.files(f.ca, "server", "audit")
	srv := f.reloader(files)
	cfg, err := srv.ServerConfig(tlsconfig.NoClientCert)
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := listen(t, cfg)
	client := f.reloader(tlsconfig.Files{CAFile: files.CAFile})
	good, err := dial(addr, client.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}

	// A certificate whose key is another's (a rotation caught half-way),
	// then garbage.
	otherCert, _, err := f.ca.Issue(devca.Leaf{Service: "audit", Hosts: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	for i, content := range [][]byte{otherCert, []byte("not PEM")} {
		if err := os.WriteFile(files.CertFile, content, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := dial(addr, client.ClientConfig())
		if err != nil {
			t.Fatalf("handshake after bad reload %d: %v", i, err)
		}
		if got.SerialNumber.Cmp(good.SerialNumber) != 0 {
			t.Fatalf("bad reload %d replaced the certificate", i)
		}
	}
	// Seen again, the same failure is not counted again.
	if _, err := dial(addr, client.ClientConfig()); err != nil {
		t.Fatal(err)
	}
	if srv.Failures() != 2 || srv.Reloads() != 0 {
		t.Errorf("failures = %d, reloads = %d; want 2, 0", srv.Failures(), srv.Reloads())
	}

	// A missing file at start is an error, not a server without a certificate.
	if _, err := tlsconfig.New(tlsconfig.Files{CertFile: filepath.Join(f.dir, "absent.pem"), KeyFile: files.KeyFile}, tlsconfig.Options{}); err == nil {
		t.Error("New with a missing certificate file succeeded")
	}
}

func TestMutualTLS(t *testing.T) {
	f := newFixture(t)
	srv := f.reloader(f.files(f.ca, "server", "tenancy"))
	cfg, err := srv.ServerConfig(tlsconfig.RequireClientCert)
	if err != nil {
		t.Fatal(err)
	}
	addr, seen := listen(t, cfg)

	caOnly := f.reloader(tlsconfig.Files{CAFile: f.files(f.ca, "anon", "").CAFile})
	if _, err := dial(addr, caOnly.ClientConfig()); err == nil {
		t.Error("a client without a certificate got through")
	}

	other, err := devca.New("other CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	foreign := f.files(other, "foreign", "finops")
	foreign.CAFile = f.files(f.ca, "foreign-trust", "").CAFile // it trusts the server; the server does not trust it
	if _, err := dial(addr, f.reloader(foreign).ClientConfig()); err == nil {
		t.Error("a client with another CA's certificate got through")
	}

	good := f.reloader(f.files(f.ca, "finops", "finops"))
	if _, err := dial(addr, good.ClientConfig()); err != nil {
		t.Fatalf("client with the CA's certificate: %v", err)
	}
	select {
	case certs := <-seen:
		if len(certs) == 0 || tlsconfig.ServiceName(certs[0]) != "finops" {
			t.Errorf("server saw client certificates %v, want finops's", certs)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("server saw no accepted handshake")
	}
}

func TestServerConfigNeedsItsFiles(t *testing.T) {
	f := newFixture(t)
	caOnly := f.reloader(tlsconfig.Files{CAFile: f.files(f.ca, "x", "").CAFile})
	if _, err := caOnly.ServerConfig(tlsconfig.NoClientCert); err == nil {
		t.Error("a server without a certificate was configured")
	}
	files := f.files(f.ca, "y", "growth")
	files.CAFile = ""
	if _, err := f.reloader(files).ServerConfig(tlsconfig.RequireClientCert); err == nil {
		t.Error("mutual TLS without a CA bundle was configured")
	}
	if _, err := tlsconfig.ParseClientAuth("sometimes"); err == nil {
		t.Error("ParseClientAuth took an unknown value")
	}
}

// gRPC: credentials built once trust a rotated CA bundle on the next
// connection, and PeerService reads the verified client certificate.
func TestGRPCPeerServiceAndCARotation(t *testing.T) {
	f := newFixture(t)
	srvFiles := f.files(f.ca, "server", "queue")
	srv := f.reloader(srvFiles)
	srvCreds, err := srv.ServerCredentials(tlsconfig.RequireClientCert)
	if err != nil {
		t.Fatal(err)
	}
	peers := make(chan string, 4)
	g := grpc.NewServer(grpc.Creds(srvCreds), grpc.UnaryInterceptor(
		func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			peers <- tlsconfig.PeerService(ctx)
			return h(ctx, req)
		}))
	healthpb.RegisterHealthServer(g, health.NewServer())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)

	client := f.reloader(f.files(f.ca, "growth", "growth"))
	creds := client.ClientCredentials() // made once, before the rotation below
	check := func() error {
		conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(creds))
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}
	if err := check(); err != nil {
		t.Fatal(err)
	}
	if got := <-peers; got != "growth" {
		t.Errorf("PeerService = %q, want growth", got)
	}

	// A new CA signs everything; both sides' files are rewritten in place.
	next, err := devca.New("next CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	f.files(next, "server", "queue")
	f.files(next, "growth", "growth")
	if err := check(); err != nil {
		t.Fatalf("after rotating the CA: %v", err)
	}
	if got := <-peers; got != "growth" {
		t.Errorf("PeerService after the rotation = %q, want growth", got)
	}
}

func TestServiceName(t *testing.T) {
	u := func(s string) *url.URL {
		v, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		uris []*url.URL
		dns  []string
		want string
	}{
		{uris: []*url.URL{tlsconfig.ServiceURI("audit")}, want: "audit"},
		{uris: []*url.URL{u("spiffe://echopilot/service/audit"), u("spiffe://echopilot/service/audit")}, want: "audit"},
		{uris: []*url.URL{u("spiffe://echopilot/service/audit"), u("spiffe://echopilot/service/queue")}, want: ""},
		{uris: []*url.URL{u("spiffe://elsewhere/service/audit")}, want: ""},
		{uris: []*url.URL{u("https://echopilot/service/audit")}, want: ""},
		{uris: []*url.URL{u("spiffe://echopilot/service/a/b")}, want: ""},
		{uris: []*url.URL{u("spiffe://echopilot/service/")}, want: ""},
		{dns: []string{"audit", "audit.default.svc"}, want: ""},
	} {
		if got := tlsconfig.ServiceName(&x509.Certificate{URIs: tc.uris, DNSNames: tc.dns}); got != tc.want {
			t.Errorf("ServiceName(%v, %v) = %q, want %q", tc.uris, tc.dns, got, tc.want)
		}
	}
	if got := tlsconfig.PeerService(context.Background()); got != "" {
		t.Errorf("PeerService without a peer = %q", got)
	}
}
