// Package grpcapi maps QueueService RPCs onto the domain service. Handlers
// only translate: request → domain call → response.
package grpcapi

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	outboxv1 "github.com/echopilot/echopilot/gen/go/echopilot/outbox/v1"
	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/outbox"
	"github.com/echopilot/echopilot/platform/page"
	"github.com/echopilot/echopilot/services/queue/internal/domain"
)

// Server implements queuev1.QueueServiceServer.
type Server struct {
	queuev1.UnimplementedQueueServiceServer
	svc    *domain.Service
	tokens *domain.Tokens
	limit  *WorkerLimit
	outbox *outbox.AdminServer
}

// New returns the gRPC server of svc and tokens; limit (nil: none) bounds
// each tenant's worker calls; ob serves the outbox repair RPCs.
func New(svc *domain.Service, tokens *domain.Tokens, limit *WorkerLimit, ob *outbox.AdminServer) *Server {
	return &Server{svc: svc, tokens: tokens, limit: limit, outbox: ob}
}

// Register adds the service to g.
func (s *Server) Register(g *grpc.Server) { queuev1.RegisterQueueServiceServer(g, s) }

// tenant is the tenant the call acts in, as the identity layer settled it
// (the caller's own, or the one an admin reads across tenants).
func (s *Server) tenant(ctx context.Context) (string, error) {
	c, err := s.caller(ctx)
	return c.Tenant, err
}

// caller is the verified caller. Every handler reads it here, so a revoked
// or unknown worker token is refused on every method: identity proves the
// signature, only the queue knows of revocations.
func (s *Server) caller(ctx context.Context) (identity.Caller, error) {
	c, err := identity.Require(ctx)
	if err != nil {
		return identity.Caller{}, err
	}
	if c.Verified {
		if err := s.tokens.Check(ctx, c.TokenTenant, c.Subject); err != nil {
			return identity.Caller{}, err
		}
	}
	return c, nil
}

func (s *Server) EnqueueJob(ctx context.Context, req *queuev1.EnqueueJobRequest) (*queuev1.EnqueueJobResponse, error) {
	t, err := s.tenant(ctx)
	if err != nil {
		return nil, err
	}
	j, dup, err := s.svc.Enqueue(ctx, t, enqueueRequest(req))
	if err != nil {
		return nil, err
	}
	return &queuev1.EnqueueJobResponse{JobId: j.ID, Status: statusToProto(j.Status), Duplicate: dup}, nil
}

func (s *Server) EnqueueJobs(ctx context.Context, req *queuev1.EnqueueJobsRequest) (*queuev1.EnqueueJobsResponse, error) {
	t, err := s.tenant(ctx)
	if err != nil {
		return nil, err
	}
	rs := make([]domain.EnqueueRequest, len(req.GetJobs()))
	for i, j := range req.GetJobs() {
		rs[i] = enqueueRequest(j)
	}
	res, err := s.svc.EnqueueBatch(ctx, t, rs)
	if err != nil {
		return nil, err
	}
	out := &queuev1.EnqueueJobsResponse{Jobs: make([]*queuev1.EnqueuedJob, len(res))}
	for i, r := range res {
		out.Jobs[i] = &queuev1.EnqueuedJob{JobId: r.Job.ID, Status: statusToProto(r.Job.Status), Duplicate: r.Duplicate}
	}
	return out, nil
}

// enqueueRequest converts the request for the domain, which validates it.
func enqueueRequest(req *queuev1.EnqueueJobRequest) domain.EnqueueRequest {
	r := domain.EnqueueRequest{
		Type: req.GetType(), Priority: priorityName(req.GetPriority()), IdempotencyKey: req.GetIdempotencyKey(),
		MaxAttempts: req.GetMaxAttempts(),
	}
	if req.GetPayload() != nil {
		r.Payload = req.GetPayload().AsMap()
	}
	if req.GetRunAt() != nil {
		r.RunAt = req.GetRunAt().AsTime()
	}
	return r
}

func (s *Server) GetQueueStatus(ctx context.Context, _ *queuev1.GetQueueStatusRequest) (*queuev1.GetQueueStatusResponse, error) {
	t, err := s.tenant(ctx)
	if err != nil {
		return nil, err
	}
	st, err := s.svc.QueueStatus(ctx, t)
	if err != nil {
		return nil, err
	}
	byPriority := make(map[string]int64, len(st.ByPriority))
	for p, n := range st.ByPriority {
		byPriority[p.String()] = n
	}
	return &queuev1.GetQueueStatusResponse{
		TotalJobs:   st.Total,
		Queued:      st.ByStatus[domain.StatusQueued],
		Processing:  st.ByStatus[domain.StatusProcessing],
		Completed:   st.ByStatus[domain.StatusCompleted],
		Failed:      st.ByStatus[domain.StatusFailed],
		Dead:        st.ByStatus[domain.StatusDead],
		Cancelled:   st.ByStatus[domain.StatusCancelled],
		ByType:      st.ByType,
		ByPriority:  byPriority,
		PausedTypes: pausedToProtos(st.PausedTypes),
	}, nil
}

func (s *Server) GetJob(ctx context.Context, req *queuev1.GetJobRequest) (*queuev1.GetJobResponse, error) {
	t, err := s.tenant(ctx)
	if err != nil {
		return nil, err
	}
	j, err := s.svc.Get(ctx, t, req.GetJobId())
	if err != nil {
		return nil, err
	}
	pj, err := toProto(j)
	if err != nil {
		return nil, err
	}
	return &queuev1.GetJobResponse{Job: pj}, nil
}

func (s *Server) ListJobs(ctx context.Context, req *queuev1.ListJobsRequest) (*queuev1.ListJobsResponse, error) {
	t, err := s.tenant(ctx)
	if err != nil {
		return nil, err
	}
	jobs, next, err := s.svc.List(ctx, t, domain.ListRequest{
		PageSize: req.GetPageSize(), PageToken: req.GetPageToken(), Status: statusName(req.GetStatus()), Type: req.GetType(),
		Priority: priorityName(req.GetPriority()),
	})
	if err != nil {
		return nil, err
	}
	out := &queuev1.ListJobsResponse{Jobs: make([]*queuev1.Job, 0, len(jobs)), NextPageToken: next}
	for _, j := range jobs {
		pj, err := toProto(j)
		if err != nil {
			return nil, err
		}
		out.Jobs = append(out.Jobs, pj)
	}
	return out, nil
}

func (s *Server) CancelJob(ctx context.Context, req *queuev1.CancelJobRequest) (*queuev1.CancelJobResponse, error) {
	pj, err := s.jobCall(ctx, req.GetJobId(), s.svc.Cancel)
	if err != nil {
		return nil, err
	}
	return &queuev1.CancelJobResponse{Job: pj}, nil
}

func (s *Server) LeaseJobs(ctx context.Context, req *queuev1.LeaseJobsRequest) (*queuev1.LeaseJobsResponse, error) {
	t, err := s.workerTenant(ctx)
	if err != nil {
		return nil, err
	}
	done, leases, err := s.svc.LeaseAfter(ctx, t, domain.LeaseRequest{
		WorkerID: req.GetWorkerId(), Types: req.GetTypes(), MaxJobs: req.GetMaxJobs(),
		LeaseSeconds: req.GetLeaseSeconds(), WaitMS: req.GetWaitMs(), WorkerInfo: workerInfo(req.GetWorkerInfo()),
	}, completeRequests(req.GetCompletions()))
	if err != nil {
		return nil, err
	}
	out := &queuev1.LeaseJobsResponse{Leases: make([]*queuev1.Lease, 0, len(leases))}
	if out.CompletionResults, err = completeResults(req.GetCompletions(), done); err != nil {
		return nil, err
	}
	for _, l := range leases {
		pj, err := toProto(l.Job)
		if err != nil {
			return nil, err
		}
		out.Leases = append(out.Leases, &queuev1.Lease{Job: pj, LeaseToken: l.Token})
	}
	return out, nil
}

func (s *Server) Heartbeat(ctx context.Context, req *queuev1.HeartbeatRequest) (*queuev1.HeartbeatResponse, error) {
	t, err := s.workerTenant(ctx)
	if err != nil {
		return nil, err
	}
	res, err := s.svc.Heartbeat(ctx, t, domain.HeartbeatRequest{
		LeaseCall:    leaseCall(req.GetJobId(), req.GetWorkerId(), req.GetLeaseToken()),
		LeaseSeconds: req.GetLeaseSeconds(),
		WorkerInfo:   workerInfo(req.GetWorkerInfo()),
	})
	if err != nil {
		return nil, err
	}
	out := &queuev1.HeartbeatResponse{Cancelled: res.Cancelled}
	if !res.ExpiresAt.IsZero() {
		out.LeaseExpireTime = timestamppb.New(res.ExpiresAt)
	}
	return out, nil
}

func workerInfo(i *queuev1.WorkerInfo) domain.WorkerInfo {
	return domain.WorkerInfo{Version: i.GetVersion(), Host: i.GetHost(), Concurrency: i.GetConcurrency()}
}

func (s *Server) ListWorkers(ctx context.Context, req *queuev1.ListWorkersRequest) (*queuev1.ListWorkersResponse, error) {
	t, err := s.tenant(ctx)
	if err != nil {
		return nil, err
	}
	workers, next, err := s.svc.ListWorkers(ctx, t, page.Request{PageSize: req.GetPageSize(), PageToken: req.GetPageToken()})
	if err != nil {
		return nil, err
	}
	out := &queuev1.ListWorkersResponse{Workers: make([]*queuev1.Worker, len(workers)), NextPageToken: next}
	for i, w := range workers {
		out.Workers[i] = &queuev1.Worker{
			WorkerId: w.ID, Version: w.Info.Version, Host: w.Info.Host, Concurrency: w.Info.Concurrency,
			FirstSeen: timestamppb.New(w.FirstSeen), LastSeen: timestamppb.New(w.LastSeen),
			LeasesHeld: int32(w.LeasesHeld), Stale: w.Stale,
		}
	}
	return out, nil
}

func (s *Server) CompleteJob(ctx context.Context, req *queuev1.CompleteJobRequest) (*queuev1.CompleteJobResponse, error) {
	t, err := s.workerTenant(ctx)
	if err != nil {
		return nil, err
	}
	j, err := s.svc.Complete(ctx, t, completeRequest(req))
	if err != nil {
		return nil, err
	}
	pj, err := toProto(j)
	if err != nil {
		return nil, err
	}
	return &queuev1.CompleteJobResponse{Job: pj}, nil
}

// CompleteJobs completes a batch in one transaction. A refused completion
// is reported in its result; only an internal failure fails the call.
func (s *Server) CompleteJobs(ctx context.Context, req *queuev1.CompleteJobsRequest) (*queuev1.CompleteJobsResponse, error) {
	t, err := s.workerTenant(ctx)
	if err != nil {
		return nil, err
	}
	done, err := s.svc.CompleteMany(ctx, t, completeRequests(req.GetCompletions()))
	if err != nil {
		return nil, err
	}
	results, err := completeResults(req.GetCompletions(), done)
	if err != nil {
		return nil, err
	}
	return &queuev1.CompleteJobsResponse{Results: results}, nil
}

func completeRequests(cs []*queuev1.CompleteJobRequest) []domain.CompleteRequest {
	rs := make([]domain.CompleteRequest, len(cs))
	for i, c := range cs {
		rs[i] = completeRequest(c)
	}
	return rs
}

// completeResults reports each completion's outcome: the job, or the
// refusal's reason and message.
func completeResults(cs []*queuev1.CompleteJobRequest, done []domain.Completed) ([]*queuev1.CompleteJobResult, error) {
	if len(done) == 0 {
		return nil, nil
	}
	out := make([]*queuev1.CompleteJobResult, len(done))
	for i, d := range done {
		res := &queuev1.CompleteJobResult{JobId: cs[i].GetJobId()}
		out[i] = res
		if e, ok := apierr.As(d.Err); ok {
			res.Reason, res.Message = e.Reason, e.Message
			continue
		}
		var err error
		if res.Job, err = toProto(d.Job); err != nil {
			return nil, err
		}
		res.Completed = true
	}
	return out, nil
}

func completeRequest(req *queuev1.CompleteJobRequest) domain.CompleteRequest {
	r := domain.CompleteRequest{LeaseCall: leaseCall(req.GetJobId(), req.GetWorkerId(), req.GetLeaseToken())}
	if req.GetResult() != nil {
		r.Result = req.GetResult().AsMap()
	}
	if u := req.GetUsage(); u != nil {
		r.Usage = domain.Usage{
			Model: u.GetModel(), InputTokens: u.GetInputTokens(), OutputTokens: u.GetOutputTokens(), DurationMS: u.GetDurationMs(),
		}
	}
	return r
}

func (s *Server) FailJob(ctx context.Context, req *queuev1.FailJobRequest) (*queuev1.FailJobResponse, error) {
	t, err := s.workerTenant(ctx)
	if err != nil {
		return nil, err
	}
	j, err := s.svc.Fail(ctx, t, domain.FailRequest{
		LeaseCall: leaseCall(req.GetJobId(), req.GetWorkerId(), req.GetLeaseToken()),
		Error:     req.GetError(), Retryable: req.GetRetryable(),
	})
	if err != nil {
		return nil, err
	}
	pj, err := toProto(j)
	if err != nil {
		return nil, err
	}
	return &queuev1.FailJobResponse{Job: pj}, nil
}

func leaseCall(jobID, workerID string, token int64) domain.LeaseCall {
	return domain.LeaseCall{JobID: jobID, WorkerID: workerID, Token: token}
}

// toProto converts a stored job. Its payload and result were encoded from
// Structs, so failing to decode them is a server fault, reported as internal.
func toProto(j domain.Job) (*queuev1.Job, error) {
	out := &queuev1.Job{
		JobId: j.ID, TenantId: j.TenantID, Type: j.Type, Priority: priorityToProto(j.Priority), Status: statusToProto(j.Status),
		IdempotencyKey: j.IdempotencyKey, Attempts: int32(j.Attempts), MaxAttempts: int32(j.MaxAttempts),
		RunAt: timestamppb.New(j.RunAt), CreateTime: timestamppb.New(j.CreatedAt), UpdateTime: timestamppb.New(j.UpdatedAt),
		LastError: j.LastError, RetriedBy: j.RetriedBy, CancelledBy: j.CancelledBy,
	}
	if !j.RetriedAt.IsZero() {
		out.RetryTime = timestamppb.New(j.RetriedAt)
	}
	var err error
	if out.Payload, err = toStruct(j.Payload); err != nil {
		return nil, fmt.Errorf("job %s payload: %w", j.ID, err)
	}
	if j.Result != nil {
		if out.Result, err = toStruct(j.Result); err != nil {
			return nil, fmt.Errorf("job %s result: %w", j.ID, err)
		}
	}
	// The contract shows the lease owner and deadline only while they hold.
	if j.Status == domain.StatusProcessing {
		out.WorkerId = j.WorkerID
		out.LeaseExpireTime = timestamppb.New(j.LeaseExpiresAt)
	}
	if j.Status == domain.StatusCompleted {
		out.Usage = &queuev1.Usage{
			Model: j.Usage.Model, InputTokens: j.Usage.InputTokens, OutputTokens: j.Usage.OutputTokens, DurationMs: j.Usage.DurationMS,
		}
	}
	return out, nil
}

func toStruct(raw []byte) (*structpb.Struct, error) {
	s := &structpb.Struct{}
	if err := protojson.Unmarshal(raw, s); err != nil {
		return nil, err
	}
	return s, nil
}

// ListDeadEvents lists the outbox's dead letters (platform/outbox).
func (s *Server) ListDeadEvents(ctx context.Context, req *outboxv1.ListDeadEventsRequest) (*outboxv1.ListDeadEventsResponse, error) {
	return s.outbox.ListDeadEvents(ctx, req)
}

// RequeueDeadEvents requeues the outbox's dead letters (platform/outbox).
func (s *Server) RequeueDeadEvents(ctx context.Context, req *outboxv1.RequeueDeadEventsRequest) (*outboxv1.RequeueDeadEventsResponse, error) {
	return s.outbox.RequeueDeadEvents(ctx, req)
}
