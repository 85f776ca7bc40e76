package domain

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/page"
)

// ExportState is an export's state, stored as its name.
type ExportState string

// The export states.
const (
	ExportQueued    ExportState = "queued"
	ExportRunning   ExportState = "running"
	ExportSucceeded ExportState = "succeeded"
	ExportFailed    ExportState = "failed"
)

// ErasureState is an erasure's state, stored as its name.
type ErasureState string

// The erasure states.
const (
	ErasureRunning ErasureState = "running"
	ErasureDone    ErasureState = "done"
)

// Job types of the lifecycle on the platform's queue (tenant "default").
// Their payloads name the export or erasure, never the tenant: erasure
// checks scan every table of every service for the tenant's id.
const (
	JobTypeExport = "tenant.export"
	JobTypeErase  = "tenant.erase"
)

// Error reasons of exports and offboarding.
const (
	ReasonExportNotFound       = "EXPORT_NOT_FOUND"
	ReasonExportIDInvalid      = "EXPORT_ID_INVALID"
	ReasonExportNotReady       = "EXPORT_NOT_READY"
	ReasonExportRequired       = "EXPORT_REQUIRED"
	ReasonErasureNotFound      = "ERASURE_NOT_FOUND"
	ReasonTenantDeleted        = "TENANT_DELETED"
	ReasonLifecycleUnavailable = "LIFECYCLE_UNAVAILABLE"
)

// Export is one tenant export and its progress.
type Export struct {
	ID, TenantID string
	State        ExportState
	RequestedBy  string
	CreatedAt    time.Time
	FinishedAt   time.Time
	// Files finished and their total size (read from the export's files).
	Files       int32
	SizeBytes   int64
	CurrentFile string
	Error       string
	// ManifestSHA256 is the hex SHA-256 of manifest.json once succeeded.
	ManifestSHA256 string
}

// ExportUpdate is what the export worker changes of an export; nil fields
// stay.
type ExportUpdate struct {
	State          ExportState
	CurrentFile    *string
	Error          *string
	ManifestSHA256 *string
	FinishedAt     time.Time
}

// ExportFile is one file of an export's archive, in archive order (Seq).
type ExportFile struct {
	Seq  int
	Name string
	Size int64
	Rows int64
	// SHA256 is the hex digest, set once Done.
	SHA256 string
	Done   bool
	// HashState is the marshalled SHA-256 state after the stored bytes,
	// Cursor the TenantData cursor after them.
	HashState []byte
	Cursor    string
}

// Erasure is an offboarded tenant's erasure and its progress.
type Erasure struct {
	ID, TenantID  string
	State         ErasureState
	Reason        string
	RequestedBy   string
	ExportID      string
	ExportSkipped bool
	Pseudonym     string
	// Services in the order they are erased.
	Services   []ServiceErasure
	CreatedAt  time.Time
	FinishedAt time.Time
}

// ServiceErasure is one service's part of an erasure.
type ServiceErasure struct {
	Service   string         `json:"service"`
	Done      bool           `json:"done"`
	Kinds     []KindProgress `json:"kinds"`
	UpdatedAt time.Time      `json:"updated_at"`
}

// KindProgress is what an erasure did to one kind (a table) of a service.
type KindProgress struct {
	Kind      string `json:"kind"`
	Rule      string `json:"rule"`
	Changed   int64  `json:"changed"`
	Remaining int64  `json:"remaining"`
	Reason    string `json:"reason,omitempty"`
}

// LifecycleStore persists exports and erasures (the tables exports,
// export_files, export_chunks and erasures).
type LifecycleStore interface {
	CreateExport(ctx context.Context, e Export) error
	// GetExport returns ErrNotFound unless tenant has export id.
	GetExport(ctx context.Context, tenant, id string) (Export, error)
	// FindExport reads an export by id alone (the worker knows no tenant).
	FindExport(ctx context.Context, id string) (Export, error)
	// ListExports pages by id descending (newest first), ids < beforeID
	// ("" for the first page).
	ListExports(ctx context.Context, tenant, beforeID string, limit int) ([]Export, error)
	UpdateExport(ctx context.Context, tenant, id string, u ExportUpdate) error
	// ExportFiles lists the export's files by Seq.
	ExportFiles(ctx context.Context, tenant, id string) ([]ExportFile, error)
	// PutExportFile inserts or replaces file f (by Seq) and appends chunks
	// (each at most MaxChunk bytes) to its data, in one transaction; reset
	// deletes the file's stored data first.
	PutExportFile(ctx context.Context, tenant, id string, f ExportFile, chunks [][]byte, reset bool) error
	// ReadExportFile calls fn with each stored chunk of file seq in order,
	// reading one chunk at a time.
	ReadExportFile(ctx context.Context, tenant, id string, seq int, fn func([]byte) error) error

	// Offboard moves the tenant to offboarding as ch says (see
	// ChangeTenantState) and inserts e, in one transaction.
	Offboard(ctx context.Context, e Erasure, ch StateChange) (Tenant, error)
	// GetErasure returns ErrNotFound when the tenant has none.
	GetErasure(ctx context.Context, tenant string) (Erasure, error)
	// FindErasure reads an erasure by id alone.
	FindErasure(ctx context.Context, id string) (Erasure, error)
	// SaveErasureProgress stores e's services.
	SaveErasureProgress(ctx context.Context, e Erasure) error
	// FinishErasure marks e done at `at` and changes the tenant's state as
	// ch says, in one transaction.
	FinishErasure(ctx context.Context, e Erasure, at time.Time, ch StateChange) (Tenant, error)
	// ErasedTenants maps every tenant whose erasure has reached tenancy's
	// own rows (done, or its tenancy part done) to its pseudonym.
	ErasedTenants(ctx context.Context) (map[string]string, error)
	// PseudonymiseTargets replaces tenant id by pseudonym where other
	// tenants' decisions name it as their target, and returns how many.
	PseudonymiseTargets(ctx context.Context, id, pseudonym string) (int64, error)
	// PendingEvents counts the tenant's outbox events not delivered yet
	// (dead ones excluded: nothing delivers them without an operator).
	PendingEvents(ctx context.Context, tenant string) (int, error)
}

// ErrExportFileChanged: the stored file is not what the writer last
// stored (another worker wrote to it); the writer must reload it.
var ErrExportFileChanged = errors.New("export file changed by another writer")

// MaxChunk bounds one stored chunk of an export file.
const MaxChunk = 1 << 20

// ManifestName is the archive's manifest: every other file's name, size,
// SHA-256 and rows. It is written last and comes first in the archive.
const ManifestName = "manifest.json"

// ArchiveOrder is the order of files in the archive: the manifest, then
// the others as they were exported.
func ArchiveOrder(files []ExportFile) []ExportFile {
	out := make([]ExportFile, 0, len(files))
	for _, f := range files {
		if f.Name == ManifestName {
			out = append([]ExportFile{f}, out...)
		} else {
			out = append(out, f)
		}
	}
	return out
}

// Jobs enqueues work on the platform's queue (tenant "default").
type Jobs interface {
	// Enqueue adds a job; an idempotency key names the same job again.
	Enqueue(ctx context.Context, typ string, payload map[string]any, key string) error
}

// SetJobs gives the service its queue; without one, exports and
// offboarding are refused as unavailable.
func (s *Service) SetJobs(j Jobs) { s.jobs = j }

func (s *Service) requireJobs() error {
	if s.jobs == nil {
		return apierr.Unavailable(ReasonLifecycleUnavailable,
			"exports and offboarding need the platform queue: this deployment has no --queue-addr").InDomain(Domain)
	}
	return nil
}

// CreateExport stores a queued export of the caller's tenant (the policy
// lets tenant admins name their own, platform admins any) and enqueues its
// job.
func (s *Service) CreateExport(ctx context.Context, c Caller, tenant string) (Export, error) {
	if err := s.requireJobs(); err != nil {
		return Export{}, err
	}
	if tenant == "" {
		tenant = c.Tenant
	}
	if _, err := s.liveTenant(ctx, tenant); err != nil {
		return Export{}, err
	}
	e := Export{ID: ulid.Make().String(), TenantID: tenant, State: ExportQueued, RequestedBy: c.Subject,
		CreatedAt: s.now().UTC().Truncate(time.Microsecond)}
	if err := s.store.CreateExport(ctx, e); err != nil {
		return Export{}, fmt.Errorf("create export: %w", err)
	}
	if err := s.jobs.Enqueue(ctx, JobTypeExport, map[string]any{"export_id": e.ID}, e.ID); err != nil {
		msg := "not queued: " + err.Error()
		_ = s.store.UpdateExport(context.WithoutCancel(ctx), tenant, e.ID, ExportUpdate{State: ExportFailed, Error: &msg, FinishedAt: s.now().UTC()})
		return Export{}, fmt.Errorf("enqueue export: %w", err)
	}
	return e, nil
}

// liveTenant reads a registered tenant that is not deleted.
func (s *Service) liveTenant(ctx context.Context, id string) (Tenant, error) {
	if !tenantIDPattern.MatchString(id) {
		return Tenant{}, invalidTenant(id)
	}
	t, err := s.store.GetTenant(ctx, id)
	switch {
	case errors.Is(err, ErrNotFound):
		return Tenant{}, apierr.NotFound(ReasonTenantNotFound, "tenant %q is not registered", id).InDomain(Domain)
	case err != nil:
		return Tenant{}, fmt.Errorf("get tenant: %w", err)
	case t.State == StateDeleted:
		return Tenant{}, apierr.FailedPrecondition(ReasonTenantDeleted, "tenant %q is deleted", id).InDomain(Domain)
	}
	return t, nil
}

// GetExport reads one export of tenant.
func (s *Service) GetExport(ctx context.Context, tenant, id string) (Export, error) {
	if _, err := ulid.ParseStrict(id); err != nil {
		return Export{}, apierr.InvalidArgument(ReasonExportIDInvalid, "export id %q is not a ULID", apierr.Clip(id)).InDomain(Domain)
	}
	e, err := s.store.GetExport(ctx, tenant, id)
	if errors.Is(err, ErrNotFound) {
		return Export{}, apierr.NotFound(ReasonExportNotFound, "tenant %q has no export %q", tenant, id).InDomain(Domain)
	}
	if err != nil {
		return Export{}, fmt.Errorf("get export: %w", err)
	}
	return e, nil
}

// ListExports pages through tenant's exports, newest first.
func (s *Service) ListExports(ctx context.Context, tenant string, req page.Request) ([]Export, string, error) {
	size, err := req.Size(20, 100)
	if err != nil {
		return nil, "", err
	}
	scope := "exports:" + tenant
	before, err := page.Decode(req.PageToken, scope)
	if err != nil {
		return nil, "", err
	}
	es, err := s.store.ListExports(ctx, tenant, before, size+1)
	if err != nil {
		return nil, "", fmt.Errorf("list exports: %w", err)
	}
	es, next := page.Trim(es, size, func(e Export) string { return e.ID }, scope)
	return es, next, nil
}

// ReadyExport is GetExport of an export that can be downloaded, with its
// files in archive order.
func (s *Service) ReadyExport(ctx context.Context, tenant, id string) (Export, []ExportFile, error) {
	e, err := s.GetExport(ctx, tenant, id)
	if err != nil {
		return Export{}, nil, err
	}
	if e.State != ExportSucceeded {
		return Export{}, nil, apierr.FailedPrecondition(ReasonExportNotReady, "export %q is %s, not succeeded", id, e.State).InDomain(Domain)
	}
	fs, err := s.store.ExportFiles(ctx, tenant, id)
	if err != nil {
		return Export{}, nil, fmt.Errorf("export files: %w", err)
	}
	return e, fs, nil
}

// ReadExportFile streams one stored file chunk by chunk.
func (s *Service) ReadExportFile(ctx context.Context, tenant, id string, seq int, fn func([]byte) error) error {
	return s.store.ReadExportFile(ctx, tenant, id, seq, fn)
}

// Offboard is an OffboardTenant request.
type Offboard struct {
	Tenant, Reason, ExportID string
	SkipExport               bool
}

// OffboardTenant moves an active or suspended tenant to offboarding,
// creates its erasure and enqueues the erasure job. For a tenant that is
// offboarding already it enqueues the job again (a re-run is safe).
func (s *Service) OffboardTenant(ctx context.Context, c Caller, in Offboard) (Tenant, Erasure, error) {
	if err := s.requireJobs(); err != nil {
		return Tenant{}, Erasure{}, err
	}
	if strings.TrimSpace(in.Reason) == "" || len(in.Reason) > MaxStateReasonLen {
		return Tenant{}, Erasure{}, apierr.InvalidArgument(ReasonStateReasonInvalid,
			"offboarding needs a reason of 1 to %d characters", MaxStateReasonLen).InDomain(Domain)
	}
	if in.Tenant == adminTenant {
		return Tenant{}, Erasure{}, apierr.FailedPrecondition(ReasonTenantProtected,
			"tenant %q is the platform's own and cannot be offboarded", in.Tenant).InDomain(Domain)
	}
	t, err := s.liveTenant(ctx, in.Tenant)
	if err != nil {
		return Tenant{}, Erasure{}, err
	}
	if t.State == StateOffboarding {
		e, err := s.erasure(ctx, in.Tenant)
		if err != nil {
			return Tenant{}, Erasure{}, err
		}
		// A new job each time: the first may have finished or died.
		return t, e, s.enqueueErase(ctx, e, "")
	}
	if !in.SkipExport {
		if err := s.checkExport(ctx, in.Tenant, in.ExportID); err != nil {
			return Tenant{}, Erasure{}, err
		}
	} else {
		in.ExportID = ""
	}
	id := ulid.Make().String()
	at := s.now().UTC().Truncate(time.Microsecond)
	e := Erasure{ID: id, TenantID: in.Tenant, State: ErasureRunning, Reason: in.Reason, RequestedBy: c.Subject,
		ExportID: in.ExportID, ExportSkipped: in.SkipExport, Pseudonym: "erased-" + strings.ToLower(id), CreatedAt: at}
	ch := StateChange{To: StateOffboarding, Reason: in.Reason, By: c.Subject, At: at}
	ch.Events = func(before, _ Tenant) ([]Event, error) {
		if before.State != StateActive && before.State != StateSuspended {
			return nil, apierr.FailedPrecondition(ReasonStateTransitionInvalid,
				"tenant %q is %s: only an active or suspended tenant can be offboarded", in.Tenant, before.State).InDomain(Domain)
		}
		return stateEvents(StatePayload{TenantID: in.Tenant, From: string(before.State), To: string(StateOffboarding),
			Reason: in.Reason, ChangedBy: c.Subject, Time: at}, in.Tenant, adminTenant)
	}
	t, err = s.store.Offboard(ctx, e, ch)
	var ae *apierr.Error
	switch {
	case errors.As(err, &ae):
		return Tenant{}, Erasure{}, ae
	case err != nil:
		return Tenant{}, Erasure{}, fmt.Errorf("offboard: %w", err)
	}
	if s.hooks.Audited != nil {
		s.hooks.Audited()
	}
	return t, e, s.enqueueErase(ctx, e, e.ID)
}

func (s *Service) enqueueErase(ctx context.Context, e Erasure, key string) error {
	if err := s.jobs.Enqueue(ctx, JobTypeErase, map[string]any{"erasure_id": e.ID}, key); err != nil {
		return fmt.Errorf("enqueue erasure (offboard again to retry): %w", err)
	}
	return nil
}

// checkExport requires a succeeded export id of tenant.
func (s *Service) checkExport(ctx context.Context, tenant, id string) error {
	required := func(why string) error {
		return apierr.FailedPrecondition(ReasonExportRequired,
			"offboarding needs export_id of a succeeded export of tenant %q (or skip_export): %s", tenant, why).InDomain(Domain)
	}
	if id == "" {
		return required("none given")
	}
	if _, err := ulid.ParseStrict(id); err != nil {
		return required("export_id is not a ULID")
	}
	ex, err := s.store.GetExport(ctx, tenant, id)
	switch {
	case errors.Is(err, ErrNotFound):
		return required("no such export")
	case err != nil:
		return fmt.Errorf("get export: %w", err)
	case ex.State != ExportSucceeded:
		return required("the export is " + string(ex.State))
	}
	return nil
}

// GetErasure reads a tenant's erasure.
func (s *Service) GetErasure(ctx context.Context, tenant string) (Erasure, error) {
	if !tenantIDPattern.MatchString(tenant) {
		return Erasure{}, invalidTenant(tenant)
	}
	return s.erasure(ctx, tenant)
}

func (s *Service) erasure(ctx context.Context, tenant string) (Erasure, error) {
	e, err := s.store.GetErasure(ctx, tenant)
	if errors.Is(err, ErrNotFound) {
		return Erasure{}, apierr.NotFound(ReasonErasureNotFound, "tenant %q has no erasure", tenant).InDomain(Domain)
	}
	if err != nil {
		return Erasure{}, fmt.Errorf("get erasure: %w", err)
	}
	return e, nil
}

// Audited tells the outbox relay that events wait.
func (s *Service) Audited() {
	if s.hooks.Audited != nil {
		s.hooks.Audited()
	}
}

// FinishErasure marks e done and the tenant deleted, recorded in the
// platform's audit log only (the tenant's log has its tombstone).
func (s *Service) FinishErasure(ctx context.Context, e Erasure, by string) error {
	at := s.now().UTC().Truncate(time.Microsecond)
	ch := StateChange{To: StateDeleted, Reason: e.Reason, By: by, At: at}
	ch.Events = func(before, _ Tenant) ([]Event, error) {
		return stateEvents(StatePayload{TenantID: e.TenantID, From: string(before.State), To: string(StateDeleted),
			Reason: e.Reason, ChangedBy: by, Time: at}, adminTenant)
	}
	if _, err := s.store.FinishErasure(ctx, e, at, ch); err != nil {
		return fmt.Errorf("finish erasure: %w", err)
	}
	s.markErased(e.TenantID, e.Pseudonym)
	s.Audited()
	return nil
}
