package intake

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/services/audit/internal/domain"
	"github.com/echopilot/echopilot/services/audit/internal/ledger"
	"github.com/echopilot/echopilot/services/audit/internal/webhook"
)

// The shape of an inbound compliance event, and what becomes of it.
//
// The body is one JSON object. Its known members are the entry's fields
// event_type, severity, user, action and resource (strings; null is ""),
// details (an object, or null) and id, the sender's event id (a string or
// a number, at most webhook.MaxIDLen bytes; null or "" is none). Known
// names match as encoding/json matches struct fields (exactly or without
// regard to case), except id, which matches exactly. A known member of the
// wrong type, a member given twice, anything but one object or an id that
// is too long or holds control characters is COMPLIANCE_EVENT_INVALID: a
// body whose meaning would depend on the reader is not recorded.
//
// Senders add fields over time, so any other member is kept rather than
// refused: the entry's details are the event's details with one more
// member, present only when the event has other members, holding them as
// an object exactly as sent (name → value). That member is named "extra",
// unless the event's own details use "extra" or "_extra", "__extra"…: then
// it has one underscore more than the longest of those, so a reader finds
// it as the "extra" with the most leading underscores. id is among the
// members kept, as it is not an entry field; it is also the duplicate key
// of the event (see HandleCompliance).
const extraKey = "extra"

// eventIDPrefix namespaces senders' event ids among the keys a tenant's log
// claims: they never meet idempotency keys ("key:") or replay keys ("eps:",
// "swh:").
const eventIDPrefix = "evt:"

// complianceEvent is a parsed compliance webhook body.
type complianceEvent struct {
	EventType, Severity, User, Action, Resource string
	Details                                     []byte // a JSON object, or nil
	// ID is the sender's event id; "" when none.
	ID string
	// Extra are the members that are not entry fields, by name.
	Extra map[string]json.RawMessage
}

// knownFields are the members that are entry fields, by canonical name;
// the string fields first, in the order parseEvent fills them.
var knownFields = []string{"event_type", "severity", "user", "action", "resource", "details"}

func eventInvalid(format string, args ...any) error {
	return apierr.InvalidArgument(ReasonEventInvalid, format, args...).InDomain(domain.Domain)
}

// entryInvalid refuses details the ledger would refuse too, with its reason.
func entryInvalid(format string, args ...any) error {
	return apierr.InvalidArgument(domain.ReasonEntryInvalid, format, args...).InDomain(domain.Domain)
}

// parseEvent reads a compliance webhook body (see extraKey for the rules).
func parseEvent(payload []byte) (complianceEvent, error) {
	ev := complianceEvent{Extra: map[string]json.RawMessage{}}
	dec := json.NewDecoder(bytes.NewReader(payload))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return ev, eventInvalid("the body is not a compliance event: not a JSON object")
	}
	known := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return ev, eventInvalid("the body is not a compliance event: %v", err)
		}
		name, _ := tok.(string) // the decoder only yields strings in key position
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return ev, eventInvalid("the body is not a compliance event: %v", err)
		}
		raw = bytes.TrimSpace(raw)
		field := knownField(name)
		if _, twice := known[field]; field != "" && twice {
			return ev, eventInvalid("%s is given more than once", field)
		}
		if _, twice := ev.Extra[name]; field == "" && twice {
			return ev, eventInvalid("member %q is given more than once", apierr.Clip(name))
		}
		if field != "" {
			known[field] = raw
			continue
		}
		ev.Extra[name] = raw
		if name == "id" {
			if ev.ID, err = eventID(raw); err != nil {
				return ev, err
			}
		}
	}
	if _, err := dec.Token(); err != nil { // '}'
		return ev, eventInvalid("the body is not a compliance event: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return ev, eventInvalid("the body is not a compliance event: data after the event")
	}
	for i, p := range []*string{&ev.EventType, &ev.Severity, &ev.User, &ev.Action, &ev.Resource} {
		raw, ok := known[knownFields[i]]
		if !ok {
			continue
		}
		var s *string
		if err := json.Unmarshal(raw, &s); err != nil {
			return ev, eventInvalid("%s must be a string", knownFields[i])
		}
		if s != nil {
			*p = *s
		}
	}
	if raw, ok := known["details"]; ok && !isNull(raw) {
		if raw[0] != '{' {
			return ev, eventInvalid("details must be a JSON object")
		}
		ev.Details = raw
	}
	return ev, nil
}

// knownField is the canonical name of the entry field name stands for, or
// "" for a member that is not one.
func knownField(name string) string {
	for _, f := range knownFields {
		if strings.EqualFold(name, f) {
			return f
		}
	}
	return ""
}

// eventID reads the sender's event id: a string, or a number as written.
func eventID(raw json.RawMessage) (string, error) {
	var id string
	switch {
	case isNull(raw):
		return "", nil
	case raw[0] == '"':
		if err := json.Unmarshal(raw, &id); err != nil {
			return "", eventInvalid("id must be a string or a number")
		}
		if id == "" {
			return "", nil
		}
	case raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'):
		id = string(raw)
	default:
		return "", eventInvalid("id must be a string or a number")
	}
	if !webhook.ValidID(id) {
		return "", eventInvalid("id must be 1 to %d bytes of UTF-8 without control characters", webhook.MaxIDLen)
	}
	return id, nil
}

// extraName is the name the unknown members take in details: "extra" with
// one more leading underscore than the longest such name details use.
func extraName(details map[string]json.RawMessage) string {
	key := extraKey
	for name := range details {
		if strings.HasSuffix(name, extraKey) && strings.Trim(name[:len(name)-len(extraKey)], "_") == "" && len(name) >= len(key) {
			key = "_" + name
		}
	}
	return key
}

func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

// entryDetails are the details of the entry of ev: its details, with its
// other members under extraName.
func (ev complianceEvent) entryDetails() ([]byte, error) {
	if len(ev.Extra) == 0 {
		return ev.Details, nil
	}
	// Canonical first: it refuses duplicate keys, which a map would hide.
	canon, err := ledger.CanonicalDetails(ev.Details)
	if err != nil {
		return nil, entryInvalid("%v", err)
	}
	var details map[string]json.RawMessage
	if err := json.Unmarshal([]byte(canon), &details); err != nil {
		return nil, fmt.Errorf("canonical details: %w", err)
	}
	key := extraName(details)
	extra, err := json.Marshal(ev.Extra)
	if err != nil {
		return nil, entryInvalid("extra members: %v", err)
	}
	details[key] = extra
	out, err := json.Marshal(details)
	if err != nil {
		return nil, entryInvalid("details: %v", err)
	}
	return out, nil
}
