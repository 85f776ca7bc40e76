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

func priorityName(p queuev1.Priority) string {
	for d, v := range priorities {
		if v == p {
			return d.String()
		}
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
	for d, v := range statuses {
		if v == s {
			return string(d)
		}
	}
	if s == queuev1.JobStatus_JOB_STATUS_UNSPECIFIED {
		return ""
	}
	return s.String()
}
