package service

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/echopilot/echopilot/platform/tlsconfig"
	"github.com/echopilot/echopilot/platform/tlsconfig/devca"
)

func TestStaticTarget(t *testing.T) {
	if got := StaticTarget("127.0.0.1:9101"); got != "127.0.0.1:9101" {
		t.Errorf("one address = %q", got)
	}
	if got := StaticTarget("127.0.0.1:9101", "127.0.0.1:9111"); got != "static:///127.0.0.1:9101,127.0.0.1:9111" {
		t.Errorf("two addresses = %q", got)
	}
	for _, bad := range []string{"", "127.0.0.1:9101,", "127.0.0.1", "127.0.0.1:9101,127.0.0.1:9101", ":9101"} {
		if _, err := parseStatic(bad); err == nil {
			t.Errorf("parseStatic(%q) accepted", bad)
		}
	}
}

// replica is a gRPC health server over TLS with a certificate for host
// only, counting the calls it answers.
type replica struct {
	addr  string
	calls atomic.Int64
	srv   *grpc.Server
}

func startReplica(t *testing.T, ca *devca.CA, host string) *replica {
	t.Helper()
	p, err := ca.WriteLeaf(t.TempDir(), "svc", devca.Leaf{Service: "svc", Hosts: []string{host}})
	if err != nil {
		t.Fatal(err)
	}
	rl, err := tlsconfig.New(tlsconfig.Files{CertFile: p.Cert, KeyFile: p.Key}, tlsconfig.Options{})
	if err != nil {
		t.Fatal(err)
	}
	creds, err := rl.ServerCredentials(tlsconfig.NoClientCert)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	r := &replica{addr: net.JoinHostPort(host, port)}
	r.srv = grpc.NewServer(grpc.Creds(creds), grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		r.calls.Add(1)
		return h(ctx, req)
	}))
	healthpb.RegisterHealthServer(r.srv, health.NewServer())
	go r.srv.Serve(l)
	t.Cleanup(r.srv.Stop)
	return r
}

// A static target spreads calls over every listed replica, verifies each
// one's certificate against its own host, and routes around one that stops.
func TestStaticTargetBalancesOverTLS(t *testing.T) {
	dir := t.TempDir()
	ca, err := devca.New("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	caFile, err := ca.WriteCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	// The second replica's certificate names localhost only: it is accepted
	// only if its own address, not the first one's, is what TLS checks.
	a, b := startReplica(t, ca, "127.0.0.1"), startReplica(t, ca, "localhost")
	client, err := tlsconfig.New(tlsconfig.Files{CAFile: caFile}, tlsconfig.Options{})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := Dial(StaticTarget(a.addr, b.addr), grpc.WithTransportCredentials(client.ClientCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	check := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
		return err
	}
	// Calls go to the first replica that is ready until the other connects.
	for deadline := time.Now().Add(5 * time.Second); a.calls.Load() == 0 || b.calls.Load() == 0; {
		if err := check(); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("calls = %d and %d, want both replicas used", a.calls.Load(), b.calls.Load())
		}
	}

	// A call already on the stopping replica's connection may fail; after
	// that, every call goes to the other one.
	a.srv.Stop()
	for deadline := time.Now().Add(5 * time.Second); check() != nil; {
		if time.Now().After(deadline) {
			t.Fatal("no call succeeded within 5 s of one replica stopping")
		}
	}
	before := b.calls.Load()
	for i := 0; i < 10; i++ {
		if err := check(); err != nil {
			t.Fatalf("call %d with one replica down: %v", i, err)
		}
	}
	if got := b.calls.Load() - before; got != 10 {
		t.Fatalf("remaining replica answered %d of 10 calls", got)
	}
}
