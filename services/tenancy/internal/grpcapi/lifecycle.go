package grpcapi

import (
	"context"
	"io"

	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	tenantdatav1 "github.com/echopilot/echopilot/gen/go/echopilot/tenantdata/v1"
	"github.com/echopilot/echopilot/platform/bodystream"
	"github.com/echopilot/echopilot/platform/page"
	"github.com/echopilot/echopilot/services/tenancy/internal/archive"
	"github.com/echopilot/echopilot/services/tenancy/internal/domain"
)

func (s *Server) CreateExport(ctx context.Context, _ *tenancyv1.CreateExportRequest) (*tenancyv1.CreateExportResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	e, err := s.svc.CreateExport(ctx, c, c.Tenant)
	if err != nil {
		return nil, err
	}
	return &tenancyv1.CreateExportResponse{Export: exportToProto(e)}, nil
}

func (s *Server) ListExports(ctx context.Context, req *tenancyv1.ListExportsRequest) (*tenancyv1.ListExportsResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	es, next, err := s.svc.ListExports(ctx, c.Tenant, page.Request{PageSize: req.GetPageSize(), PageToken: req.GetPageToken()})
	if err != nil {
		return nil, err
	}
	out := &tenancyv1.ListExportsResponse{Exports: make([]*tenancyv1.Export, 0, len(es)), NextPageToken: next}
	for _, e := range es {
		out.Exports = append(out.Exports, exportToProto(e))
	}
	return out, nil
}

func (s *Server) GetExport(ctx context.Context, req *tenancyv1.GetExportRequest) (*tenancyv1.GetExportResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	e, err := s.svc.GetExport(ctx, c.Tenant, req.GetExportId())
	if err != nil {
		return nil, err
	}
	return &tenancyv1.GetExportResponse{Export: exportToProto(e)}, nil
}

// DownloadExport streams the archive: manifest.json first, then the files
// in the order they were exported, each read chunk by chunk.
func (s *Server) DownloadExport(req *tenancyv1.DownloadExportRequest, stream grpc.ServerStreamingServer[httpbody.HttpBody]) error {
	ctx := stream.Context()
	c, err := caller(ctx)
	if err != nil {
		return err
	}
	e, files, err := s.svc.ReadyExport(ctx, c.Tenant, req.GetExportId())
	if err != nil {
		return err
	}
	w := bodystream.NewWriter(stream, "application/gzip", e.TenantID+"-"+e.ID+".tar.gz")
	aw := archive.NewWriter(w, e.CreatedAt)
	for _, f := range domain.ArchiveOrder(files) {
		err := aw.Add(f.Name, f.Size, func(out io.Writer) error {
			return s.svc.ReadExportFile(ctx, e.TenantID, e.ID, f.Seq, func(b []byte) error {
				_, err := out.Write(b)
				return err
			})
		})
		if err != nil {
			return err
		}
	}
	if err := aw.Close(); err != nil {
		return err
	}
	return w.Close()
}

func (s *Server) OffboardTenant(ctx context.Context, req *tenancyv1.OffboardTenantRequest) (*tenancyv1.OffboardTenantResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	t, e, err := s.svc.OffboardTenant(ctx, c, domain.Offboard{Tenant: req.GetTargetTenantId(), Reason: req.GetReason(),
		ExportID: req.GetExportId(), SkipExport: req.GetSkipExport()})
	if err != nil {
		return nil, err
	}
	return &tenancyv1.OffboardTenantResponse{Tenant: toProto(t), Erasure: erasureToProto(e)}, nil
}

func (s *Server) GetErasure(ctx context.Context, req *tenancyv1.GetErasureRequest) (*tenancyv1.GetErasureResponse, error) {
	e, err := s.svc.GetErasure(ctx, req.GetTargetTenantId())
	if err != nil {
		return nil, err
	}
	return &tenancyv1.GetErasureResponse{Erasure: erasureToProto(e)}, nil
}

var exportStates = map[domain.ExportState]tenancyv1.ExportState{
	domain.ExportQueued:    tenancyv1.ExportState_EXPORT_STATE_QUEUED,
	domain.ExportRunning:   tenancyv1.ExportState_EXPORT_STATE_RUNNING,
	domain.ExportSucceeded: tenancyv1.ExportState_EXPORT_STATE_SUCCEEDED,
	domain.ExportFailed:    tenancyv1.ExportState_EXPORT_STATE_FAILED,
}

func exportToProto(e domain.Export) *tenancyv1.Export {
	return &tenancyv1.Export{
		ExportId: e.ID, TenantId: e.TenantID, State: exportStates[e.State], RequestedBy: e.RequestedBy,
		CreateTime: timestamppb.New(e.CreatedAt), FinishTime: optTime(e.FinishedAt), Files: e.Files, SizeBytes: e.SizeBytes,
		CurrentFile: e.CurrentFile, Error: e.Error, ManifestSha256: e.ManifestSHA256,
	}
}

func erasureToProto(e domain.Erasure) *tenancyv1.Erasure {
	state := tenancyv1.ErasureState_ERASURE_STATE_RUNNING
	if e.State == domain.ErasureDone {
		state = tenancyv1.ErasureState_ERASURE_STATE_DONE
	}
	out := &tenancyv1.Erasure{
		ErasureId: e.ID, TenantId: e.TenantID, State: state, Reason: e.Reason, RequestedBy: e.RequestedBy,
		ExportId: e.ExportID, ExportSkipped: e.ExportSkipped, Pseudonym: e.Pseudonym,
		CreateTime: timestamppb.New(e.CreatedAt), FinishTime: optTime(e.FinishedAt),
	}
	for _, se := range e.Services {
		ps := &tenancyv1.ServiceErasure{Service: se.Service, Done: se.Done, UpdateTime: optTime(se.UpdatedAt)}
		for _, k := range se.Kinds {
			ps.Kinds = append(ps.Kinds, &tenantdatav1.KindProgress{Kind: k.Kind, Rule: k.Rule, Changed: k.Changed,
				Remaining: k.Remaining, Reason: k.Reason})
		}
		out.Services = append(out.Services, ps)
	}
	return out
}
