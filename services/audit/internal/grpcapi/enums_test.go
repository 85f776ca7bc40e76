package grpcapi

import (
	"testing"

	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

// Every ledger severity has its own API value and comes back as its own
// name; UNSPECIFIED is "" (the default) and an undefined number is a name
// the ledger refuses.
func TestSeverityConversion(t *testing.T) {
	seen := map[auditv1.Severity]bool{}
	for _, s := range []string{ledger.SeverityLow, ledger.SeverityMedium, ledger.SeverityHigh, ledger.SeverityCritical} {
		v := severityToProto(s)
		if v == auditv1.Severity_SEVERITY_UNSPECIFIED || seen[v] {
			t.Errorf("%s → %s", s, v)
		}
		seen[v] = true
		if back := severityName(v); back != s {
			t.Errorf("%s → %s → %q", s, v, back)
		}
	}
	if name := severityName(auditv1.Severity_SEVERITY_UNSPECIFIED); name != "" {
		t.Errorf("UNSPECIFIED → %q", name)
	}
	for _, n := range []auditv1.Severity{-1, 99} {
		if name := severityName(n); name == "" || ledger.ValidSeverity(name) {
			t.Errorf("%d → %q", n, name)
		}
	}
}
