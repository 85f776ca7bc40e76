// Package tenantlifecycle tests a tenant's export, offboarding and erasure
// across the five real services, in-process on loopback ports: tenancy's
// lifecycle worker leasing the jobs from the real queue and calling every
// service's TenantDataService and exports.
package tenantlifecycle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/echopilot/echopilot/gateway/internal/backendtest"
	"github.com/echopilot/echopilot/gateway/internal/gateway"
	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	finopsv1 "github.com/echopilot/echopilot/gen/go/echopilot/finops/v1"
	growthv1 "github.com/echopilot/echopilot/gen/go/echopilot/growth/v1"
	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/platform/store/storetest"
)

var (
	as      = servicetest.As
	wantErr = servicetest.WantErr
)

// stack is the five services' clients.
type stack struct {
	l       *backendtest.Lifecycle
	tenancy tenancyv1.TenancyServiceClient
	queue   queuev1.QueueServiceClient
	finops  finopsv1.FinOpsServiceClient
	audit   auditv1.AuditServiceClient
	growth  growthv1.GrowthServiceClient
}

func (s *stack) connect() {
	s.tenancy = tenancyv1.NewTenancyServiceClient(s.l.Conns["tenancy"])
	s.queue = queuev1.NewQueueServiceClient(s.l.Conns["queue"])
	s.finops = finopsv1.NewFinOpsServiceClient(s.l.Conns["finops"])
	s.audit = auditv1.NewAuditServiceClient(s.l.Conns["audit"])
	s.growth = growthv1.NewGrowthServiceClient(s.l.Conns["growth"])
}

// fixture creates rows of tenant in every service and returns a marker of
// each service's rows that its files in an export must contain.
func fixture(t *testing.T, s *stack, tenant string) map[string]string {
	t.Helper()
	admin := as(t, tenant, "admin")
	marker := map[string]string{}
	key, err := s.tenancy.CreateAPIKey(admin, &tenancyv1.CreateAPIKeyRequest{TenantId: tenant, Name: "fixture-key-" + tenant})
	if err != nil {
		t.Fatal(err)
	}
	marker["tenancy"] = key.GetApiKey().GetKeyId()
	marker["finops"] = "fixture-usage-" + tenant
	if _, err := s.finops.RecordUsage(servicetest.AsService(t, "queue", tenant), &finopsv1.RecordUsageRequest{
		Records: []*finopsv1.UsageRecord{{JobId: marker["finops"], JobType: "ai_task", Model: "gpt-4o-mini", InputTokens: 10,
			OutputTokens: 5, CompletedAt: timestamppb.Now()}},
	}); err != nil {
		t.Fatal(err)
	}
	marker["audit"] = "fixture-resource-" + tenant
	if _, err := s.audit.AppendEntries(servicetest.AsService(t, "growth", tenant), &auditv1.AppendEntriesRequest{
		Entries: []*auditv1.NewEntry{{EventType: "fixture.event", User: "u@" + tenant, Action: "create", Resource: marker["audit"]}},
	}); err != nil {
		t.Fatal(err)
	}
	marker["queue"] = "fixture-job-" + tenant
	payload, _ := structpb.NewStruct(map[string]any{"marker": marker["queue"]})
	if _, err := s.queue.EnqueueJob(admin, &queuev1.EnqueueJobRequest{Type: "report_gen", Payload: payload, IdempotencyKey: marker["queue"]}); err != nil {
		t.Fatal(err)
	}
	marker["growth"] = "fixture-referrer-" + tenant
	if _, err := s.growth.CreateReferral(admin, &growthv1.CreateReferralRequest{ReferrerId: marker["growth"]}); err != nil {
		t.Fatal(err)
	}
	return marker
}

// bulkJobs gives tenant about 5 MiB of queued jobs: several chunks of one
// file in an export, and several batches of an erasure.
func bulkJobs(t *testing.T, s *stack, tenant string) {
	t.Helper()
	pad := strings.Repeat("x", 8<<10)
	for b := range 6 {
		req := &queuev1.EnqueueJobsRequest{}
		for i := range 100 {
			p, _ := structpb.NewStruct(map[string]any{"pad": pad, "n": float64(b*100 + i)})
			req.Jobs = append(req.Jobs, &queuev1.EnqueueJobRequest{Type: "bulk_job", Payload: p})
		}
		if _, err := s.queue.EnqueueJobs(as(t, tenant, "admin"), req); err != nil {
			t.Fatal(err)
		}
	}
}

// export creates an export of tenant as a platform admin and returns it
// once it succeeded.
func export(t *testing.T, s *stack, tenant string) *tenancyv1.Export {
	t.Helper()
	res, err := s.tenancy.CreateExport(as(t, identity.DefaultTenant, "admin"), &tenancyv1.CreateExportRequest{TenantId: tenant})
	if err != nil {
		t.Fatal(err)
	}
	return waitExport(t, s, tenant, res.GetExport().GetExportId(), func(e *tenancyv1.Export) bool {
		return e.GetState() == tenancyv1.ExportState_EXPORT_STATE_SUCCEEDED
	})
}

// waitExport polls the export (at most 60 s) until done says so; a failed
// export fails the test.
func waitExport(t *testing.T, s *stack, tenant, id string, done func(*tenancyv1.Export) bool) *tenancyv1.Export {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := s.tenancy.GetExport(as(t, identity.DefaultTenant, "admin"), &tenancyv1.GetExportRequest{TenantId: tenant, ExportId: id})
		if err != nil {
			t.Fatal(err)
		}
		e := res.GetExport()
		if done(e) {
			return e
		}
		if e.GetState() == tenancyv1.ExportState_EXPORT_STATE_FAILED {
			t.Fatalf("export failed: %s", e.GetError())
		}
		if time.Now().After(deadline) {
			t.Fatalf("export after 60s: %v", e)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// gatewayFor serves the REST gateway in front of the stack's tenancy.
func gatewayFor(t *testing.T, s *stack) string {
	t.Helper()
	var backends []gateway.Backend
	for _, b := range gateway.Backends() {
		if b.Name == "tenancy" {
			b.Conn = s.l.Conns["tenancy"]
			backends = append(backends, b)
		}
	}
	gw, err := gateway.New(t.Context(), gateway.Config{MaxBodyBytes: 64 << 10, CallTimeout: 10 * time.Second}, backends, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	t.Cleanup(func() {
		srv.Close()
		gw.Close()
	})
	return srv.URL
}

func bearer(t *testing.T, tenant string, roles ...string) string {
	t.Helper()
	tok, err := identity.MintHS256([]byte(servicetest.Secret), identity.Claims{Subject: "u@" + tenant, TenantID: tenant, Roles: roles}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// call makes a JSON call to the gateway and decodes the answer.
func call(t *testing.T, base, method, path, token, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

type archiveFile struct {
	name string
	data []byte
}

// download reads an export's archive over gRPC.
func download(t *testing.T, s *stack, ctx context.Context, e *tenancyv1.Export) []archiveFile {
	t.Helper()
	return untar(t, downloadRaw(t, s, ctx, e))
}

// downloadRaw reads an export's archive over gRPC as it comes.
func downloadRaw(t *testing.T, s *stack, ctx context.Context, e *tenancyv1.Export) []byte {
	t.Helper()
	// A stream names its tenant in metadata (the identity layer decides
	// before the request arrives).
	ctx = metadata.AppendToOutgoingContext(ctx, identity.MDTenant, e.GetTenantId())
	stream, err := s.tenancy.DownloadExport(ctx, &tenancyv1.DownloadExportRequest{TenantId: e.GetTenantId(), ExportId: e.GetExportId()})
	if err != nil {
		t.Fatal(err)
	}
	var raw bytes.Buffer
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if msg.GetContentType() != "application/gzip" {
			t.Fatalf("content type %q", msg.GetContentType())
		}
		raw.Write(msg.GetData())
	}
	if h, _ := stream.Header(); !strings.Contains(strings.Join(h.Get("content-disposition"), ""), e.GetTenantId()+"-"+e.GetExportId()+".tar.gz") {
		t.Errorf("content-disposition = %v", h.Get("content-disposition"))
	}
	return raw.Bytes()
}

// untar reads the files of a tar.gz archive.
func untar(t *testing.T, raw []byte) []archiveFile {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var out []archiveFile
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, archiveFile{hdr.Name, data})
	}
}

type manifest struct {
	TenantID string `json:"tenant_id"`
	ExportID string `json:"export_id"`
	Created  string `json:"created"`
	Files    []struct {
		Name   string `json:"name"`
		Size   int64  `json:"size"`
		SHA256 string `json:"sha256"`
		Rows   int64  `json:"rows"`
	} `json:"files"`
}

// checkArchive checks the manifest against the files and the export, and
// that every marker is in a file of its service.
func checkArchive(t *testing.T, e *tenancyv1.Export, files []archiveFile, markers map[string]string) manifest {
	t.Helper()
	if len(files) == 0 || files[0].name != "manifest.json" {
		t.Fatalf("archive does not start with manifest.json: %d files", len(files))
	}
	sum := sha256.Sum256(files[0].data)
	if hex.EncodeToString(sum[:]) != e.GetManifestSha256() {
		t.Errorf("manifest sha256 %x, export says %s", sum, e.GetManifestSha256())
	}
	var m manifest
	if err := json.Unmarshal(files[0].data, &m); err != nil {
		t.Fatal(err)
	}
	if m.TenantID != e.GetTenantId() || m.ExportID != e.GetExportId() || len(m.Files) != len(files)-1 {
		t.Fatalf("manifest %+v for %d files", m, len(files)-1)
	}
	var size int64 = int64(len(files[0].data))
	for i, f := range m.Files {
		got := files[i+1]
		sum := sha256.Sum256(got.data)
		if got.name != f.Name || int64(len(got.data)) != f.Size || hex.EncodeToString(sum[:]) != f.SHA256 {
			t.Errorf("file %d: %s of %d bytes (%x), manifest says %s of %d (%s)", i+1, got.name, len(got.data), sum, f.Name, f.Size, f.SHA256)
		}
		size += f.Size
	}
	if e.GetFiles() != int32(len(files)) || e.GetSizeBytes() != size {
		t.Errorf("export says %d files of %d bytes, the archive has %d of %d", e.GetFiles(), e.GetSizeBytes(), len(files), size)
	}
	for _, want := range []string{"audit/log.jsonl", "finops/costs.csv", "growth/payouts.csv"} {
		if !hasFile(files, want) {
			t.Errorf("archive has no %s", want)
		}
	}
	for svc, marker := range markers {
		found := false
		for _, f := range files {
			if strings.HasPrefix(f.name, svc+"/") && strings.HasSuffix(f.name, ".jsonl") && bytes.Contains(f.data, []byte(marker)) {
				found = true
			}
		}
		if !found {
			t.Errorf("no %s file holds %q: %v", svc, marker, names(files))
		}
	}
	return m
}

func hasFile(files []archiveFile, name string) bool {
	for _, f := range files {
		if f.name == name {
			return true
		}
	}
	return false
}

func names(files []archiveFile) []string {
	var out []string
	for _, f := range files {
		out = append(out, fmt.Sprintf("%s(%d)", f.name, len(f.data)))
	}
	return out
}

// A tenant's export collects every service's rows into one archive whose
// manifest names each file's SHA-256; an export interrupted by a stopped
// service and a restarted worker resumes into the same archive; the tenant
// cannot be offboarded without it; offboarding erases it from every
// service, deletes it and refuses its writes, and leaves another tenant
// whole.
func TestExportOffboardErase(t *testing.T) {
	for _, db := range storetest.Backends() {
		t.Run(db.Name, func(t *testing.T) {
			s := &stack{l: backendtest.StartLifecycle(t, db, nil)}
			s.connect()
			platform := as(t, identity.DefaultTenant, "admin")
			for _, id := range []string{"acme", "globex"} {
				if _, err := s.tenancy.CreateTenant(platform, &tenancyv1.CreateTenantRequest{Tenant: &tenancyv1.Tenant{TenantId: id}}); err != nil {
					t.Fatal(err)
				}
			}
			acme, globex := fixture(t, s, "acme"), fixture(t, s, "globex")
			bulkJobs(t, s, "acme")

			// Through the gateway: a tenant admin starts its export, lists
			// it and downloads the archive gRPC serves.
			gw := gatewayFor(t, s)
			acmeToken := bearer(t, "acme", "admin")
			code, body := call(t, gw, http.MethodPost, "/api/tenants/acme/exports", acmeToken, "{}")
			exp, _ := body["export"].(map[string]any)
			if code != http.StatusOK || body["ok"] != true || exp["state"] != "queued" {
				t.Fatalf("POST exports = %d %v", code, body)
			}
			first := waitExport(t, s, "acme", exp["export_id"].(string), func(e *tenancyv1.Export) bool {
				return e.GetState() == tenancyv1.ExportState_EXPORT_STATE_SUCCEEDED
			})
			if code, body := call(t, gw, http.MethodGet, "/api/tenants/acme/exports", acmeToken, ""); code != http.StatusOK ||
				len(body["exports"].([]any)) != 1 {
				t.Fatalf("GET exports = %d %v", code, body)
			}
			raw := downloadRaw(t, s, as(t, "acme", "admin"), first)
			req, _ := http.NewRequest(http.MethodGet, gw+"/api/tenants/acme/exports/"+first.GetExportId()+"/archive", nil)
			req.Header.Set("Authorization", "Bearer "+acmeToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			rest, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/gzip" ||
				!strings.Contains(resp.Header.Get("Content-Disposition"), `attachment; filename="acme-`+first.GetExportId()+`.tar.gz"`) ||
				!bytes.Equal(rest, raw) {
				t.Fatalf("GET archive = %d %v, %d bytes (gRPC %d)", resp.StatusCode, resp.Header, len(rest), len(raw))
			}
			code, body = call(t, gw, http.MethodGet, "/api/tenants/globex/exports/"+first.GetExportId()+"/archive", acmeToken, "")
			if code != http.StatusForbidden && code != http.StatusBadRequest || body["ok"] != false {
				t.Fatalf("acme reading globex's archive = %d %v", code, body)
			}
			checkArchive(t, first, untar(t, raw), acme)

			// From here on only the platform admin calls: acme's rows stay
			// as they are once the access decisions of acme's calls above,
			// reported in batches every 5 s, have reached tenancy (and its
			// denial, audit).
			time.Sleep(6 * time.Second)
			baseline := export(t, s, "acme")
			a1 := download(t, s, platform, baseline)
			checkArchive(t, baseline, a1, acme)
			var beforeJobs int64 // bytes of the files before queue/jobs.jsonl
			for _, f := range a1[1:] {
				if f.name == "queue/jobs.jsonl" {
					break
				}
				beforeJobs += int64(len(f.data))
			}

			// Resume: the worker stops (tenancy restarts) in the middle of
			// queue's jobs (several chunks: bulkJobs), while growth is down
			// so that the export cannot finish before; both come back and
			// the export continues where it stopped.
			s.l.Stop("growth")
			res, err := s.tenancy.CreateExport(platform, &tenancyv1.CreateExportRequest{TenantId: "acme"})
			if err != nil {
				t.Fatal(err)
			}
			id := res.GetExport().GetExportId()
			// Stopped once a MiB of queue/jobs.jsonl (about 5) is stored.
			cut := waitExport(t, s, "acme", id, func(e *tenancyv1.Export) bool {
				return e.GetCurrentFile() == "queue/jobs.jsonl" && e.GetSizeBytes() >= beforeJobs+1<<20
			})
			s.l.Stop("tenancy")
			t.Logf("worker stopped at %s after %d files, %d bytes", cut.GetCurrentFile(), cut.GetFiles(), cut.GetSizeBytes())
			s.l.Start("growth")
			s.l.Start("tenancy")
			s.connect()
			second := waitExport(t, s, "acme", id, func(e *tenancyv1.Export) bool {
				return e.GetState() == tenancyv1.ExportState_EXPORT_STATE_SUCCEEDED
			})
			a2 := download(t, s, platform, second)
			checkArchive(t, second, a2, acme)
			if len(a1) != len(a2) {
				t.Fatalf("resumed archive has %v, uninterrupted %v", names(a2), names(a1))
			}
			for i := 1; i < len(a1); i++ { // the manifests differ in export id and time
				if a1[i].name != a2[i].name || !bytes.Equal(a1[i].data, a2[i].data) {
					t.Errorf("file %d: resumed %s (%d bytes), uninterrupted %s (%d bytes)", i, a2[i].name, len(a2[i].data), a1[i].name, len(a1[i].data))
				}
			}

			// Offboarding needs the export, unless waived.
			off := &tenancyv1.OffboardTenantRequest{TargetTenantId: "acme", Reason: "contract ended"}
			_, err = s.tenancy.OffboardTenant(platform, off)
			wantErr(t, err, codes.FailedPrecondition, "EXPORT_REQUIRED")
			off.ExportId = first.GetExportId()
			res2, err := s.tenancy.OffboardTenant(platform, off)
			if err != nil || res2.GetTenant().GetState() != tenancyv1.TenantState_TENANT_STATE_OFFBOARDING {
				t.Fatalf("offboard = %v, %v", res2, err)
			}
			var erasure *tenancyv1.Erasure
			deadline := time.Now().Add(60 * time.Second)
			for {
				got, err := s.tenancy.GetErasure(platform, &tenancyv1.GetErasureRequest{TargetTenantId: "acme"})
				if err != nil {
					t.Fatal(err)
				}
				if erasure = got.GetErasure(); erasure.GetState() == tenancyv1.ErasureState_ERASURE_STATE_DONE {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("erasure after 60s: %v", erasure)
				}
				time.Sleep(50 * time.Millisecond)
			}
			var order []string
			var changed int64
			for _, se := range erasure.GetServices() {
				order = append(order, se.GetService())
				if !se.GetDone() {
					t.Errorf("service %s not done: %v", se.GetService(), se)
				}
				for _, k := range se.GetKinds() {
					changed += k.GetChanged()
				}
			}
			if strings.Join(order, ",") != "queue,growth,finops,audit,tenancy" || changed == 0 || erasure.GetFinishTime() == nil ||
				erasure.GetExportId() != first.GetExportId() {
				t.Errorf("erasure = %v", erasure)
			}
			got, err := s.tenancy.GetTenant(platform, &tenancyv1.GetTenantRequest{TenantId: "acme"})
			if err != nil || got.GetTenant().GetState() != tenancyv1.TenantState_TENANT_STATE_DELETED {
				t.Fatalf("tenant after erasure = %v, %v", got, err)
			}
			// Its writes are refused everywhere (states cached for at most
			// identity.TenantStateCacheTTL), and it cannot be exported.
			time.Sleep(identity.TenantStateCacheTTL)
			_, err = s.queue.EnqueueJob(as(t, "acme", "admin"), &queuev1.EnqueueJobRequest{Type: "report_gen"})
			wantErr(t, err, codes.FailedPrecondition, identity.ReasonTenantNotActive)
			_, err = s.growth.CreateReferral(as(t, "acme", "admin"), &growthv1.CreateReferralRequest{ReferrerId: "again"})
			wantErr(t, err, codes.FailedPrecondition, identity.ReasonTenantNotActive)
			_, err = s.tenancy.CreateExport(platform, &tenancyv1.CreateExportRequest{TenantId: "acme"})
			wantErr(t, err, codes.FailedPrecondition, "TENANT_DELETED")

			// Another tenant is whole.
			g := export(t, s, "globex")
			checkArchive(t, g, download(t, s, as(t, "globex", "admin"), g), globex)
		})
	}
}
