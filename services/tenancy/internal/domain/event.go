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
// TENANT_NOT_ALLOWED, ROLE_REQUIRED, TENANT_CONFLICT, POLICY_MISSING …) and
// every cross-tenant denial, verified or not.
//
// Left out are denials of unverified callers within the tenant they claim
// (TOKEN_MISSING, TOKEN_INVALID, TOKEN_EXPIRED, TENANT_INVALID without a
// valid token). Such a decision is counted under the tenant the caller
// merely claims (X-Tenant-ID, else "default"), so anyone could otherwise
// fill any tenant's permanent, append-only log with entries it cannot
// attribute; they stay counted in the stats and kept as raw decisions.
//
// An unverified cross-tenant denial (an anonymous TestAccess in
// auth=optional mode) is audited under its claimed tenant, as it is counted
// there; the entry says verified=false.
func (d Decision) Audited() bool {
	return !d.Allowed && (d.Verified || d.CrossTenantDenied())
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
