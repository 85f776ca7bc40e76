package app

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/oklog/ulid/v2"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/structpb"

	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	finopsv1 "github.com/echopilot/echopilot/gen/go/echopilot/finops/v1"
	growthv1 "github.com/echopilot/echopilot/gen/go/echopilot/growth/v1"
	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	tenantdatav1 "github.com/echopilot/echopilot/gen/go/echopilot/tenantdata/v1"
	"github.com/echopilot/echopilot/platform/config"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/service"
	"github.com/echopilot/echopilot/platform/svcauth"
	"github.com/echopilot/echopilot/services/queue/worker"
	"github.com/echopilot/echopilot/services/tenancy/internal/domain"
	"github.com/echopilot/echopilot/services/tenancy/internal/lifecycle"
)

// lifecycleFlags are the peers of exports and erasures.
type lifecycleFlags struct {
	queueAddr, finopsAddr, growthAddr string
	workerTokenFile                   string
}

func (f *lifecycleFlags) bind(l *config.Loader) {
	l.String(&f.queueAddr, "queue-addr", "ECHOPILOT_QUEUE_ADDR", "",
		"queue gRPC address: tenant exports and offboarding run as jobs of tenant default there, and this service's lifecycle worker leases them (empty: both refused)")
	l.String(&f.finopsAddr, "finops-addr", "ECHOPILOT_FINOPS_ADDR", "", "finops gRPC address, read by tenant exports and erasures")
	l.String(&f.growthAddr, "growth-addr", "ECHOPILOT_GROWTH_ADDR", "", "growth gRPC address, read by tenant exports and erasures")
	l.String(&f.workerTokenFile, "lifecycle-worker-token-file", "ECHOPILOT_LIFECYCLE_WORKER_TOKEN_FILE", "",
		"file holding the lifecycle worker's queue token (tenant default, role worker), re-read when it changes; "+
			"with an HS256 secret and no file the worker mints its own")
}

// queueJobs enqueues on the platform queue as this service, for tenant
// default.
type queueJobs struct{ queue queuev1.QueueServiceClient }

func (q queueJobs) Enqueue(ctx context.Context, typ string, payload map[string]any, key string) error {
	p, err := structpb.NewStruct(payload)
	if err != nil {
		return err
	}
	_, err = q.queue.EnqueueJob(ctx, &queuev1.EnqueueJobRequest{
		Type: typ, Payload: p, IdempotencyKey: key, Priority: queuev1.Priority_PRIORITY_HIGH, MaxAttempts: 10,
	})
	return err
}

// workerToken is the lifecycle worker's identity on the queue: tenant
// default, role worker.
func (f *lifecycleFlags) workerToken(cfg service.Config) (svcauth.TokenSource, error) {
	switch {
	case f.workerTokenFile != "":
		return svcauth.File(f.workerTokenFile), nil
	case cfg.HS256Secret != "":
		return svcauth.MintedClaims([]byte(cfg.HS256Secret), identity.Claims{
			Subject: "lifecycle-worker:tenancy", TenantID: identity.DefaultTenant, Roles: []string{"worker"},
		}), nil
	}
	return nil, fmt.Errorf("--queue-addr needs --lifecycle-worker-token-file (ECHOPILOT_LIFECYCLE_WORKER_TOKEN_FILE) or an HS256 secret")
}

// startLifecycle connects the queue and the peers, gives svc its jobs and
// runs the lifecycle worker until shutdown. Without a queue address it
// does nothing: exports and offboarding are refused as unavailable.
func (f *lifecycleFlags) start(ctx context.Context, rt *service.Runtime, svc *domain.Service, st domain.LifecycleStore, auditAddr string) error {
	if f.queueAddr == "" {
		return nil
	}
	tok, err := f.workerToken(rt.Config)
	if err != nil {
		return err
	}
	queueConn, err := rt.DialPeer(f.queueAddr)
	if err != nil {
		return err
	}
	workerConn, err := service.Dial(f.queueAddr, rt.Transport.DialOption(), grpc.WithPerRPCCredentials(svcauth.Credentials(tok)))
	if err != nil {
		return err
	}
	conns := []*grpc.ClientConn{queueConn, workerConn}
	peers := lifecycle.Peers{TenantData: map[string]tenantdatav1.TenantDataServiceClient{
		lifecycle.Queue: tenantdatav1.NewTenantDataServiceClient(queueConn),
	}}
	for _, p := range []struct{ name, addr string }{{lifecycle.FinOps, f.finopsAddr}, {lifecycle.Audit, auditAddr}, {lifecycle.Growth, f.growthAddr}} {
		if p.addr == "" {
			continue
		}
		conn, err := rt.DialPeer(p.addr)
		if err != nil {
			return err
		}
		conns = append(conns, conn)
		peers.TenantData[p.name] = tenantdatav1.NewTenantDataServiceClient(conn)
		switch p.name {
		case lifecycle.FinOps:
			peers.FinOps = finopsv1.NewFinOpsServiceClient(conn)
		case lifecycle.Audit:
			peers.Audit = auditv1.NewAuditServiceClient(conn)
		case lifecycle.Growth:
			peers.Growth = growthv1.NewGrowthServiceClient(conn)
		}
	}
	context.AfterFunc(ctx, func() {
		for _, c := range conns {
			_ = c.Close()
		}
	})
	svc.SetJobs(queueJobs{queue: queuev1.NewQueueServiceClient(queueConn)})

	host, _ := os.Hostname()
	rt.Go("lifecycle-worker", func(ctx context.Context) error {
		self, err := serveSelf(ctx, rt)
		if err != nil {
			return err
		}
		defer self.Close()
		peers.TenantData[lifecycle.Tenancy] = tenantdatav1.NewTenantDataServiceClient(self)
		// No shutdown grace: a job handed back resumes where it stopped.
		w, err := worker.New(queuev1.NewQueueServiceClient(workerConn), lifecycle.NewRunner(st, svc, peers, rt.Decisions.Flush, rt.Log).Handlers(), worker.Config{
			WorkerID: "tenancy-lifecycle-" + host + "-" + ulid.Make().String(), Concurrency: 2, Lease: 30 * time.Second,
			Wait: 10 * time.Second, Log: rt.Log, Host: host,
		})
		if err != nil {
			return err
		}
		_, err = w.Run(ctx)
		return err
	})
	return nil
}

// serveSelf serves this process's own gRPC server on a loopback port too,
// once every service is registered (the server reports them SERVING), and
// dials it with this service's identity: tenancy exports and erases its
// own rows through the same TenantDataService, policy and interceptors as
// every other service's.
func serveSelf(ctx context.Context, rt *service.Runtime) (*grpc.ClientConn, error) {
	for {
		resp, err := rt.Server.Health.Check(ctx, &healthpb.HealthCheckRequest{Service: tenancyv1.TenancyService_ServiceDesc.ServiceName})
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("self listener: %w", err)
	}
	go func() { _ = rt.GRPC().Serve(lis) }()
	// Over TLS the server's certificate names the service (every deployed
	// certificate lists the bare name "tenancy"), not 127.0.0.1.
	return rt.DialPeer(lis.Addr().String(), grpc.WithAuthority("tenancy"))
}
