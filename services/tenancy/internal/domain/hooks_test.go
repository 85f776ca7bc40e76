package domain_test

import (
	"context"
	"testing"
	"time"

	"github.com/echopilot/echopilot/services/tenancy/internal/domain"
)

// Every path that stores decisions wakes the outbox relay exactly when the
// batch holds an audit event (a verified denial), and only after it stored.
func TestAuditedHookFiresForStoredAuditEvents(t *testing.T) {
	ctx := context.Background()
	woken := 0
	svc := domain.NewService(newStore(t), domain.NewLive(), domain.Hooks{Audited: func() { woken++ }})
	caller := domain.Caller{Tenant: "acme", Subject: "u1", Verified: true}

	steps := []struct {
		name string
		run  func() error
		want int
	}{
		{"allowed TestAccess", func() error {
			_, err := svc.TestAccess(ctx, caller, domain.AccessQuery{Target: "acme", Method: "/t"})
			return err
		}, 0},
		{"denied TestAccess", func() error {
			_, err := svc.TestAccess(ctx, caller, domain.AccessQuery{Target: "globex", Method: "/t"})
			return err
		}, 1},
		{"report without denials", func() error {
			return svc.Record(ctx, []domain.Decision{{TenantID: "acme", TargetTenantID: "acme", Allowed: true, Verified: true}})
		}, 1},
		{"report with a verified denial", func() error {
			return svc.Record(ctx, []domain.Decision{{TenantID: "acme", TargetTenantID: "globex", Verified: true}})
		}, 2},
		{"own decisions with an unverified denial", func() error {
			return svc.Persist(ctx, []domain.Decision{{TenantID: "acme", TargetTenantID: "globex", Time: time.Now()}})
		}, 2},
		{"own decisions with a verified denial", func() error {
			return svc.Persist(ctx, []domain.Decision{{TenantID: "acme", TargetTenantID: "globex", Verified: true, Time: time.Now()}})
		}, 3},
	}
	for _, s := range steps {
		if err := s.run(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if woken != s.want {
			t.Fatalf("after %s the relay was woken %d times, want %d", s.name, woken, s.want)
		}
	}

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := svc.Record(canceled, []domain.Decision{{TenantID: "acme", TargetTenantID: "globex", Verified: true}}); err == nil {
		t.Fatal("a store on a canceled context succeeded")
	}
	if woken != 3 {
		t.Fatalf("a failed store woke the relay (%d)", woken)
	}
}
