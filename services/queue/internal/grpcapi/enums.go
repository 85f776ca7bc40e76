package grpcapi

import (
	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	"github.com/echopilot/echopilot/services/queue/internal/domain"
)

// The API's enums meet the domain's types here. Requests hand the domain
// its names to validate: UNSPECIFIED is "" (the domain's default or "any"),
// and a number the API does not define is its decimal string, which the
// domain refuses with the reason code it gives any unknown name.

var priorities = map[domain.Priority]queuev1.Priority{
	domain.PriorityCritical: queuev1.Priority_PRIORITY_CRITICAL,
	domain.PriorityHigh:     queuev1.Priority_PRIORITY_HIGH,
	domain.PriorityNormal:   queuev1.Priority_PRIORITY_NORMAL,
	domain.PriorityLow:      queuev1.Priority_PRIORITY_LOW,
}

func priorityToProto(p domain.Priority) queuev1.Priority { return priorities[p] }

// domainOf is the domain value m maps to the API value v.
func domainOf[D, V comparable](m map[D]V, v V) (D, bool) {
	for d, x := range m {
		if x == v {
			return d, true
		}
	}
	var zero D
	return zero, false
}

func priorityName(p queuev1.Priority) string {
	if d, ok := domainOf(priorities, p); ok {
		return d.String()
	}
	if p == queuev1.Priority_PRIORITY_UNSPECIFIED {
		return ""
	}
	return p.String()
}

var statuses = map[domain.Status]queuev1.JobStatus{
	domain.StatusQueued:     queuev1.JobStatus_JOB_STATUS_QUEUED,
	domain.StatusProcessing: queuev1.JobStatus_JOB_STATUS_PROCESSING,
	domain.StatusCompleted:  queuev1.JobStatus_JOB_STATUS_COMPLETED,
	domain.StatusFailed:     queuev1.JobStatus_JOB_STATUS_FAILED,
	domain.StatusDead:       queuev1.JobStatus_JOB_STATUS_DEAD,
	domain.StatusCancelled:  queuev1.JobStatus_JOB_STATUS_CANCELLED,
}

func statusToProto(s domain.Status) queuev1.JobStatus { return statuses[s] }

func statusName(s queuev1.JobStatus) string {
	if d, ok := domainOf(statuses, s); ok {
		return string(d)
	}
	if s == queuev1.JobStatus_JOB_STATUS_UNSPECIFIED {
		return ""
	}
	return s.String()
}

var actions = map[domain.Action]queuev1.BulkAction{
	domain.ActionCancel: queuev1.BulkAction_BULK_ACTION_CANCEL,
	domain.ActionRetry:  queuev1.BulkAction_BULK_ACTION_RETRY,
	domain.ActionDelete: queuev1.BulkAction_BULK_ACTION_DELETE,
}

// actionName is a's domain name; UNSPECIFIED cannot reach it (the field is
// required), an undefined number is refused by the domain.
func actionName(a queuev1.BulkAction) string {
	if d, ok := domainOf(actions, a); ok {
		return string(d)
	}
	return a.String()
}

var outcomes = map[domain.Outcome]queuev1.AttemptOutcome{
	domain.OutcomeRunning:      queuev1.AttemptOutcome_ATTEMPT_OUTCOME_RUNNING,
	domain.OutcomeCompleted:    queuev1.AttemptOutcome_ATTEMPT_OUTCOME_COMPLETED,
	domain.OutcomeFailed:       queuev1.AttemptOutcome_ATTEMPT_OUTCOME_FAILED,
	domain.OutcomeLeaseExpired: queuev1.AttemptOutcome_ATTEMPT_OUTCOME_LEASE_EXPIRED,
	domain.OutcomeCancelled:    queuev1.AttemptOutcome_ATTEMPT_OUTCOME_CANCELLED,
}
