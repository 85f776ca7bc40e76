package decisions

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"

	"github.com/echopilot/echopilot/platform/identity"
)

// A sink that never works: every decision must end up counted as
// undelivered and handed to OnDrop, none silently lost.
func TestUndeliveredDecisionsAreCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	var mu sync.Mutex
	var recorded, dropped int
	r := NewReporter(Local{
		Sink:     func(context.Context, []identity.Decision) error { return errors.New("tenancy down") },
		OnRecord: func(identity.Decision) { mu.Lock(); recorded++; mu.Unlock() },
		OnDrop:   func(ds []identity.Decision) { mu.Lock(); dropped += len(ds); mu.Unlock() },
	}, zaptest.NewLogger(t), reg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx, time.Second); close(done) }()

	for i := 0; i < 3; i++ {
		r.Record(identity.Decision{CallerTenant: "acme", Allowed: i > 0, Reason: "SAME_TENANT"})
	}
	r.Record(identity.Decision{CallerTenant: identity.UnverifiedBucket, Reason: identity.ReasonTokenInvalid})
	if err := r.Flush(context.Background()); err == nil {
		t.Fatal("flush reported success with a broken sink")
	}
	cancel()
	<-done
	if got := testutil.ToFloat64(r.undelivered); got != 4 {
		t.Fatalf("undelivered = %v, want 4", got)
	}
	if recorded != 4 || dropped != 4 {
		t.Fatalf("recorded %d dropped %d, want 4 and 4", recorded, dropped)
	}
	if got := testutil.ToFloat64(r.unverified.WithLabelValues(identity.ReasonTokenInvalid)); got != 1 {
		t.Fatalf("unverified denials = %v, want 1 (the verified denial is not one)", got)
	}
	if got := testutil.ToFloat64(r.decided.WithLabelValues("allowed", "SAME_TENANT")); got != 2 {
		t.Fatalf("allowed decisions = %v, want 2", got)
	}
}

func TestToProtoKeepsOutcomeAndTenants(t *testing.T) {
	now := time.Now()
	p := ToProto(identity.Decision{CallerTenant: "acme", TargetTenant: "globex", Reason: "CROSS_TENANT_DENIED", Time: now, Verified: true}, "finops")
	if p.GetTenantId() != "acme" || p.GetTargetTenantId() != "globex" || p.GetOutcome().String() != "OUTCOME_DENIED" ||
		p.GetService() != "finops" || !p.GetVerified() || !p.GetTime().AsTime().Equal(now) {
		t.Fatalf("ToProto = %v", p)
	}
}
