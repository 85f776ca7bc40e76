package domain

import (
	"encoding/json"
	"time"
)

// TopicAccessDenied is the outbox topic of audited denials (see
// Decision.Audited); the audit service's tenant logs receive them.
const TopicAccessDenied = "tenancy.access.denied"

// Event is an outbox message to write in the transaction of a change.
type Event struct {
	Topic    string
	Key      string
	TenantID string
	Payload  json.RawMessage
}

// Audited reports whether d belongs in the audit log of its tenant: every
// denial of a verified caller (whatever the reason: CROSS_TENANT_DENIED,
// TENANT_NOT_ALLOWED, ROLE_REQUIRED, TENANT_CONFLICT, POLICY_MISSING,
// SERVICE_IDENTITY_INVALID …).
//
// Denials of callers without a verified token (TOKEN_MISSING,
// TOKEN_INVALID, TOKEN_EXPIRED, or an anonymous cross-tenant probe) are
// left out: such a caller speaks for no tenant, so they are counted under
// identity.UnverifiedBucket and kept as raw decisions, and anyone could
// otherwise fill any tenant's permanent, append-only log with entries it
// cannot attribute.
//
// Nor are decisions naming an erased tenant (Erased): its log ends with
// its tombstone.
func (d Decision) Audited() bool {
	return !d.Allowed && d.Verified && !d.Erased
}

// DeniedPayload is the JSON of a TopicAccessDenied event. Field names are
// the contract with the consumer: add fields, never rename them.
type DeniedPayload struct {
	TenantID       string    `json:"tenant_id"`
	TargetTenantID string    `json:"target_tenant_id"`
	Subject        string    `json:"subject"`
	Method         string    `json:"method"`
	Service        string    `json:"service"`
	Reason         string    `json:"reason"`
	Verified       bool      `json:"verified"`
	Time           time.Time `json:"time"`
}

// DeniedEvent is the event an audited denial d, stored as decision id,
// writes to the outbox: under the denied caller's tenant (the one d is
// counted under), keyed by the decision id. d.Time must be set.
func DeniedEvent(id string, d Decision) (Event, error) {
	target := d.TargetTenantID
	if target == "" { // "" means the caller's own tenant
		target = d.TenantID
	}
	payload, err := json.Marshal(DeniedPayload{
		TenantID: d.TenantID, TargetTenantID: target, Subject: d.Subject, Method: d.Method,
		Service: d.Service, Reason: d.Reason, Verified: d.Verified,
		// The precision the decision is stored at.
		Time: d.Time.UTC().Truncate(time.Microsecond),
	})
	if err != nil {
		return Event{}, err
	}
	return Event{Topic: TopicAccessDenied, Key: id, TenantID: d.TenantID, Payload: payload}, nil
}
