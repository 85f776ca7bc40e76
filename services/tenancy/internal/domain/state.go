package domain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/identity"
)

// TenantState is a tenant's lifecycle state, stored as its name.
type TenantState string

// The states: SuspendTenant and ResumeTenant switch between the first two;
// OffboardTenant starts offboarding, and the erasure ends it deleted.
const (
	StateActive      TenantState = "active"
	StateSuspended   TenantState = "suspended"
	StateOffboarding TenantState = "offboarding"
	StateDeleted     TenantState = "deleted"
)

// Identity maps the state onto the identity layer's.
func (s TenantState) Identity() identity.TenantState {
	switch s {
	case StateSuspended:
		return identity.TenantSuspended
	case StateOffboarding:
		return identity.TenantOffboarding
	case StateDeleted:
		return identity.TenantDeleted
	}
	return identity.TenantActive
}

// TopicTenantState is the outbox topic of state changes; the audit
// service's logs of the tenant and of the platform (DefaultTenant) receive
// them.
const TopicTenantState = "tenancy.tenant.state"

// Error reasons of state changes.
const (
	// ReasonStateReasonInvalid: the reason given is empty (suspend) or too long.
	ReasonStateReasonInvalid = "TENANT_STATE_REASON_INVALID"
	// ReasonTenantProtected: the platform's own tenant cannot be suspended.
	ReasonTenantProtected = "TENANT_PROTECTED"
	// ReasonStateTransitionInvalid: only an active tenant can be suspended, and
	// only a suspended one resumed.
	ReasonStateTransitionInvalid = "TENANT_STATE_TRANSITION_INVALID"
	// MaxStateReasonLen bounds a state change's reason.
	MaxStateReasonLen = 500
)

// StateChange is one transition for the store to apply.
type StateChange struct {
	To     TenantState
	Reason string
	By     string
	At     time.Time
	// Events are written to the outbox with the change.
	Events func(before, after Tenant) ([]Event, error)
}

// StatePayload is the JSON of a TopicTenantState event. Field names are
// the contract with the consumer: add fields, never rename them.
type StatePayload struct {
	TenantID  string    `json:"tenant_id"`
	From      string    `json:"from"`
	To        string    `json:"to"`
	Reason    string    `json:"reason"`
	ChangedBy string    `json:"changed_by"`
	Time      time.Time `json:"time"`
}

// SuspendTenant suspends tenant id (platform admins only, as its policy
// says): every service refuses its writes within
// identity.TenantStateCacheTTL.
func (s *Service) SuspendTenant(ctx context.Context, c Caller, id, reason string) (Tenant, bool, error) {
	if reason == "" || len(reason) > MaxStateReasonLen {
		return Tenant{}, false, apierr.InvalidArgument(ReasonStateReasonInvalid,
			"a suspension needs a reason of 1 to %d characters", MaxStateReasonLen).InDomain(Domain)
	}
	if id == adminTenant {
		return Tenant{}, false, apierr.FailedPrecondition(ReasonTenantProtected,
			"tenant %q is the platform's own and cannot be suspended", id).InDomain(Domain)
	}
	return s.changeState(ctx, c, id, StateActive, StateSuspended, reason)
}

// ResumeTenant makes a suspended tenant active again.
func (s *Service) ResumeTenant(ctx context.Context, c Caller, id, reason string) (Tenant, bool, error) {
	if len(reason) > MaxStateReasonLen {
		return Tenant{}, false, apierr.InvalidArgument(ReasonStateReasonInvalid,
			"the reason is longer than %d characters", MaxStateReasonLen).InDomain(Domain)
	}
	return s.changeState(ctx, c, id, StateSuspended, StateActive, reason)
}

// changeState moves tenant id from `from` to `to`; a tenant in `to`
// already is answered unchanged, one in any other state is refused.
func (s *Service) changeState(ctx context.Context, c Caller, id string, from, to TenantState, reason string) (Tenant, bool, error) {
	if !tenantIDPattern.MatchString(id) {
		return Tenant{}, false, invalidTenant(id)
	}
	ch := StateChange{To: to, Reason: reason, By: c.Subject, At: s.now().UTC().Truncate(time.Microsecond)}
	ch.Events = func(before, after Tenant) ([]Event, error) {
		if before.State != from {
			return nil, apierr.FailedPrecondition(ReasonStateTransitionInvalid,
				"tenant %q is %s: only a %s tenant can become %s", id, before.State, from, to).InDomain(Domain)
		}
		return stateEvents(StatePayload{TenantID: id, From: string(before.State), To: string(to),
			Reason: reason, ChangedBy: c.Subject, Time: ch.At}, id, adminTenant)
	}
	t, changed, err := s.store.ChangeTenantState(ctx, id, ch)
	var ae *apierr.Error
	switch {
	case errors.Is(err, ErrNotFound):
		return Tenant{}, false, apierr.NotFound(ReasonTenantNotFound, "tenant %q is not registered", id).InDomain(Domain)
	case errors.As(err, &ae):
		return Tenant{}, false, ae
	case err != nil:
		return Tenant{}, false, fmt.Errorf("change tenant state: %w", err)
	}
	if changed && s.hooks.Audited != nil {
		s.hooks.Audited()
	}
	return t, changed, nil
}

// stateEvents are the audit events of one change, one for each log named
// (the tenant's own, the platform's).
func stateEvents(p StatePayload, logs ...string) ([]Event, error) {
	payload, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	var out []Event
	for _, tenant := range logs {
		out = append(out, Event{Topic: TopicTenantState, Key: ulid.Make().String(), TenantID: tenant, Payload: payload})
	}
	return out, nil
}

// TenantState is the identity layer's lookup of a tenant's state in this
// process (tenancy's own interceptor, and GetTenantState).
func (s *Service) TenantState(ctx context.Context, id string) (identity.TenantState, error) {
	t, err := s.store.GetTenant(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return identity.TenantActive, identity.ErrTenantNotFound
	}
	if err != nil {
		return identity.TenantActive, fmt.Errorf("tenant state: %w", err)
	}
	return t.State.Identity(), nil
}
