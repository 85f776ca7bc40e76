package validate

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	"github.com/echopilot/echopilot/platform/apierr"
)

func TestRequiredFields(t *testing.T) {
	var c Checker
	tests := []struct {
		name  string
		err   error
		field string
	}{
		{"missing scalar", c.Check(&tenancyv1.TestAccessRequest{}), "target_tenant_id"},
		{"present scalar", c.Check(&tenancyv1.TestAccessRequest{TargetTenantId: "acme"}), ""},
		{"optional only", c.Check(&tenancyv1.ListTenantsRequest{}), ""},
		{"empty batch", c.Check(&tenancyv1.ReportDecisionsRequest{}), "decisions"},
		{"nested item missing tenant", c.Check(&tenancyv1.ReportDecisionsRequest{
			Decisions: []*tenancyv1.Decision{{TenantId: "a", Outcome: tenancyv1.Outcome_OUTCOME_ALLOWED}, {Outcome: tenancyv1.Outcome_OUTCOME_DENIED}},
		}), "decisions[].tenant_id"},
		{"nested ok", c.Check(&tenancyv1.ReportDecisionsRequest{
			Decisions: []*tenancyv1.Decision{{TenantId: "a", Outcome: tenancyv1.Outcome_OUTCOME_ALLOWED}},
		}), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.field == "" {
				if tt.err != nil {
					t.Fatalf("unexpected error %v", tt.err)
				}
				return
			}
			if status.Code(tt.err) != codes.InvalidArgument || apierr.Reason(tt.err) != ReasonFieldRequired {
				t.Fatalf("got %v, want InvalidArgument %s", tt.err, ReasonFieldRequired)
			}
			e, _ := apierr.As(tt.err)
			if e.Metadata["field"] != tt.field {
				t.Fatalf("field = %q, want %q", e.Metadata["field"], tt.field)
			}
		})
	}
}
