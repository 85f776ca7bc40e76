// Package lifecycle runs tenancy's jobs on the platform queue: a tenant
// export (every service's TenantData, the audit log export and the finops
// and growth CSVs into one stored archive) and an offboarded tenant's
// erasure (every service's EraseTenantData, in batches). Both resume where
// a restarted worker left them.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	finopsv1 "github.com/echopilot/echopilot/gen/go/echopilot/finops/v1"
	growthv1 "github.com/echopilot/echopilot/gen/go/echopilot/growth/v1"
	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	tenantdatav1 "github.com/echopilot/echopilot/gen/go/echopilot/tenantdata/v1"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/services/queue/worker"
	"github.com/echopilot/echopilot/services/tenancy/internal/domain"
)

// Service names, as their TenantData clients are keyed.
const (
	Tenancy = "tenancy"
	FinOps  = "finops"
	Audit   = "audit"
	Queue   = "queue"
	Growth  = "growth"
)

var (
	// exportOrder is the order of the services' files in an archive.
	exportOrder = []string{Tenancy, FinOps, Audit, Queue, Growth}
	// eraseOrder erases the services whose work feeds others first (queue
	// jobs report usage to finops), audit after every service that writes
	// to it, and tenancy, which runs the erasure, last.
	eraseOrder = []string{Queue, Growth, FinOps, Audit, Tenancy}
)

// Peers are the services the jobs call, each with this service's identity
// acting for the tenant (service delegation).
type Peers struct {
	// TenantData by service name; a missing one fails the job for good.
	TenantData map[string]tenantdatav1.TenantDataServiceClient
	Audit      auditv1.AuditServiceClient
	FinOps     finopsv1.FinOpsServiceClient
	Growth     growthv1.GrowthServiceClient
}

// Runner runs the lifecycle jobs.
type Runner struct {
	store domain.LifecycleStore
	svc   *domain.Service
	peers Peers
	// flushDecisions stores this process's access decisions made so far
	// (their audited denials go to the outbox).
	flushDecisions func(context.Context) error
	log            *zap.Logger
	now            func() time.Time
	// pendingPoll spaces the checks of the outbox before audit's erasure.
	pendingPoll time.Duration
}

// NewRunner returns the runner of svc's jobs over store; flushDecisions
// stores the access decisions this process holds in memory.
func NewRunner(store domain.LifecycleStore, svc *domain.Service, peers Peers, flushDecisions func(context.Context) error, log *zap.Logger) *Runner {
	return &Runner{store: store, svc: svc, peers: peers, flushDecisions: flushDecisions, log: log, now: time.Now,
		pendingPoll: 200 * time.Millisecond}
}

// Handlers are the queue worker's handlers by job type.
func (r *Runner) Handlers() map[string]worker.Handler {
	return map[string]worker.Handler{
		domain.JobTypeExport: worker.HandlerFunc(r.runExport),
		domain.JobTypeErase:  worker.HandlerFunc(r.runErase),
	}
}

// payloadID reads the one id a job's payload carries.
func payloadID(job *queuev1.Job, field string) (string, error) {
	id := job.GetPayload().GetFields()[field].GetStringValue()
	if id == "" {
		return "", worker.Permanent(fmt.Errorf("%s: payload has no %q", job.GetType(), field))
	}
	return id, nil
}

// actFor makes a call act for tenant.
func actFor(ctx context.Context, tenant string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, identity.MDTenant, tenant)
}

// classify marks a peer's error: what may pass by itself is retried, the
// rest (a refused call, a bad request) fails the job for good.
func classify(what string, err error) error {
	code := status.Code(err)
	err = fmt.Errorf("%s: %w", what, err)
	switch code {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted,
		codes.Internal, codes.Unknown, codes.Canceled:
		return worker.Retryable(err)
	}
	return worker.Permanent(err)
}

// scrub replaces tenant's id in err's text by "<tenant>", keeping its
// retry decision: job errors are stored with the platform's own jobs, and
// an erased tenant's id must not outlive it there.
func scrub(err error, tenant string) error {
	if err == nil || !strings.Contains(err.Error(), tenant) {
		return err
	}
	clean := errors.New(strings.ReplaceAll(err.Error(), tenant, "<tenant>"))
	if worker.IsRetryable(err) {
		return worker.Retryable(clean)
	}
	return worker.Permanent(clean)
}

// lastAttempt reports whether a job failing with err is not tried again.
func lastAttempt(job *queuev1.Job, err error) bool {
	return !worker.IsRetryable(err) || job.GetAttempts() >= job.GetMaxAttempts()
}

func (r *Runner) tenantData(service string) (tenantdatav1.TenantDataServiceClient, error) {
	c := r.peers.TenantData[service]
	if c == nil {
		return nil, worker.Permanent(fmt.Errorf("no address of service %s is configured", service))
	}
	return c, nil
}
