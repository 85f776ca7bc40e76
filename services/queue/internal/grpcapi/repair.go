package grpcapi

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	"github.com/echopilot/echopilot/platform/page"
	"github.com/echopilot/echopilot/services/queue/internal/domain"
)

// jobCall runs a change of one job in the caller's tenant, recording the
// caller, and returns the job.
func (s *Server) jobCall(ctx context.Context, id string, change func(context.Context, string, domain.JobCall) (domain.Job, error)) (*queuev1.Job, error) {
	c, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	j, err := change(ctx, c.Tenant, domain.JobCall{JobID: id, Actor: c.Subject})
	if err != nil {
		return nil, err
	}
	return toProto(j)
}

func (s *Server) RetryJob(ctx context.Context, req *queuev1.RetryJobRequest) (*queuev1.RetryJobResponse, error) {
	pj, err := s.jobCall(ctx, req.GetJobId(), s.svc.Retry)
	if err != nil {
		return nil, err
	}
	return &queuev1.RetryJobResponse{Job: pj}, nil
}

func (s *Server) DeleteJob(ctx context.Context, req *queuev1.DeleteJobRequest) (*queuev1.DeleteJobResponse, error) {
	pj, err := s.jobCall(ctx, req.GetJobId(), s.svc.Delete)
	if err != nil {
		return nil, err
	}
	return &queuev1.DeleteJobResponse{Job: pj}, nil
}

func (s *Server) BulkJobs(ctx context.Context, req *queuev1.BulkJobsRequest) (*queuev1.BulkJobsResponse, error) {
	c, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	f := req.GetFilter()
	r := domain.BulkRequest{
		Action: actionName(req.GetAction()), Type: f.GetType(), Priority: priorityName(f.GetPriority()),
		DryRun: req.GetDryRun(), Limit: req.GetLimit(), Actor: c.Subject,
	}
	for _, st := range f.GetStatuses() {
		r.Statuses = append(r.Statuses, statusName(st))
	}
	if f.GetCreatedAfter() != nil {
		r.CreatedAfter = f.GetCreatedAfter().AsTime()
	}
	if f.GetCreatedBefore() != nil {
		r.CreatedBefore = f.GetCreatedBefore().AsTime()
	}
	res, err := s.svc.Bulk(ctx, c.Tenant, r)
	if err != nil {
		return nil, err
	}
	return &queuev1.BulkJobsResponse{Matched: res.Matched, Affected: res.Affected, Remaining: res.Remaining, DryRun: res.DryRun}, nil
}

func (s *Server) ListJobAttempts(ctx context.Context, req *queuev1.ListJobAttemptsRequest) (*queuev1.ListJobAttemptsResponse, error) {
	t, err := s.tenant(ctx)
	if err != nil {
		return nil, err
	}
	attempts, next, err := s.svc.Attempts(ctx, t, domain.AttemptsRequest{
		JobID: req.GetJobId(), Request: page.Request{PageSize: req.GetPageSize(), PageToken: req.GetPageToken()},
	})
	if err != nil {
		return nil, err
	}
	out := &queuev1.ListJobAttemptsResponse{Attempts: make([]*queuev1.JobAttempt, len(attempts)), NextPageToken: next}
	for i, a := range attempts {
		pa := &queuev1.JobAttempt{
			Attempt: int32(a.Number), WorkerId: a.WorkerID, LeaseToken: a.LeaseToken,
			StartTime: timestamppb.New(a.StartedAt), Outcome: outcomes[a.Outcome], Error: a.Error,
		}
		if !a.EndedAt.IsZero() {
			pa.EndTime = timestamppb.New(a.EndedAt)
		}
		out.Attempts[i] = pa
	}
	return out, nil
}

func (s *Server) PauseJobType(ctx context.Context, req *queuev1.PauseJobTypeRequest) (*queuev1.PauseJobTypeResponse, error) {
	c, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	p, err := s.svc.Pause(ctx, c.Tenant, domain.TypeCall{Type: req.GetJobType(), Actor: c.Subject})
	if err != nil {
		return nil, err
	}
	return &queuev1.PauseJobTypeResponse{PausedType: pausedToProto(p)}, nil
}

func (s *Server) ResumeJobType(ctx context.Context, req *queuev1.ResumeJobTypeRequest) (*queuev1.ResumeJobTypeResponse, error) {
	c, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	resumed, err := s.svc.Resume(ctx, c.Tenant, domain.TypeCall{Type: req.GetJobType(), Actor: c.Subject})
	if err != nil {
		return nil, err
	}
	return &queuev1.ResumeJobTypeResponse{Resumed: resumed}, nil
}

func (s *Server) ListPausedJobTypes(ctx context.Context, req *queuev1.ListPausedJobTypesRequest) (*queuev1.ListPausedJobTypesResponse, error) {
	t, err := s.tenant(ctx)
	if err != nil {
		return nil, err
	}
	types, next, err := s.svc.PausedTypes(ctx, t, page.Request{PageSize: req.GetPageSize(), PageToken: req.GetPageToken()})
	if err != nil {
		return nil, err
	}
	return &queuev1.ListPausedJobTypesResponse{PausedTypes: pausedToProtos(types), NextPageToken: next}, nil
}

func pausedToProto(p domain.PausedType) *queuev1.PausedJobType {
	return &queuev1.PausedJobType{JobType: p.Type, PauseTime: timestamppb.New(p.PausedAt), PausedBy: p.PausedBy}
}

func pausedToProtos(types []domain.PausedType) []*queuev1.PausedJobType {
	out := make([]*queuev1.PausedJobType, len(types))
	for i, p := range types {
		out[i] = pausedToProto(p)
	}
	return out
}
