package grpcapi

import (
	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

var severities = map[string]auditv1.Severity{
	ledger.SeverityLow:      auditv1.Severity_SEVERITY_LOW,
	ledger.SeverityMedium:   auditv1.Severity_SEVERITY_MEDIUM,
	ledger.SeverityHigh:     auditv1.Severity_SEVERITY_HIGH,
	ledger.SeverityCritical: auditv1.Severity_SEVERITY_CRITICAL,
}

// severityToProto is the API value of a stored severity (validated on
// append, so always one of the four).
func severityToProto(s string) auditv1.Severity { return severities[s] }

// severityName is the ledger's name of s for the domain to validate:
// UNSPECIFIED is "" (low for an entry, any for a filter), and a number the
// API does not define is its decimal string, which the domain refuses with
// the reason code it gives any unknown name.
func severityName(s auditv1.Severity) string {
	for name, v := range severities {
		if v == s {
			return name
		}
	}
	if s == auditv1.Severity_SEVERITY_UNSPECIFIED {
		return ""
	}
	return s.String()
}
