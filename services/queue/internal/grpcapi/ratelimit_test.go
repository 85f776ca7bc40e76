package grpcapi

import (
	"fmt"
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/apierr"
)

func TestWorkerLimit(t *testing.T) {
	if NewWorkerLimit(0, 5) != nil {
		t.Fatal("a zero rate must mean no limit")
	}
	var none *WorkerLimit
	if err := none.admit("acme"); err != nil {
		t.Fatalf("no limit refused: %v", err)
	}
	now := time.Unix(1_800_000_000, 0)
	l := NewWorkerLimit(10, 3)
	l.now = func() time.Time { return now }
	for i := range 3 {
		if err := l.admit("acme"); err != nil {
			t.Fatalf("call %d of the burst: %v", i+1, err)
		}
	}
	err := l.admit("acme")
	if apierr.Reason(err) != ReasonWorkerRateLimited {
		t.Fatalf("over the burst = %v", err)
	}
	if err := l.admit("globex"); err != nil {
		t.Fatalf("another tenant: %v", err)
	}
	// Refused calls do not spend the budget: 100 ms later one call (10/s)
	// is due, not one minus the refusals.
	for range 5 {
		_ = l.admit("acme")
	}
	now = now.Add(100 * time.Millisecond)
	if err := l.admit("acme"); err != nil {
		t.Fatalf("after a refill: %v", err)
	}
	if defaultBurst := NewWorkerLimit(4, 0); defaultBurst.burst != 8 {
		t.Fatalf("default burst = %d, want twice the rate", defaultBurst.burst)
	}
}

// The buckets stay bounded however many tenants call.
func TestWorkerLimitBounded(t *testing.T) {
	l := NewWorkerLimit(1, 1)
	for i := range maxLimitedTenants + 10 {
		_ = l.admit(fmt.Sprintf("t%d", i))
	}
	if n := len(l.buckets); n > maxLimitedTenants {
		t.Fatalf("%d buckets, want at most %d", n, maxLimitedTenants)
	}
}
