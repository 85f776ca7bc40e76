package grpcapi

import (
	"testing"

	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	"github.com/echopilot/echopilot/services/queue/internal/domain"
)

// Every domain priority and state has its own API value and comes back as
// its own name; UNSPECIFIED is the domain's default and an undefined number
// is refused as an unknown name is.
func TestPriorityConversion(t *testing.T) {
	seen := map[queuev1.Priority]bool{}
	for _, p := range domain.Priorities() {
		v := priorityToProto(p)
		if v == queuev1.Priority_PRIORITY_UNSPECIFIED || seen[v] {
			t.Errorf("%s → %s", p, v)
		}
		seen[v] = true
		if back, ok := domain.ParsePriority(priorityName(v)); !ok || back != p {
			t.Errorf("%s → %s → %v", p, v, back)
		}
	}
	if p, ok := domain.ParsePriority(priorityName(queuev1.Priority_PRIORITY_UNSPECIFIED)); !ok || p != domain.PriorityNormal {
		t.Errorf("UNSPECIFIED → %v %v, want normal", p, ok)
	}
	for _, n := range []queuev1.Priority{-1, 99} {
		if name := priorityName(n); name == "" {
			t.Errorf("%d → the default", n)
		} else if _, ok := domain.ParsePriority(name); ok {
			t.Errorf("%d → %q, which the domain accepts", n, name)
		}
	}
}

func TestStatusConversion(t *testing.T) {
	seen := map[queuev1.JobStatus]bool{}
	for _, s := range domain.Statuses() {
		v := statusToProto(s)
		if v == queuev1.JobStatus_JOB_STATUS_UNSPECIFIED || seen[v] {
			t.Errorf("%s → %s", s, v)
		}
		seen[v] = true
		if back, ok := domain.ParseStatus(statusName(v)); !ok || back != s {
			t.Errorf("%s → %s → %v", s, v, back)
		}
	}
	if name := statusName(queuev1.JobStatus_JOB_STATUS_UNSPECIFIED); name != "" {
		t.Errorf("UNSPECIFIED → %q, want \"\" (any)", name)
	}
	for _, n := range []queuev1.JobStatus{-1, 99} {
		if name := statusName(n); name == "" {
			t.Errorf("%d → any", n)
		} else if _, ok := domain.ParseStatus(name); ok {
			t.Errorf("%d → %q, which the domain accepts", n, name)
		}
	}
}

// Every API bulk action names a domain action; an undefined number names
// none.
func TestActionConversion(t *testing.T) {
	for v, name := range queuev1.BulkAction_name {
		a := domain.Action(actionName(queuev1.BulkAction(v)))
		if got := a.Statuses() != nil; got != (v != 0) {
			t.Errorf("%s → %q: a domain action %v", name, a, got)
		}
	}
	if a := domain.Action(actionName(queuev1.BulkAction(9))); a.Statuses() != nil {
		t.Errorf("9 → %q, which the domain accepts", a)
	}
}

// Every API attempt outcome but UNSPECIFIED is some domain outcome's.
func TestOutcomeConversion(t *testing.T) {
	seen := map[queuev1.AttemptOutcome]bool{}
	for _, v := range outcomes {
		seen[v] = true
	}
	for v, name := range queuev1.AttemptOutcome_name {
		if seen[queuev1.AttemptOutcome(v)] != (v != 0) {
			t.Errorf("%s: mapped %v", name, seen[queuev1.AttemptOutcome(v)])
		}
	}
}
