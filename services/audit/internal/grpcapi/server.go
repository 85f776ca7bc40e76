// Package grpcapi maps AuditService RPCs onto the audit service's parts:
// the ledger (domain), intake and outbound. Handlers only translate:
// request → domain call → response.
package grpcapi

import (
	"cmp"
	"context"
	"encoding/hex"
	"fmt"
	"time"

	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	outboxv1 "github.com/echopilot/echopilot/gen/go/echopilot/outbox/v1"
	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/bodystream"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/outbox"
	"github.com/echopilot/echopilot/platform/page"
	"github.com/echopilot/echopilot/services/audit/internal/domain"
	"github.com/echopilot/echopilot/services/audit/internal/intake"
	"github.com/echopilot/echopilot/services/audit/internal/ledger"
	"github.com/echopilot/echopilot/services/audit/internal/outbound"
	"github.com/echopilot/echopilot/services/audit/internal/webhook"
)

// Server implements auditv1.AuditServiceServer.
type Server struct {
	auditv1.UnimplementedAuditServiceServer
	svc      *domain.Service // the ledger
	intake   *intake.Service
	outbound *outbound.Service
	outbox   *outbox.AdminServer
}

// New returns the gRPC server of the ledger svc, in and out.
func New(svc *domain.Service, in *intake.Service, out *outbound.Service, ob *outbox.AdminServer) *Server {
	return &Server{svc: svc, intake: in, outbound: out, outbox: ob}
}

// Register adds the service to g.
func (s *Server) Register(g *grpc.Server) { auditv1.RegisterAuditServiceServer(g, s) }

// caller reads the caller once, through identity.Require like every
// service, and keeps what this service's domain decides on. The mapping
// stays per service because each domain's Caller holds only the facts its
// rules use (an admin's reach, a service role...).
func caller(ctx context.Context) (domain.Caller, error) {
	c, err := identity.Require(ctx)
	if err != nil {
		return domain.Caller{}, err
	}
	admin := c.IsPlatformAdmin() || (c.Verified && c.TokenTenant == c.Tenant && c.HasRole(identity.RoleAdmin))
	return domain.Caller{Tenant: c.Tenant, Service: c.Service != "", Admin: admin}, nil
}

func (s *Server) GetChain(ctx context.Context, req *auditv1.GetChainRequest) (*auditv1.GetChainResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	var held []byte
	if req.GetCheckpoint() != "" {
		held = []byte(req.GetCheckpoint())
	}
	var full bool
	switch req.GetVerify() {
	case "", domain.ModeIncremental:
	case domain.ModeFull:
		if err := s.svc.AllowFull(c, c.Tenant); err != nil {
			return nil, err
		}
		full = true
	default:
		return nil, apierr.InvalidArgument("VERIFY_MODE_INVALID", "verify must be full or incremental").InDomain(domain.Domain)
	}
	filter, err := domain.ParseFilter(req.GetEventType(), req.GetUser(), req.GetResource(), severityName(req.GetSeverity()),
		req.GetSince(), req.GetUntil())
	if err != nil {
		return nil, err
	}
	var desc bool
	switch req.GetOrder() {
	case "", "asc":
	case "desc":
		desc = true
	default:
		return nil, apierr.InvalidArgument(domain.ReasonFilterInvalid, "order must be asc or desc").InDomain(domain.Domain)
	}
	p, err := s.svc.Chain(ctx, c.Tenant, domain.ChainRequest{Limit: req.GetLimit(), Offset: req.GetOffset(),
		Token: req.GetPageToken(), Held: held, Full: full, Filter: filter, Desc: desc})
	if err != nil {
		return nil, err
	}
	out := &auditv1.GetChainResponse{
		Entries:       make([]*auditv1.Entry, 0, len(p.Entries)),
		Total:         p.Total,
		NextPageToken: p.Next,
		Verification:  toVerification(p.Check),
		Retention:     toRetention(p.Retention),
	}
	for _, e := range p.Entries {
		pe, err := toProto(e)
		if err != nil {
			return nil, err
		}
		out.Entries = append(out.Entries, pe)
	}
	return out, nil
}

// toRetention is nil while retention is off and nothing was deleted.
func toRetention(r domain.Retention) *auditv1.Retention {
	if r.MaxAge == 0 && r.Cut.Size == 0 {
		return nil
	}
	out := &auditv1.Retention{RetainedFromSeq: r.Cut.Size + 1, CutCheckpoint: r.Cut.Checkpoint}
	if r.MaxAge > 0 {
		out.MaxAge = durationpb.New(r.MaxAge)
	}
	if !r.Cut.At.IsZero() {
		out.CutAt = timestamppb.New(r.Cut.At)
	}
	return out
}

// SetRetention sets a tenant's retention: a platform admin's call (the
// policy admits only admins of the default tenant).
func (s *Server) SetRetention(ctx context.Context, req *auditv1.SetRetentionRequest) (*auditv1.SetRetentionResponse, error) {
	var age time.Duration
	if d := req.GetMaxAge(); d != nil {
		if err := d.CheckValid(); err != nil {
			return nil, apierr.InvalidArgument(domain.ReasonRetentionInvalid, "max_age: %v", err).InDomain(domain.Domain)
		}
		age = d.AsDuration()
	}
	r, err := s.svc.SetRetention(ctx, req.GetTargetTenantId(), age)
	if err != nil {
		return nil, err
	}
	out := toRetention(r)
	if out == nil {
		out = &auditv1.Retention{RetainedFromSeq: 1}
	}
	return &auditv1.SetRetentionResponse{Retention: out}, nil
}

func toVerification(v domain.Verification) *auditv1.Verification {
	out := &auditv1.Verification{
		Valid: v.Valid, Entries: v.Entries, FirstInvalidSeq: v.FirstBad, Reason: v.Reason,
		Mode: v.Mode, VerifiedSize: v.VerifiedSize,
	}
	if !v.VerifiedAt.IsZero() {
		out.VerifiedAt = timestamppb.New(v.VerifiedAt)
	}
	if f := v.LastFull; f != nil {
		out.LastFullScrub = &auditv1.FullVerification{At: timestamppb.New(f.At), Valid: f.Valid,
			FirstInvalidSeq: f.FirstBad, Reason: f.Reason}
	}
	return out
}

func (s *Server) AppendEntries(ctx context.Context, req *auditv1.AppendEntriesRequest) (*auditv1.AppendEntriesResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	in := make([]domain.NewEntry, len(req.GetEntries()))
	for i, n := range req.GetEntries() {
		var details []byte
		if n.GetDetails() != nil {
			if details, err = protojson.Marshal(n.GetDetails()); err != nil {
				return nil, fmt.Errorf("details: %w", err)
			}
		}
		in[i] = domain.NewEntry{TenantID: n.GetTenantId(), Key: n.GetIdempotencyKey(), EventType: n.GetEventType(), User: n.GetUser(),
			Action: n.GetAction(), Resource: n.GetResource(), Details: details, Severity: severityName(n.GetSeverity())}
	}
	entries, err := s.svc.Append(ctx, c, in)
	if err != nil {
		return nil, err
	}
	out := &auditv1.AppendEntriesResponse{Entries: make([]*auditv1.Entry, 0, len(entries)),
		Duplicates: int32(len(in) - len(entries))}
	for _, e := range entries {
		pe, err := toProto(e)
		if err != nil {
			return nil, err
		}
		out.Entries = append(out.Entries, pe)
	}
	return out, nil
}

func (s *Server) GetCheckpoint(ctx context.Context, _ *auditv1.GetCheckpointRequest) (*auditv1.GetCheckpointResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	cp, signed, err := s.svc.Checkpoint(ctx, c.Tenant)
	if err != nil {
		return nil, err
	}
	return &auditv1.GetCheckpointResponse{
		TreeSize: cp.Size, RootHash: hex.EncodeToString(cp.Root), Checkpoint: string(signed),
		VerifierKey: s.svc.VerifierKey(),
	}, nil
}

func (s *Server) ListCheckpoints(ctx context.Context, req *auditv1.ListCheckpointsRequest) (*auditv1.ListCheckpointsResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	cps, next, err := s.svc.Checkpoints(ctx, c.Tenant, domain.CheckpointsRequest{
		FromSize: req.GetFrom(), Request: page.Request{PageSize: req.GetPageSize(), PageToken: req.GetPageToken()}})
	if err != nil {
		return nil, err
	}
	out := &auditv1.ListCheckpointsResponse{NextPageToken: next, VerifierKey: s.svc.VerifierKey(),
		Checkpoints: make([]*auditv1.IssuedCheckpoint, 0, len(cps))}
	for _, cp := range cps {
		out.Checkpoints = append(out.Checkpoints, &auditv1.IssuedCheckpoint{
			TreeSize: cp.Checkpoint.Size, RootHash: hex.EncodeToString(cp.Checkpoint.Root),
			Checkpoint: string(cp.Note), IssueTime: timestamppb.New(cp.Time),
		})
	}
	return out, nil
}

func (s *Server) GetInclusionProof(ctx context.Context, req *auditv1.GetInclusionProofRequest) (*auditv1.GetInclusionProofResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	proof, size, leaf, err := s.svc.InclusionProof(ctx, c.Tenant, domain.InclusionRequest{Seq: req.GetSeq(), TreeSize: req.GetTreeSize()})
	if err != nil {
		return nil, err
	}
	return &auditv1.GetInclusionProofResponse{
		LeafIndex: req.GetSeq() - 1, TreeSize: size, Hashes: hexAll(proof), Leaf: hex.EncodeToString(leaf),
	}, nil
}

func (s *Server) GetConsistencyProof(ctx context.Context, req *auditv1.GetConsistencyProofRequest) (*auditv1.GetConsistencyProofResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	proof, size, err := s.svc.ConsistencyProof(ctx, c.Tenant, domain.ConsistencyRequest{FromSize: req.GetFromSize(), ToSize: req.GetToSize()})
	if err != nil {
		return nil, err
	}
	return &auditv1.GetConsistencyProofResponse{FromSize: req.GetFromSize(), ToSize: size, Hashes: hexAll(proof)}, nil
}

func (s *Server) ExportLog(req *auditv1.ExportLogRequest, stream grpc.ServerStreamingServer[httpbody.HttpBody]) error {
	ctx := stream.Context()
	c, err := caller(ctx)
	if err != nil {
		return err
	}
	filter, err := domain.ParseFilter(req.GetEventType(), req.GetUser(), req.GetResource(), severityName(req.GetSeverity()),
		req.GetSince(), req.GetUntil())
	if err != nil {
		return err
	}
	w := bodystream.NewWriter(stream, "application/x-ndjson", "")
	if err := s.svc.Export(ctx, c.Tenant, filter, w); err != nil {
		return err
	}
	return w.Close()
}

func hexAll(hs [][]byte) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = hex.EncodeToString(h)
	}
	return out
}

// toProto shows e. Details that are not a JSON object any more (a
// tampered row) are shown empty: the page must still be served, with the
// verification naming the entry.
func toProto(e ledger.Entry) (*auditv1.Entry, error) {
	var details *structpb.Struct
	if m, err := domain.DetailsJSON(e.Details); err == nil {
		details, _ = structpb.NewStruct(m)
	}
	return &auditv1.Entry{
		Seq: e.Seq, Ts: timestamppb.New(e.TS), EventType: e.EventType, User: e.User, Action: e.Action,
		Resource: e.Resource, Details: details, Severity: severityToProto(e.Severity), Hash: e.Hash, PrevHash: e.PrevHash,
	}, nil
}

func (s *Server) HandleComplianceWebhook(ctx context.Context, req *auditv1.HandleComplianceWebhookRequest) (*auditv1.HandleComplianceWebhookResponse, error) {
	e, dup, err := s.intake.HandleCompliance(ctx, intake.Delivery{
		TenantID: req.GetTenantId(), Payload: req.GetPayload(),
		Headers: webhook.Headers{EchoPilot: req.GetEchopilotSignature(), ID: req.GetWebhookId(),
			Timestamp: req.GetWebhookTimestamp(), Signature: req.GetWebhookSignature()},
	})
	if err != nil {
		return nil, err
	}
	out := &auditv1.HandleComplianceWebhookResponse{Duplicate: dup}
	if !dup {
		if out.Entry, err = toProto(e); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *Server) CreateWebhookSecret(ctx context.Context, _ *auditv1.CreateWebhookSecretRequest) (*auditv1.CreateWebhookSecretResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	sec, err := s.intake.CreateSecret(ctx, c.Tenant)
	if err != nil {
		return nil, err
	}
	return &auditv1.CreateWebhookSecretResponse{Secret: secretProto(sec), Value: sec.Value}, nil
}

func (s *Server) ListWebhookSecrets(ctx context.Context, req *auditv1.ListWebhookSecretsRequest) (*auditv1.ListWebhookSecretsResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	all, next, err := s.intake.Secrets(ctx, c.Tenant, page.Request{PageSize: req.GetPageSize(), PageToken: req.GetPageToken()})
	if err != nil {
		return nil, err
	}
	out := &auditv1.ListWebhookSecretsResponse{NextPageToken: next, Secrets: make([]*auditv1.WebhookSecret, 0, len(all))}
	for _, sec := range all {
		out.Secrets = append(out.Secrets, secretProto(sec))
	}
	return out, nil
}

func (s *Server) RevokeWebhookSecret(ctx context.Context, req *auditv1.RevokeWebhookSecretRequest) (*auditv1.RevokeWebhookSecretResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	sec, err := s.intake.RevokeSecret(ctx, c.Tenant, req.GetSecretId())
	if err != nil {
		return nil, err
	}
	return &auditv1.RevokeWebhookSecretResponse{Secret: secretProto(sec)}, nil
}

func secretProto(sec intake.Secret) *auditv1.WebhookSecret {
	out := &auditv1.WebhookSecret{SecretId: sec.ID, CreateTime: timestamppb.New(sec.Created), Hint: sec.Hint()}
	if !sec.Revoked.IsZero() {
		out.RevokeTime = timestamppb.New(sec.Revoked)
	}
	return out
}

func (s *Server) CreateEndpoint(ctx context.Context, req *auditv1.CreateEndpointRequest) (*auditv1.CreateEndpointResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	ep, err := s.outbound.CreateEndpoint(ctx, c.Tenant, outbound.CreateEndpointRequest{URL: req.GetUrl(),
		Filter: outbound.Filter{EventTypes: req.GetEventTypes(), MinSeverity: severityName(req.GetMinSeverity())}})
	if err != nil {
		return nil, err
	}
	return &auditv1.CreateEndpointResponse{Endpoint: endpointProto(ep), Secret: ep.Secret}, nil
}

func (s *Server) ListEndpoints(ctx context.Context, req *auditv1.ListEndpointsRequest) (*auditv1.ListEndpointsResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	eps, next, err := s.outbound.Endpoints(ctx, c.Tenant, page.Request{PageSize: req.GetPageSize(), PageToken: req.GetPageToken()})
	if err != nil {
		return nil, err
	}
	out := &auditv1.ListEndpointsResponse{NextPageToken: next, Endpoints: make([]*auditv1.Endpoint, 0, len(eps))}
	for _, ep := range eps {
		out.Endpoints = append(out.Endpoints, endpointProto(ep))
	}
	return out, nil
}

func (s *Server) DeleteEndpoint(ctx context.Context, req *auditv1.DeleteEndpointRequest) (*auditv1.DeleteEndpointResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.outbound.DeleteEndpoint(ctx, c.Tenant, req.GetEndpointId()); err != nil {
		return nil, err
	}
	return &auditv1.DeleteEndpointResponse{}, nil
}

func (s *Server) ListDeliveryAttempts(ctx context.Context, req *auditv1.ListDeliveryAttemptsRequest) (*auditv1.ListDeliveryAttemptsResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	as, next, err := s.outbound.Attempts(ctx, c.Tenant, outbound.AttemptsRequest{
		EndpointID: req.GetEndpointId(), Request: page.Request{PageSize: req.GetPageSize(), PageToken: req.GetPageToken()}})
	if err != nil {
		return nil, err
	}
	out := &auditv1.ListDeliveryAttemptsResponse{NextPageToken: next, Attempts: make([]*auditv1.DeliveryAttempt, 0, len(as))}
	for _, a := range as {
		out.Attempts = append(out.Attempts, &auditv1.DeliveryAttempt{
			DeliveryId: a.DeliveryID, EndpointId: a.EndpointID, Seq: a.Seq, Attempt: int32(a.Number),
			AttemptTime: timestamppb.New(a.At), Outcome: a.Outcome, StatusCode: int32(a.StatusCode), Error: a.Error,
		})
	}
	return out, nil
}

func endpointProto(ep outbound.Endpoint) *auditv1.Endpoint {
	out := &auditv1.Endpoint{EndpointId: ep.ID, Url: ep.URL, CreateTime: timestamppb.New(ep.Created),
		Enabled: ep.Disabled.IsZero(), DisabledReason: ep.DisabledReason, EventTypes: ep.EventTypes,
		MinSeverity: severityToProto(cmp.Or(ep.MinSeverity, ledger.SeverityHigh))}
	if !ep.Disabled.IsZero() {
		out.DisableTime = timestamppb.New(ep.Disabled)
	}
	if ep.PrevSecret != "" {
		out.PreviousSecretExpireTime = timestamppb.New(ep.PrevUntil)
	}
	return out
}

func (s *Server) RedeliverDelivery(ctx context.Context, req *auditv1.RedeliverDeliveryRequest) (*auditv1.RedeliverDeliveryResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.outbound.RedeliverDelivery(ctx, c.Tenant, req.GetDeliveryId()); err != nil {
		return nil, err
	}
	return &auditv1.RedeliverDeliveryResponse{}, nil
}

func (s *Server) RedeliverEndpoint(ctx context.Context, req *auditv1.RedeliverEndpointRequest) (*auditv1.RedeliverEndpointResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	n, err := s.outbound.RedeliverEndpoint(ctx, c.Tenant, req.GetEndpointId())
	if err != nil {
		return nil, err
	}
	return &auditv1.RedeliverEndpointResponse{Redelivered: n}, nil
}

func (s *Server) DisableEndpoint(ctx context.Context, req *auditv1.DisableEndpointRequest) (*auditv1.DisableEndpointResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	ep, err := s.outbound.DisableEndpoint(ctx, c.Tenant, req.GetEndpointId(), req.GetReason())
	if err != nil {
		return nil, err
	}
	return &auditv1.DisableEndpointResponse{Endpoint: endpointProto(ep)}, nil
}

func (s *Server) EnableEndpoint(ctx context.Context, req *auditv1.EnableEndpointRequest) (*auditv1.EnableEndpointResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	ep, n, err := s.outbound.EnableEndpoint(ctx, c.Tenant, req.GetEndpointId())
	if err != nil {
		return nil, err
	}
	return &auditv1.EnableEndpointResponse{Endpoint: endpointProto(ep), Redelivered: n}, nil
}

func (s *Server) UpdateEndpoint(ctx context.Context, req *auditv1.UpdateEndpointRequest) (*auditv1.UpdateEndpointResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	ep, err := s.outbound.UpdateEndpoint(ctx, c.Tenant, req.GetEndpointId(),
		outbound.Filter{EventTypes: req.GetEventTypes(), MinSeverity: severityName(req.GetMinSeverity())})
	if err != nil {
		return nil, err
	}
	return &auditv1.UpdateEndpointResponse{Endpoint: endpointProto(ep)}, nil
}

func (s *Server) RotateEndpointSecret(ctx context.Context, req *auditv1.RotateEndpointSecretRequest) (*auditv1.RotateEndpointSecretResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	r := outbound.RotateRequest{ID: req.GetEndpointId(), GraceSeconds: req.GraceSeconds}
	ep, err := s.outbound.RotateSecret(ctx, c.Tenant, r)
	if err != nil {
		return nil, err
	}
	return &auditv1.RotateEndpointSecretResponse{Endpoint: endpointProto(ep), Secret: ep.Secret}, nil
}

// ListDeadEvents lists the outbox's dead letters (platform/outbox).
func (s *Server) ListDeadEvents(ctx context.Context, req *outboxv1.ListDeadEventsRequest) (*outboxv1.ListDeadEventsResponse, error) {
	return s.outbox.ListDeadEvents(ctx, req)
}

// RequeueDeadEvents requeues the outbox's dead letters (platform/outbox).
func (s *Server) RequeueDeadEvents(ctx context.Context, req *outboxv1.RequeueDeadEventsRequest) (*outboxv1.RequeueDeadEventsResponse, error) {
	return s.outbox.RequeueDeadEvents(ctx, req)
}
