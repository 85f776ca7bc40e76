package restjson

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	restv1 "github.com/echopilot/echopilot/gen/go/echopilot/rest/v1"
	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
)

func TestSeedTenantInfoShape(t *testing.T) {
	msg := &tenancyv1.GetTenantInfoResponse{
		TenantId: "default",
		Stats:    &tenancyv1.TenantStats{TotalEvents: 1, Tenants: map[string]int64{"default": 1}},
	}
	got, err := MarshalOK(msg)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"ok":true,"tenant_id":"default","tenant_verified":false,"stats":{"total_events":1,"tenants":{"default":1},"denied_access":0,"cross_tenant_denied":0}}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestZeroValuesAndNestedPresent(t *testing.T) {
	got, err := MarshalOK(&tenancyv1.GetTenantInfoResponse{})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"ok":true,"tenant_id":"","tenant_verified":false,"stats":{"total_events":0,"tenants":{},"denied_access":0,"cross_tenant_denied":0}}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestLargeInt64StaysANumber(t *testing.T) {
	got, err := Marshal(&tenancyv1.TenantStats{TotalEvents: math.MaxInt64, Tenants: map[string]int64{"b": 2, "a": 1}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(got), `"total_events":9223372036854775807`) || !strings.Contains(string(got), `{"a":1,"b":2}`) {
		t.Fatalf("got %s", got)
	}
}

func TestWellKnownTypesAndRepeated(t *testing.T) {
	msg := &tenancyv1.ListTenantsResponse{Tenants: []*tenancyv1.Tenant{
		{TenantId: "acme", CreateTime: timestamppb.New(timestamppb.Now().AsTime().Truncate(1e9))},
		{TenantId: "bare"},
	}}
	got, err := MarshalOK(msg)
	if err != nil {
		t.Fatal(err)
	}
	var decoded struct {
		OK      bool `json:"ok"`
		Tenants []struct {
			TenantID   string  `json:"tenant_id"`
			CreateTime *string `json:"create_time"`
		} `json:"tenants"`
		Next string `json:"next_page_token"`
	}
	if err := json.Unmarshal(got, &decoded); err != nil {
		t.Fatalf("invalid JSON %s: %v", got, err)
	}
	if !decoded.OK || len(decoded.Tenants) != 2 || decoded.Tenants[0].CreateTime == nil || decoded.Tenants[1].CreateTime != nil {
		t.Fatalf("unexpected %s", got)
	}
	if b, err := Marshal(structpb.NewStringValue("x")); err != nil || string(b) != `"x"` {
		t.Fatalf("well-known type: %s %v", b, err)
	}
}

func TestStringsEscapedAndInvalidUTF8Replaced(t *testing.T) {
	got, err := Marshal(&tenancyv1.Tenant{TenantId: "a\"b\x00\xff"})
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(got, &v); err != nil {
		t.Fatalf("invalid JSON %q: %v", got, err)
	}
}

// "ok" opens the top-level object only: not nested messages, not elements
// of repeated fields, and not Marshal's output (error bodies, parts).
func TestOkOnlyAtTopLevel(t *testing.T) {
	msg := &tenancyv1.ListTenantsResponse{Tenants: []*tenancyv1.Tenant{{TenantId: "acme"}}, NextPageToken: "n"}
	got, err := MarshalOK(msg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(got), `{"ok":true,"tenants":[{"tenant_id":"acme",`) || strings.Count(string(got), `"ok"`) != 1 {
		t.Fatalf("want one ok, first, and none in the nested tenant: %s", got)
	}
	bare, err := Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(bare), `{"tenants":[`) || strings.Contains(string(bare), `"ok"`) {
		t.Fatalf("Marshal added an envelope: %s", bare)
	}
	if string(got) != `{"ok":true,`+string(bare[1:]) {
		t.Fatalf("MarshalOK is not Marshal behind \"ok\":true:\n%s\n%s", got, bare)
	}
}

func TestOkAloneForAMessageWithNoFields(t *testing.T) {
	got, err := MarshalOK(&auditv1.DeleteEndpointResponse{})
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != `{"ok":true}` {
		t.Fatalf("got %s, want {\"ok\":true}", got)
	}
}

// The error envelope keeps its own "ok" field, written as it is: false.
func TestErrorBodyKeepsItsOwnOk(t *testing.T) {
	got, err := Marshal(&restv1.ErrorResponse{Error: &restv1.ErrorDetail{Code: 404, Status: "NOT_FOUND", Reason: "PATH_NOT_FOUND"}})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"ok":false,"error":{"code":404,"status":"NOT_FOUND","reason":"PATH_NOT_FOUND","message":"","request_id":"","metadata":{}}}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// A response with a field named ok would get the key twice; MarshalOK
// refuses it, and well-known types, whose JSON need not be an object.
func TestMarshalOKRefusesWhatCannotTakeTheEnvelope(t *testing.T) {
	if b, err := MarshalOK(&restv1.ErrorResponse{}); err == nil {
		t.Fatalf("a message with its own ok field was enveloped: %s", b)
	}
	if b, err := MarshalOK(structpb.NewStringValue("x")); err == nil {
		t.Fatalf("a well-known type was enveloped: %s", b)
	}
}
