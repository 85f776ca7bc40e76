package app

import (
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"

	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	"github.com/echopilot/echopilot/platform/auditrelay"
	"github.com/echopilot/echopilot/platform/outbox"
	"github.com/echopilot/echopilot/services/finops/internal/domain"
)

// EventTypeAlert is the audit event type of a finops alert.
const EventTypeAlert = "finops.alert"

// AuditRecorder delivers recorded alerts to the audit service, each an
// entry of the alert's tenant log (tenant "default": the platform's);
// audit's webhooks (high and critical entries) are the notification.
func AuditRecorder(conn grpc.ClientConnInterface) outbox.BatchPublisher {
	return auditrelay.Publisher(alertEntry)(conn)
}

// alertEntry maps a TopicAlert event onto an audit entry. Every alert is a
// notification, so at least high severity, the least a webhook endpoint
// subscribes to; a budget spent (100 % or more of actual spend) is
// critical.
func alertEntry(e outbox.Event) (*auditv1.NewEntry, error) {
	var p domain.AlertPayload
	if err := outbox.DecodePayload(e, &p); err != nil {
		return nil, err
	}
	severity := auditv1.Severity_SEVERITY_HIGH
	if p.Kind == domain.AlertBudget && p.Metric == domain.BasisActual && p.ThresholdPct >= 100 {
		severity = auditv1.Severity_SEVERITY_CRITICAL
	}
	details, err := structpb.NewStruct(map[string]any{
		"kind": p.Kind, "metric": p.Metric, "period": p.Period, "threshold_pct": p.ThresholdPct,
		"value": p.Value, "reference": p.Reference, "message": p.Message, "event_id": e.ID,
		"recorded_at": p.CreatedAt.UTC().Format(time.RFC3339Nano),
	})
	if err != nil {
		return nil, outbox.Permanent(e, fmt.Errorf("details: %w", err))
	}
	return &auditv1.NewEntry{
		EventType:      EventTypeAlert,
		User:           "service:finops",
		Action:         p.Kind,
		Resource:       p.Key,
		Details:        details,
		Severity:       severity,
		TenantId:       e.TenantID,
		IdempotencyKey: e.ID,
	}, nil
}
