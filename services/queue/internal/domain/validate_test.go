package domain_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/services/queue/internal/domain"
)

func wantReason(t *testing.T, err error, code codes.Code, reason string) {
	t.Helper()
	if status.Code(err) != code || apierr.Reason(err) != reason {
		t.Fatalf("got %v (reason %q), want %v %s", err, apierr.Reason(err), code, reason)
	}
}

func TestEnqueueValidation(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		req    domain.EnqueueRequest
		reason string
	}{
		{"empty type", domain.EnqueueRequest{}, domain.ReasonTypeInvalid},
		{"upper-case type", domain.EnqueueRequest{Type: "AI"}, domain.ReasonTypeInvalid},
		{"long type", domain.EnqueueRequest{Type: strings.Repeat("a", 65)}, domain.ReasonTypeInvalid},
		{"unknown priority", domain.EnqueueRequest{Type: "ai_task", Priority: "urgent"}, domain.ReasonPriorityInvalid},
		{"priority case", domain.EnqueueRequest{Type: "ai_task", Priority: "High"}, domain.ReasonPriorityInvalid},
		{"max attempts 101", domain.EnqueueRequest{Type: "ai_task", MaxAttempts: 101}, domain.ReasonMaxAttemptsInvalid},
		{"max attempts -1", domain.EnqueueRequest{Type: "ai_task", MaxAttempts: -1}, domain.ReasonMaxAttemptsInvalid},
		{"key with NUL", domain.EnqueueRequest{Type: "ai_task", IdempotencyKey: "a\x00b"}, domain.ReasonIdempotencyKeyInvalid},
		{"long key", domain.EnqueueRequest{Type: "ai_task", IdempotencyKey: strings.Repeat("k", 201)}, domain.ReasonIdempotencyKeyInvalid},
		{"run_at beyond a year", domain.EnqueueRequest{Type: "ai_task", RunAt: now.Add(366 * 24 * time.Hour)}, domain.ReasonRunAtInvalid},
		{"payload too large", domain.EnqueueRequest{Type: "ai_task", Payload: map[string]any{"s": strings.Repeat("x", 256<<10)}}, domain.ReasonPayloadTooLarge},
		{"payload NaN", domain.EnqueueRequest{Type: "ai_task", Payload: map[string]any{"n": nan()}}, domain.ReasonPayloadInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.req.Validate("acme", now)
			wantReason(t, err, codes.InvalidArgument, tc.reason)
		})
	}

	j, err := domain.EnqueueRequest{Type: "ai_task", RunAt: now.Add(-time.Hour)}.Validate("acme", now)
	if err != nil {
		t.Fatal(err)
	}
	want := domain.NewJob{TenantID: "acme", Type: "ai_task", Priority: domain.PriorityNormal, Payload: []byte("{}"),
		MaxAttempts: domain.DefaultMaxAttempts, RunAt: now, CreatedAt: now}
	if j.TenantID != want.TenantID || j.Priority != want.Priority || string(j.Payload) != "{}" ||
		j.MaxAttempts != want.MaxAttempts || !j.RunAt.Equal(now) || !j.CreatedAt.Equal(now) {
		t.Errorf("defaults: got %+v, want %+v (a past run_at is now)", j, want)
	}
	later := now.Add(time.Hour)
	j, err = domain.EnqueueRequest{Type: "data.sync-2", Priority: "low", RunAt: later, MaxAttempts: 100,
		Payload: map[string]any{"a": "b"}}.Validate("acme", now)
	if err != nil || !j.RunAt.Equal(later) || j.Priority != domain.PriorityLow || j.MaxAttempts != 100 || string(j.Payload) != `{"a":"b"}` {
		t.Errorf("explicit fields: got %+v, %v", j, err)
	}
}

func TestPriorities(t *testing.T) {
	for i, name := range []string{"critical", "high", "normal", "low"} {
		p, ok := domain.ParsePriority(name)
		if !ok || p != domain.Priority(i) || p.String() != name {
			t.Errorf("ParsePriority(%q) = %v, %v", name, p, ok)
		}
	}
	// Ranks order the claim: a smaller rank runs first.
	if !(domain.PriorityCritical < domain.PriorityHigh && domain.PriorityHigh < domain.PriorityNormal && domain.PriorityNormal < domain.PriorityLow) {
		t.Error("priority ranks out of order")
	}
	if p, ok := domain.ParsePriority(""); !ok || p != domain.PriorityNormal {
		t.Errorf(`ParsePriority("") = %v, %v; want normal`, p, ok)
	}
}

func TestBackoff(t *testing.T) {
	b := domain.Backoff{Base: time.Second, Cap: 5 * time.Minute}
	for attempt := 1; attempt <= 100; attempt++ {
		step := min(time.Second<<min(attempt-1, 20), 5*time.Minute)
		for range 20 {
			d := b.Delay(attempt)
			if d < step/2 || d > step {
				t.Fatalf("Delay(%d) = %v, want within [%v, %v]", attempt, d, step/2, step)
			}
		}
	}
	// Jitter: failures of the same attempt do not all retry together.
	seen := map[time.Duration]bool{}
	for range 20 {
		seen[b.Delay(5)] = true
	}
	if len(seen) < 2 {
		t.Error("Delay has no jitter")
	}
}

func nan() float64 {
	zero := 0.0
	return zero / zero
}
