package restjson

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
)

func TestSeedTenantInfoShape(t *testing.T) {
	msg := &tenancyv1.GetTenantInfoResponse{
		TenantId: "default",
		Stats:    &tenancyv1.TenantStats{TotalEvents: 1, Tenants: map[string]int64{"default": 1}},
	}
	got, err := Marshal(msg, "ok")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"ok":true,"tenant_id":"default","tenant_verified":false,"stats":{"total_events":1,"tenants":{"default":1},"denied_access":0,"cross_tenant_denied":0}}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestZeroValuesAndNestedPresent(t *testing.T) {
	got, err := Marshal(&tenancyv1.GetTenantInfoResponse{}, "ok")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"ok":true,"tenant_id":"","tenant_verified":false,"stats":{"total_events":0,"tenants":{},"denied_access":0,"cross_tenant_denied":0}}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestLargeInt64StaysANumber(t *testing.T) {
	got, err := Marshal(&tenancyv1.TenantStats{TotalEvents: math.MaxInt64, Tenants: map[string]int64{"b": 2, "a": 1}}, "")
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
	got, err := Marshal(msg, "ok")
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
	if b, err := Marshal(structpb.NewStringValue("x"), ""); err != nil || string(b) != `"x"` {
		t.Fatalf("well-known type: %s %v", b, err)
	}
}

func TestStringsEscapedAndInvalidUTF8Replaced(t *testing.T) {
	got, err := Marshal(&tenancyv1.Tenant{TenantId: "a\"b\x00\xff"}, "")
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(got, &v); err != nil {
		t.Fatalf("invalid JSON %q: %v", got, err)
	}
}

func TestOkOnlyForcedAtTopLevel(t *testing.T) {
	got, err := Marshal(&tenancyv1.TestAccessResponse{}, "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(got), `{"ok":false`) {
		t.Fatalf("ok forced without being asked: %s", got)
	}
}
