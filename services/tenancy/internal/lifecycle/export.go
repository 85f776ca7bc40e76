package lifecycle

import (
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"

	"go.uber.org/zap"
	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"

	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	finopsv1 "github.com/echopilot/echopilot/gen/go/echopilot/finops/v1"
	growthv1 "github.com/echopilot/echopilot/gen/go/echopilot/growth/v1"
	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	tenantdatav1 "github.com/echopilot/echopilot/gen/go/echopilot/tenantdata/v1"
	"github.com/echopilot/echopilot/services/queue/worker"
	"github.com/echopilot/echopilot/services/tenancy/internal/domain"
)

// Export periods: the exports that take a period get the longest they
// allow.
const maxExportDays = 366

// bodyFile is a file made of one HttpBody stream (a CSV or the audit
// log export). Such a file is not resumable midway: a worker that stopped
// in one writes it again.
type bodyFile struct {
	name string
	open func(ctx context.Context, tenant string) (grpc.ServerStreamingClient[httpbody.HttpBody], error)
}

func (r *Runner) bodyFiles() []bodyFile {
	return []bodyFile{
		{"audit/log.jsonl", func(ctx context.Context, tenant string) (grpc.ServerStreamingClient[httpbody.HttpBody], error) {
			if r.peers.Audit == nil {
				return nil, worker.Permanent(errors.New("no audit address is configured"))
			}
			return r.peers.Audit.ExportLog(ctx, &auditv1.ExportLogRequest{TenantId: tenant})
		}},
		{"finops/costs.csv", func(ctx context.Context, tenant string) (grpc.ServerStreamingClient[httpbody.HttpBody], error) {
			if r.peers.FinOps == nil {
				return nil, worker.Permanent(errors.New("no finops address is configured"))
			}
			return r.peers.FinOps.ExportCosts(ctx, &finopsv1.ExportCostsRequest{TenantId: tenant, Days: maxExportDays})
		}},
		{"growth/payouts.csv", func(ctx context.Context, tenant string) (grpc.ServerStreamingClient[httpbody.HttpBody], error) {
			if r.peers.Growth == nil {
				return nil, worker.Permanent(errors.New("no growth address is configured"))
			}
			return r.peers.Growth.ExportPayouts(ctx, &growthv1.ExportPayoutsRequest{TenantId: tenant, Days: maxExportDays, State: "all"})
		}},
	}
}

// isBodyFile reports whether name is one of bodyFiles' (or the manifest).
func (r *Runner) isBodyFile(name string) bool {
	if name == domain.ManifestName {
		return true
	}
	for _, b := range r.bodyFiles() {
		if b.name == name {
			return true
		}
	}
	return false
}

// runExport is the tenant.export handler.
func (r *Runner) runExport(ctx context.Context, job *queuev1.Job) (worker.Result, error) {
	id, err := payloadID(job, "export_id")
	if err != nil {
		return worker.Result{}, err
	}
	e, err := r.store.FindExport(ctx, id)
	if errors.Is(err, domain.ErrNotFound) {
		return worker.Result{}, worker.Permanent(fmt.Errorf("export %s does not exist", id))
	}
	if err != nil {
		return worker.Result{}, err
	}
	switch e.State {
	case domain.ExportSucceeded:
		return exportResult(e)
	case domain.ExportFailed:
		return worker.Result{}, worker.Permanent(fmt.Errorf("export %s failed: %s", id, e.Error))
	}
	ex := &exporter{r: r, e: e, byName: map[string]*domain.ExportFile{}}
	if err := scrub(ex.run(ctx), e.TenantID); err != nil {
		if ctx.Err() == nil && lastAttempt(job, err) {
			msg := err.Error()
			if uerr := r.store.UpdateExport(context.WithoutCancel(ctx), e.TenantID, e.ID,
				domain.ExportUpdate{State: domain.ExportFailed, Error: &msg, FinishedAt: r.now().UTC()}); uerr != nil {
				r.log.Warn("export failure not stored", zap.String("export_id", e.ID), zap.Error(uerr))
			}
		}
		return worker.Result{}, err
	}
	if e, err = r.store.FindExport(ctx, id); err != nil {
		return worker.Result{}, err
	}
	return exportResult(e)
}

func exportResult(e domain.Export) (worker.Result, error) {
	out, err := structpb.NewStruct(map[string]any{"export_id": e.ID, "files": float64(e.Files), "size_bytes": float64(e.SizeBytes)})
	return worker.Result{Output: out}, err
}

// exporter runs one export from where its stored files end.
type exporter struct {
	r       *Runner
	e       domain.Export
	files   []*domain.ExportFile
	byName  map[string]*domain.ExportFile
	current string
}

func (x *exporter) run(ctx context.Context) error {
	if err := x.r.store.UpdateExport(ctx, x.e.TenantID, x.e.ID, domain.ExportUpdate{State: domain.ExportRunning}); err != nil {
		return err
	}
	stored, err := x.r.store.ExportFiles(ctx, x.e.TenantID, x.e.ID)
	if err != nil {
		return err
	}
	for i := range stored {
		x.add(&stored[i])
	}
	for _, svc := range exportOrder {
		if err := x.tenantData(ctx, svc); err != nil {
			return err
		}
	}
	for _, b := range x.r.bodyFiles() {
		if err := x.body(ctx, b); err != nil {
			return err
		}
	}
	return x.manifest(ctx)
}

func (x *exporter) add(f *domain.ExportFile) {
	x.files = append(x.files, f)
	x.byName[f.Name] = f
}

// file returns the stored file name, or a new one after the others.
func (x *exporter) file(name string) (*domain.ExportFile, bool) {
	if f := x.byName[name]; f != nil {
		return f, true
	}
	f := &domain.ExportFile{Seq: len(x.files), Name: name}
	x.add(f)
	return f, false
}

// progress shows name as the file being written.
func (x *exporter) progress(ctx context.Context, name string) error {
	if name == x.current {
		return nil
	}
	x.current = name
	return x.r.store.UpdateExport(ctx, x.e.TenantID, x.e.ID, domain.ExportUpdate{CurrentFile: &name})
}

// tenantData streams service's kinds into "<service>/<kind>.jsonl", from
// after the last chunk stored of its last file.
func (x *exporter) tenantData(ctx context.Context, service string) error {
	client, err := x.r.tenantData(service)
	if err != nil {
		return err
	}
	req := &tenantdatav1.ExportTenantDataRequest{TenantId: x.e.TenantID}
	for i := len(x.files) - 1; i >= 0; i-- {
		f := x.files[i]
		if kind, ok := kindOf(service, f.Name); ok && !x.r.isBodyFile(f.Name) {
			req.Kind, req.Cursor = kind, f.Cursor
			break
		}
	}
	stream, err := client.ExportTenantData(actFor(ctx, x.e.TenantID), req)
	if err != nil {
		return classify(service+" export", err)
	}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return classify(service+" export", err)
		}
		if !validKind(resp.GetKind()) {
			return worker.Permanent(fmt.Errorf("%s export: kind %q is not a table name", service, resp.GetKind()))
		}
		f, _ := x.file(service + "/" + resp.GetKind() + ".jsonl")
		if f.Done {
			continue // resumed at a kind that was finished
		}
		if err := x.progress(ctx, f.Name); err != nil {
			return err
		}
		h, err := restoreHash(f.HashState)
		if err != nil {
			return worker.Permanent(fmt.Errorf("%s: %w", f.Name, err))
		}
		lines := resp.GetLines()
		h.Write(lines)
		f.Size += int64(len(lines))
		f.Rows += int64(resp.GetRows())
		f.Cursor = resp.GetCursor()
		if resp.GetKindDone() {
			f.Done, f.SHA256 = true, hex.EncodeToString(h.Sum(nil))
		}
		if f.HashState, err = marshalHash(h); err != nil {
			return err
		}
		if err := x.r.store.PutExportFile(ctx, x.e.TenantID, x.e.ID, *f, split(lines), false); err != nil {
			return err
		}
	}
}

// validKind reports whether kind can name a file: a table name, never a
// path.
func validKind(kind string) bool {
	if kind == "" || len(kind) > 63 {
		return false
	}
	for _, c := range kind {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// kindOf is the kind of a TenantData file of service.
func kindOf(service, name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, service+"/")
	if !ok {
		return "", false
	}
	kind, ok := strings.CutSuffix(rest, ".jsonl")
	if !ok {
		return "", false
	}
	return kind, true
}

// body writes one HttpBody stream into file b.name, from its start.
func (x *exporter) body(ctx context.Context, b bodyFile) error {
	f, existed := x.file(b.name)
	if f.Done {
		return nil
	}
	if err := x.progress(ctx, f.Name); err != nil {
		return err
	}
	reset := existed
	f.Size, f.Rows, f.Cursor = 0, 0, ""
	stream, err := b.open(actFor(ctx, x.e.TenantID), x.e.TenantID)
	if err != nil {
		return classify(b.name, err)
	}
	h := sha256.New()
	buf := make([]byte, 0, domain.MaxChunk)
	flush := func(done bool) error {
		if done {
			f.Done, f.SHA256 = true, hex.EncodeToString(h.Sum(nil))
		}
		var err error
		if f.HashState, err = marshalHash(h); err != nil {
			return err
		}
		var chunks [][]byte
		if len(buf) > 0 {
			chunks = [][]byte{buf}
		}
		err = x.r.store.PutExportFile(ctx, x.e.TenantID, x.e.ID, *f, chunks, reset)
		reset, buf = false, buf[:0]
		return err
	}
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return flush(true)
		}
		if err != nil {
			return classify(b.name, err)
		}
		data := msg.GetData()
		for len(data) > 0 {
			n := min(len(data), domain.MaxChunk-len(buf))
			part := data[:n]
			buf, data = append(buf, part...), data[n:]
			h.Write(part)
			f.Size += int64(n)
			f.Rows += int64(strings.Count(string(part), "\n"))
			if len(buf) == domain.MaxChunk {
				if err := flush(false); err != nil {
					return err
				}
			}
		}
	}
}

// manifestFile is one file in manifest.json.
type manifestFile struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	Rows   int64  `json:"rows"`
}

// manifest writes manifest.json of every other file and marks the export
// succeeded.
func (x *exporter) manifest(ctx context.Context) error {
	m := struct {
		TenantID string         `json:"tenant_id"`
		ExportID string         `json:"export_id"`
		Created  string         `json:"created"`
		Files    []manifestFile `json:"files"`
	}{TenantID: x.e.TenantID, ExportID: x.e.ID, Created: x.e.CreatedAt.UTC().Format(time.RFC3339Nano), Files: []manifestFile{}}
	for _, f := range x.files {
		if f.Name == domain.ManifestName {
			continue
		}
		if !f.Done {
			return fmt.Errorf("file %s is not finished", f.Name)
		}
		m.Files = append(m.Files, manifestFile{Name: f.Name, Size: f.Size, SHA256: f.SHA256, Rows: f.Rows})
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	h := sha256.New()
	h.Write(data)
	f, existed := x.file(domain.ManifestName)
	f.Size, f.Rows, f.Done, f.SHA256, f.Cursor = int64(len(data)), 0, true, hex.EncodeToString(h.Sum(nil)), ""
	if f.HashState, err = marshalHash(h); err != nil {
		return err
	}
	if err := x.r.store.PutExportFile(ctx, x.e.TenantID, x.e.ID, *f, [][]byte{data}, existed); err != nil {
		return err
	}
	none := ""
	return x.r.store.UpdateExport(ctx, x.e.TenantID, x.e.ID, domain.ExportUpdate{
		State: domain.ExportSucceeded, CurrentFile: &none, ManifestSHA256: &f.SHA256, FinishedAt: x.r.now().UTC()})
}

// split cuts b into chunks of at most domain.MaxChunk bytes.
func split(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		n := min(len(b), domain.MaxChunk)
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

// restoreHash continues a SHA-256 from its marshalled state (none: a new
// one): crypto/sha256's digest implements encoding.BinaryUnmarshaler.
func restoreHash(state []byte) (hash.Hash, error) {
	h := sha256.New()
	if len(state) == 0 {
		return h, nil
	}
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state); err != nil {
		return nil, fmt.Errorf("restore sha256 state: %w", err)
	}
	return h, nil
}

func marshalHash(h hash.Hash) ([]byte, error) {
	return h.(encoding.BinaryMarshaler).MarshalBinary()
}
