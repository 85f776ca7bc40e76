package app_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/service"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/services/queue/app"
)

// TestWorkerRateLimit: with --worker-rate-limit a tenant's worker calls
// beyond the burst are refused with RESOURCE_EXHAUSTED and a retry hint;
// another tenant's workers and the tenant's own non-worker calls are not.
func TestWorkerRateLimit(t *testing.T) {
	// One call a second and a burst of two: the third call within the test's
	// first second is over budget, however slow the machine is.
	c := start(t, servicetest.Options{Args: []string{"--worker-rate-limit=1", "--worker-rate-burst=2"}})
	acme, globex, user := as(t, "acme", "worker"), as(t, "globex", "worker"), as(t, "acme", "user")
	lease := func() error {
		_, err := c.LeaseJobs(acme, &queuev1.LeaseJobsRequest{WorkerId: "w1"})
		return err
	}
	for i := range 2 {
		if err := lease(); err != nil {
			t.Fatalf("call %d within the burst: %v", i+1, err)
		}
	}
	err := lease()
	if status.Code(err) != codes.ResourceExhausted || apierr.Reason(err) != "WORKER_RATE_LIMITED" {
		t.Fatalf("call over the burst = %v, want RESOURCE_EXHAUSTED WORKER_RATE_LIMITED", err)
	}
	if _, err := c.Heartbeat(acme, &queuev1.HeartbeatRequest{JobId: "01JAAAAAAAAAAAAAAAAAAAAAAA", WorkerId: "w1", LeaseToken: 1}); apierr.Reason(err) != "WORKER_RATE_LIMITED" {
		t.Fatalf("a heartbeat over budget = %v, want WORKER_RATE_LIMITED (every worker RPC shares the budget)", err)
	}
	if _, err := c.LeaseJobs(globex, &queuev1.LeaseJobsRequest{WorkerId: "w1"}); err != nil {
		t.Fatalf("another tenant's worker: %v", err)
	}
	if _, err := c.ListJobs(user, &queuev1.ListJobsRequest{}); err != nil {
		t.Fatalf("the tenant's own user reading jobs: %v", err)
	}
}

// A negative budget is a configuration error, not "no limit".
func TestWorkerRateLimitRefusesNegative(t *testing.T) {
	args := []string{"--grpc-addr=127.0.0.1:0", "--metrics-addr=", "--auth-mode=required",
		"--jwt-hs256-secret=" + servicetest.Secret, "--database-url=sqlite://" + filepath.Join(t.TempDir(), "q.db"),
		"--allow-unbound-tokens", "--worker-rate-limit=-1"}
	err := service.RunContext(t.Context(), args, app.Spec(), service.Overrides{Log: zap.NewNop(),
		Decisions: func(context.Context, []identity.Decision) error { return nil }})
	if err == nil || !strings.Contains(err.Error(), "worker-rate-limit") {
		t.Fatalf("a negative --worker-rate-limit gave %v, want it refused", err)
	}
}
