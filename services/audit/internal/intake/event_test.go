package intake

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/services/audit/internal/domain"
	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

// details parses a body and returns the details its entry would get.
func details(t *testing.T, body string) (complianceEvent, map[string]any) {
	t.Helper()
	ev, err := parseEvent([]byte(body))
	if err != nil {
		t.Fatalf("parseEvent(%s): %v", body, err)
	}
	raw, err := ev.entryDetails()
	if err != nil {
		t.Fatalf("entryDetails(%s): %v", body, err)
	}
	canon, err := ledger.CanonicalDetails(raw)
	if err != nil {
		t.Fatalf("details of %s do not canonicalize: %v", body, err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(canon), &m); err != nil {
		t.Fatal(err)
	}
	return ev, m
}

func TestEventKeepsUnknownMembers(t *testing.T) {
	for _, tt := range []struct {
		name, body string
		id         string
		want       map[string]any
	}{
		{"known only", `{"event_type":"a","severity":"low","details":{"k":1}}`, "",
			map[string]any{"k": 1.0}},
		{"unknown kept under extra", `{"id":"evt_1","event_type":"a","severity":"low","source":{"sys":"x"},"details":{"k":1}}`, "evt_1",
			map[string]any{"k": 1.0, "extra": map[string]any{"id": "evt_1", "source": map[string]any{"sys": "x"}}}},
		{"no details", `{"event_type":"a","severity":"low","version":2}`, "",
			map[string]any{"extra": map[string]any{"version": 2.0}}},
		{"details use extra", `{"event_type":"a","severity":"low","details":{"extra":"mine"},"v":true}`, "",
			map[string]any{"extra": "mine", "_extra": map[string]any{"v": true}}},
		{"details use extra and _extra", `{"event_type":"a","severity":"low","details":{"extra":1,"_extra":2},"v":null}`, "",
			map[string]any{"extra": 1.0, "_extra": 2.0, "__extra": map[string]any{"v": nil}}},
		{"details use __extra", `{"event_type":"a","severity":"low","details":{"__extra":1,"x_extra":2},"v":0}`, "",
			map[string]any{"__extra": 1.0, "x_extra": 2.0, "___extra": map[string]any{"v": 0.0}}},
		{"numeric id", `{"event_type":"a","severity":"low","id":12345}`, "12345",
			map[string]any{"extra": map[string]any{"id": 12345.0}}},
		{"null id", `{"event_type":"a","severity":"low","id":null}`, "",
			map[string]any{"extra": map[string]any{"id": nil}}},
		{"case of known names", `{"Event_Type":"a","SEVERITY":"low","ID":"x"}`, "",
			map[string]any{"extra": map[string]any{"ID": "x"}}},
		{"null strings and details", `{"event_type":"a","severity":"low","user":null,"details":null}`, "",
			map[string]any{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ev, got := details(t, tt.body)
			if ev.ID != tt.id || ev.EventType != "a" || ev.Severity != "low" {
				t.Fatalf("event = %+v", ev)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("details = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestEventRefused(t *testing.T) {
	for name, body := range map[string]string{
		"not an object":       `["event_type"]`,
		"not JSON":            `{"event_type":`,
		"trailing data":       `{"event_type":"a","severity":"low"} {}`,
		"number event_type":   `{"event_type":1,"severity":"low"}`,
		"object severity":     `{"event_type":"a","severity":{}}`,
		"array details":       `{"event_type":"a","severity":"low","details":[1]}`,
		"string details":      `{"event_type":"a","severity":"low","details":"x"}`,
		"known twice":         `{"event_type":"a","severity":"low","severity":"high"}`,
		"known twice by case": `{"event_type":"a","severity":"low","Severity":"high"}`,
		"unknown twice":       `{"event_type":"a","severity":"low","x":1,"x":2}`,
		"id twice":            `{"event_type":"a","severity":"low","id":"1","id":"2"}`,
		"id too long":         `{"event_type":"a","severity":"low","id":"` + strings.Repeat("i", 256) + `"}`,
		"id control char":     `{"event_type":"a","severity":"low","id":"a\nb"}`,
		"id blank":            `{"event_type":"a","severity":"low","id":"  "}`,
		"id object":           `{"event_type":"a","severity":"low","id":{"v":1}}`,
		"id bool":             `{"event_type":"a","severity":"low","id":true}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := parseEvent([]byte(body)); apierr.Reason(err) != ReasonEventInvalid {
				t.Fatalf("parseEvent(%s) = %v, want %s", body, err, ReasonEventInvalid)
			}
		})
	}
	// Details the ledger refuses stay ENTRY_INVALID, as for any entry.
	ev, err := parseEvent([]byte(`{"event_type":"a","severity":"low","details":{"k":1,"k":2},"x":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ev.entryDetails(); apierr.Reason(err) != domain.ReasonEntryInvalid {
		t.Fatalf("duplicate key in details = %v", err)
	}
}

// FuzzComplianceEvent: any body is parsed or refused with
// COMPLIANCE_EVENT_INVALID, never a panic; an accepted body's entry
// details canonicalize (or are ENTRY_INVALID, as oversized details are)
// and keep every unknown member, and the id is always a valid one.
func FuzzComplianceEvent(f *testing.F) {
	f.Add([]byte(`{"event_type":"gdpr.request","severity":"critical","user":"dpo","details":{"ticket":"T-1"}}`))
	f.Add([]byte(`{"id":"evt_1","event_type":"a","severity":"low","source":"crm","details":{"extra":1}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := parseEvent(body)
		if err != nil {
			if apierr.Reason(err) != ReasonEventInvalid {
				t.Fatalf("parseEvent: %v", err)
			}
			return
		}
		if ev.ID != "" && (len(ev.ID) > 255 || strings.ContainsAny(ev.ID, "\x00\r\n")) {
			t.Fatalf("accepted id %q", ev.ID)
		}
		raw, err := ev.entryDetails()
		if err != nil {
			if apierr.Reason(err) != domain.ReasonEntryInvalid {
				t.Fatalf("entryDetails: %v", err)
			}
			return
		}
		canon, err := ledger.CanonicalDetails(raw)
		if err != nil {
			return // too deep or too large: refused by the append, ENTRY_INVALID
		}
		if len(ev.Extra) == 0 {
			return
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(canon), &m); err != nil {
			t.Fatal(err)
		}
		// The unknown members are under the "extra" with the most
		// leading underscores.
		key := ""
		for name := range m {
			if strings.HasSuffix(name, extraKey) && strings.Trim(strings.TrimSuffix(name, extraKey), "_") == "" && len(name) > len(key) {
				key = name
			}
		}
		var extra map[string]json.RawMessage
		if err := json.Unmarshal(m[key], &extra); err != nil {
			t.Fatalf("details %s: %s is not an object: %v", canon, key, err)
		}
		for name := range ev.Extra {
			if _, ok := extra[name]; !ok {
				t.Fatalf("member %q lost: details %s", name, canon)
			}
		}
	})
}
