package stripe

import (
	"encoding/json"
	"regexp"
	"strings"
	"time"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/text"
	"github.com/echopilot/echopilot/services/finops/internal/domain"
)

// Event types finops tracks; ParseEvent reports any other as untracked.
const (
	TypeChargeSucceeded = "charge.succeeded"
	TypeChargeRefunded  = "charge.refunded"
	TypeInvoicePaid     = "invoice.paid"
)

// MaxEventSize bounds a payload ParseEvent accepts. Stripe events are a few
// KiB; the caller bounds the body too, this is the last line.
const MaxEventSize = 1 << 20

const (
	maxIDLen = domain.MaxStripeIDLen
	// maxAmount (10^15 cents) is far above any real charge (Stripe caps
	// amounts at 8-12 digits) and keeps sums of many amounts in int64.
	maxAmount = 1_000_000_000_000_000
	// maxUnix is 9999-12-31T23:59:59Z, the last second storage can hold.
	maxUnix = 253402300799
)

// tenantIDPattern is what a metadata tenant_id may be. Metadata is written by
// whoever creates the charge or invoice, so it is checked before it can
// become a tenant key.
var tenantIDPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// Amounts and times are *int64: encoding/json refuses floats, exponents,
// strings and out-of-range numbers for int64 (json.Number would accept a
// quoted "100"), and the pointer tells a missing or null field from 0.
type (
	event struct {
		ID   string `json:"id"`
		Type string `json:"type"`
		Data struct {
			Object json.RawMessage `json:"object"`
		} `json:"data"`
	}

	// metadata keeps raw values so that only the exact key "tenant_id"
	// counts (struct fields would also match "Tenant_ID").
	metadata map[string]json.RawMessage

	charge struct {
		Object         string          `json:"object"`
		ID             string          `json:"id"`
		Amount         *int64          `json:"amount"`
		AmountRefunded *int64          `json:"amount_refunded"`
		Currency       string          `json:"currency"`
		Customer       json.RawMessage `json:"customer"`
		Created        *int64          `json:"created"`
		Metadata       metadata        `json:"metadata"`
	}

	invoice struct {
		Object            string          `json:"object"`
		ID                string          `json:"id"`
		AmountPaid        *int64          `json:"amount_paid"`
		Currency          string          `json:"currency"`
		Customer          json.RawMessage `json:"customer"`
		Charge            json.RawMessage `json:"charge"`
		Created           *int64          `json:"created"`
		StatusTransitions struct {
			PaidAt *int64 `json:"paid_at"`
		} `json:"status_transitions"`
		Metadata metadata `json:"metadata"`
		// Where newer API versions put the subscription's metadata
		// (parent.subscription_details since 2025-03-31.basil).
		SubscriptionDetails subscriptionDetails `json:"subscription_details"`
		Parent              struct {
			SubscriptionDetails subscriptionDetails `json:"subscription_details"`
		} `json:"parent"`
	}

	subscriptionDetails struct {
		Metadata metadata `json:"metadata"`
	}
)

// ParseEvent decodes a Stripe event and extracts what finops tracks.
// tracked is false, with no error, for types other than charge.succeeded,
// charge.refunded and invoice.paid; ev then carries only EventID and Type.
//
// Charge events: PaymentKey is the charge id, At the charge's creation time
// (not the event's), so every event about one charge agrees.
//
// invoice.paid: PaymentKey is the invoice's charge when it has one, so it
// merges with that charge's events, else the invoice id. The charge's
// creation time is not in the invoice, so At is status_transitions.paid_at
// (else created); paid_at follows the charge, and Payment.Merge keeps the
// earliest time, so the charge's own time wins once its event arrives.
// RefundedCents is 0: refunds arrive as charge.refunded.
//
// API version 2025-03-31.basil removed Invoice.charge: from then on an
// invoice.paid keys on the invoice id and no longer merges with its
// charge's events, so the webhook endpoint must stay on an earlier version.
//
// Any failure is InvalidArgument STRIPE_EVENT_INVALID.
func ParseEvent(payload []byte) (ev domain.PaymentEvent, tracked bool, err error) {
	if len(payload) > MaxEventSize {
		return domain.PaymentEvent{}, false, invalid("event is larger than %d bytes", MaxEventSize)
	}
	var e event
	if err := json.Unmarshal(payload, &e); err != nil {
		return domain.PaymentEvent{}, false, invalid("event is not valid JSON: %s", text.Clip(err.Error(), maxQuoted))
	}
	if !validID(e.ID) {
		return domain.PaymentEvent{}, false, invalid("event id must be 1 to %d printable ASCII characters", maxIDLen)
	}
	if !validID(e.Type) {
		return domain.PaymentEvent{}, false, invalid("event type must be 1 to %d printable ASCII characters", maxIDLen)
	}
	switch e.Type {
	case TypeChargeSucceeded, TypeChargeRefunded:
		ev, err = parseCharge(e.Data.Object, e.Type == TypeChargeRefunded)
	case TypeInvoicePaid:
		ev, err = parseInvoice(e.Data.Object)
	default:
		return domain.PaymentEvent{EventID: e.ID, Type: e.Type}, false, nil
	}
	if err != nil {
		return domain.PaymentEvent{}, false, err
	}
	ev.EventID, ev.Type = e.ID, e.Type
	return ev, true, nil
}

func parseCharge(raw json.RawMessage, refund bool) (domain.PaymentEvent, error) {
	var c charge
	if err := decodeObject(raw, &c); err != nil {
		return domain.PaymentEvent{}, err
	}
	if c.Object != "charge" {
		return domain.PaymentEvent{}, invalid("data.object is not a charge")
	}
	if !validID(c.ID) {
		return domain.PaymentEvent{}, invalid("charge id must be 1 to %d printable ASCII characters", maxIDLen)
	}
	gross, err := amount(c.Amount, "amount")
	if err != nil {
		return domain.PaymentEvent{}, err
	}
	var refunded int64
	if c.AmountRefunded != nil || refund { // a refund event must say how much
		if refunded, err = amount(c.AmountRefunded, "amount_refunded"); err != nil {
			return domain.PaymentEvent{}, err
		}
	}
	if refunded > gross {
		return domain.PaymentEvent{}, invalid("amount_refunded %d exceeds amount %d", refunded, gross)
	}
	cur, err := currency(c.Currency)
	if err != nil {
		return domain.PaymentEvent{}, err
	}
	customer, err := objectID(c.Customer, "customer")
	if err != nil {
		return domain.PaymentEvent{}, err
	}
	at, err := unixTime(c.Created, "created")
	if err != nil {
		return domain.PaymentEvent{}, err
	}
	tenant, err := tenantID(c.Metadata)
	if err != nil {
		return domain.PaymentEvent{}, err
	}
	return domain.PaymentEvent{
		CustomerID:    customer,
		TenantID:      tenant,
		PaymentKey:    c.ID,
		Currency:      cur,
		GrossCents:    gross,
		RefundedCents: refunded,
		At:            at,
	}, nil
}

func parseInvoice(raw json.RawMessage) (domain.PaymentEvent, error) {
	var in invoice
	if err := decodeObject(raw, &in); err != nil {
		return domain.PaymentEvent{}, err
	}
	if in.Object != "invoice" {
		return domain.PaymentEvent{}, invalid("data.object is not an invoice")
	}
	if !validID(in.ID) {
		return domain.PaymentEvent{}, invalid("invoice id must be 1 to %d printable ASCII characters", maxIDLen)
	}
	gross, err := amount(in.AmountPaid, "amount_paid")
	if err != nil {
		return domain.PaymentEvent{}, err
	}
	cur, err := currency(in.Currency)
	if err != nil {
		return domain.PaymentEvent{}, err
	}
	customer, err := objectID(in.Customer, "customer")
	if err != nil {
		return domain.PaymentEvent{}, err
	}
	key, err := objectID(in.Charge, "charge")
	if err != nil {
		return domain.PaymentEvent{}, err
	}
	if key == "" {
		key = in.ID
	}
	when, field := in.StatusTransitions.PaidAt, "status_transitions.paid_at"
	if when == nil {
		when, field = in.Created, "created"
	}
	at, err := unixTime(when, field)
	if err != nil {
		return domain.PaymentEvent{}, err
	}
	// The invoice's own metadata first, then the subscription's. Every
	// tenant_id present must be well formed, whichever is used.
	var tenant string
	for _, md := range []metadata{in.Metadata, in.SubscriptionDetails.Metadata, in.Parent.SubscriptionDetails.Metadata} {
		t, err := tenantID(md)
		if err != nil {
			return domain.PaymentEvent{}, err
		}
		if tenant == "" {
			tenant = t
		}
	}
	return domain.PaymentEvent{
		CustomerID: customer,
		TenantID:   tenant,
		PaymentKey: key,
		Currency:   cur,
		GrossCents: gross,
		At:         at,
	}, nil
}

func decodeObject(raw json.RawMessage, dst any) error {
	if len(raw) == 0 || raw[0] != '{' {
		return invalid("data.object is missing or not an object")
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return invalid("data.object: %s", text.Clip(err.Error(), maxQuoted))
	}
	return nil
}

func amount(v *int64, field string) (int64, error) {
	switch {
	case v == nil:
		return 0, invalid("%s is missing", field)
	case *v < 0 || *v > maxAmount:
		return 0, invalid("%s %d is out of range", field, *v)
	}
	return *v, nil
}

func unixTime(v *int64, field string) (time.Time, error) {
	switch {
	case v == nil:
		return time.Time{}, invalid("%s is missing", field)
	case *v <= 0 || *v > maxUnix:
		return time.Time{}, invalid("%s %d is out of range", field, *v)
	}
	return time.Unix(*v, 0).UTC(), nil
}

// currency is the ISO 4217 code, lower case as Stripe spells it.
func currency(s string) (string, error) {
	if len(s) != 3 {
		return "", invalid("currency must be 3 letters")
	}
	for i := 0; i < len(s); i++ {
		if c := s[i] | 0x20; c < 'a' || c > 'z' { // |0x20 lower-cases ASCII letters
			return "", invalid("currency must be 3 letters")
		}
	}
	return strings.ToLower(s), nil
}

// objectID reads an expandable reference: null or absent (""), an id
// string, or the expanded object with its "id".
func objectID(raw json.RawMessage, field string) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var id string
	if raw[0] == '{' {
		var obj struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(raw, &obj); err != nil {
			return "", invalid("%s: %s", field, text.Clip(err.Error(), maxQuoted))
		}
		id = obj.ID
	} else if err := json.Unmarshal(raw, &id); err != nil {
		return "", invalid("%s must be an id or an object", field)
	}
	if !validID(id) {
		return "", invalid("%s id must be 1 to %d printable ASCII characters", field, maxIDLen)
	}
	return id, nil
}

// tenantID is metadata.tenant_id, "" when absent or null.
func tenantID(md metadata) (string, error) {
	raw, ok := md["tenant_id"]
	if !ok || string(raw) == "null" {
		return "", nil
	}
	var t string
	if err := json.Unmarshal(raw, &t); err != nil || !tenantIDPattern.MatchString(t) {
		return "", invalid("metadata.tenant_id must be 1 to 64 characters of A-Z a-z 0-9 _ . -")
	}
	return t, nil
}

// validID accepts Stripe ids and event types: short, printable ASCII, no
// spaces, so they are safe as keys and in logs. The admin calls accept
// the same customer ids (domain.ValidStripeID).
func validID(s string) bool { return domain.ValidStripeID(s) }

// maxQuoted bounds how much of a decoder message an error quotes (they can
// quote a long number literal).
const maxQuoted = 200

func invalid(format string, args ...any) error {
	return apierr.InvalidArgument(ReasonEventInvalid, "invalid Stripe event: "+format, args...).InDomain(Domain)
}
