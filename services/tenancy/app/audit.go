package app

import (
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"

	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	"github.com/echopilot/echopilot/platform/auditrelay"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/outbox"
	"github.com/echopilot/echopilot/platform/text"
	"github.com/echopilot/echopilot/services/tenancy/internal/domain"
)

// Audit entries written for denials.
const (
	// EventTypeAccessDenied is the audit event type of a denial.
	EventTypeAccessDenied = "access.denied"
	// maxAuditField is the audit service's limit on user, action and
	// resource; longer values are cut rather than have the entry refused.
	maxAuditField = 1024
)

// AuditRecorder delivers audited denials to the audit service's
// AppendEntries, a claimed batch per call, each entry naming the denied
// caller's tenant, with this service's token (the service role may append
// to any tenant's log).
//
// The outbox event id is each entry's idempotency key (and its details'
// "event_id"), so an event redelivered after a lost answer is appended
// once.
func AuditRecorder(conn grpc.ClientConnInterface) outbox.BatchPublisher {
	return auditrelay.Publisher(auditEntry)(conn)
}

// Audit event types of tenant state changes.
const (
	EventTypeTenantSuspended   = "tenant.suspended"
	EventTypeTenantResumed     = "tenant.resumed"
	EventTypeTenantOffboarding = "tenant.offboarding"
	EventTypeTenantDeleted     = "tenant.deleted"
)

// auditEntry maps an outbox event onto an audit entry.
func auditEntry(e outbox.Event) (*auditv1.NewEntry, error) {
	if e.Topic == domain.TopicTenantState {
		return stateEntry(e)
	}
	return deniedEntry(e)
}

// stateEntry maps a state change onto an entry of the log the event names
// (the tenant's, or the platform's).
func stateEntry(e outbox.Event) (*auditv1.NewEntry, error) {
	var p domain.StatePayload
	if err := outbox.DecodePayload(e, &p); err != nil {
		return nil, err
	}
	typ, severity := EventTypeTenantResumed, auditv1.Severity_SEVERITY_MEDIUM
	switch domain.TenantState(p.To) {
	case domain.StateSuspended:
		typ, severity = EventTypeTenantSuspended, auditv1.Severity_SEVERITY_HIGH
	case domain.StateOffboarding:
		typ, severity = EventTypeTenantOffboarding, auditv1.Severity_SEVERITY_HIGH
	case domain.StateDeleted:
		typ, severity = EventTypeTenantDeleted, auditv1.Severity_SEVERITY_HIGH
	}
	details, err := structpb.NewStruct(map[string]any{
		"from": p.From, "to": p.To, "reason": p.Reason, "tenant_id": p.TenantID, "event_id": e.ID,
		"changed_at": p.Time.UTC().Format(time.RFC3339Nano),
	})
	if err != nil {
		return nil, outbox.Permanent(e, fmt.Errorf("details: %w", err))
	}
	return &auditv1.NewEntry{
		EventType: typ, User: text.Truncate(p.ChangedBy, maxAuditField), Action: typ,
		Resource: text.Truncate("tenant/"+p.TenantID, maxAuditField), Details: details, Severity: severity,
		TenantId: e.TenantID, IdempotencyKey: e.ID,
	}, nil
}

// deniedEntry maps the event written by domain.DeniedEvent onto an entry of
// the denied caller's tenant log.
func deniedEntry(e outbox.Event) (*auditv1.NewEntry, error) {
	var p domain.DeniedPayload
	if err := outbox.DecodePayload(e, &p); err != nil {
		return nil, err
	}
	target := p.TargetTenantID
	if target == "" {
		target = e.TenantID
	}
	// A verified caller reaching for another tenant is worth an alert (high
	// entries go to the tenant's webhook endpoints); an anonymous probe in
	// optional mode is not.
	severity := auditv1.Severity_SEVERITY_MEDIUM
	if p.Reason == identity.ReasonCrossTenantDenied && p.Verified {
		severity = auditv1.Severity_SEVERITY_HIGH
	}
	fields := map[string]any{
		"reason":           p.Reason,
		"service":          p.Service,
		"verified":         p.Verified,
		"target_tenant_id": target,
		"event_id":         e.ID,
	}
	if !p.Time.IsZero() {
		// The entry's own ts is when audit appended it, which retries can
		// put well after the decision.
		fields["decided_at"] = p.Time.UTC().Format(time.RFC3339Nano)
	}
	details, err := structpb.NewStruct(fields)
	if err != nil {
		return nil, outbox.Permanent(e, fmt.Errorf("details: %w", err))
	}
	return &auditv1.NewEntry{
		EventType: EventTypeAccessDenied,
		User:      text.Truncate(p.Subject, maxAuditField),
		Action:    text.Truncate(p.Method, maxAuditField),
		Resource:  text.Truncate("tenant/"+target, maxAuditField),
		Details:   details,
		Severity:  severity,
		TenantId:  e.TenantID,
		// Redeliveries of the event are appended once.
		IdempotencyKey: e.ID,
	}, nil
}
