package domain

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned by a Store when the asked-for row does not exist
// (or belongs to another tenant, which the caller must not learn).
var ErrNotFound = errors.New("not found")

// Tenant is one registered tenant.
type Tenant struct {
	ID          string
	DisplayName string
	CreatedAt   time.Time
	Limits      RateLimits
	// State and why, by whom (a subject) and when it was last changed;
	// StateChangedAt is zero for a tenant never suspended.
	State          TenantState
	StateReason    string
	StateChangedBy string
	StateChangedAt time.Time
}

// RateLimits are a tenant's own limits at the gateway, in requests per
// second and burst sizes; 0 means the deployment's default.
type RateLimits struct {
	ReadPerSecond, ReadBurst   int32
	WritePerSecond, WriteBurst int32
}

// Decision is one access decision reported by a service.
type Decision struct {
	TenantID       string // the caller's own tenant; the decision is counted here
	TargetTenantID string // the tenant whose data was asked for ("" = same)
	Subject        string
	Method         string
	Service        string
	Allowed        bool
	Reason         string
	Verified       bool
	Time           time.Time
	// Erased: TenantID or TargetTenantID is an erased tenant's pseudonym.
	Erased bool
}

// CrossTenantDenied reports whether d is a refused attempt on another tenant.
func (d Decision) CrossTenantDenied() bool {
	return !d.Allowed && d.TargetTenantID != "" && d.TargetTenantID != d.TenantID
}

// Stats are the counters of recorded decisions.
type Stats struct {
	Total             int64
	PerTenant         map[string]int64
	Denied            int64
	CrossTenantDenied int64
	// WriterSeq is the last batch of Scope.Writer the counters hold (0:
	// none).
	WriterSeq int64
}

// Scope says which tenants a read covers: one tenant, or all of them for a
// platform admin's read-only cross-tenant view.
type Scope struct {
	Tenant     string
	AllTenants bool
	// Writer, if set, is a process whose last stored batch (Mark) the read
	// returns from the same snapshot as the counters.
	Writer string
}

// Mark numbers a batch of one process's own decisions (Live): storing the
// batch stores Seq as Writer's last batch in the same transaction. The
// zero Mark stores nothing more.
type Mark struct {
	Writer string
	Seq    int64
}

// Store persists tenants and decisions. Every implementation must pass the
// contract suite in internal/store/storetest on SQLite and PostgreSQL.
type Store interface {
	// RecordDecisions stores the raw decisions, bumps the per-tenant
	// counters and adds DeniedEvent of every Audited decision to the outbox,
	// all in one transaction, with mark. Decisions of several tenants may be
	// mixed.
	RecordDecisions(ctx context.Context, ds []Decision, mark Mark) error
	// Stats sums the counters within scope. PerTenant has one entry per tenant
	// with at least one decision.
	Stats(ctx context.Context, scope Scope) (Stats, error)
	// CreateTenant inserts t; when the id exists it returns the stored tenant
	// and existed=true without changing it.
	CreateTenant(ctx context.Context, t Tenant) (stored Tenant, existed bool, err error)
	// GetTenant returns ErrNotFound when there is no such tenant.
	GetTenant(ctx context.Context, id string) (Tenant, error)
	// UpdateTenant runs update on the stored tenant id and stores what it
	// leaves (display name and limits; not the id or creation time), in one
	// transaction that keeps concurrent updates from losing each other's
	// changes. Its errors wrap ErrNotFound when there is no such tenant, and
	// update's error when update fails.
	UpdateTenant(ctx context.Context, id string, update func(*Tenant) error) (Tenant, error)
	// ChangeTenantState sets tenant id's state to ch.To (with ch's reason,
	// subject and time) unless it is in that state already (changed false,
	// nothing written), and adds the events ch.Events makes of the changed
	// tenant to the outbox, in one transaction. Errors wrap ErrNotFound
	// when there is no such tenant.
	ChangeTenantState(ctx context.Context, id string, ch StateChange) (t Tenant, changed bool, err error)
	// ListTenants returns up to limit tenants within scope with ID > afterID,
	// ordered by ID.
	ListTenants(ctx context.Context, scope Scope, afterID string, limit int) ([]Tenant, error)
	// PruneDecisions deletes raw decisions older than before (counters stay)
	// and returns how many were deleted.
	PruneDecisions(ctx context.Context, before time.Time) (int64, error)
	APIKeyStore
	LifecycleStore
	Close() error
}
