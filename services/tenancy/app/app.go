// Package app assembles the tenancy service. The binary runs it; tests in
// this and other modules (the gateway's) run the same thing in-process.
package app

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/echopilot/echopilot/platform/config"
	"github.com/echopilot/echopilot/platform/decisions"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/service"
	"github.com/echopilot/echopilot/services/tenancy/internal/domain"
	"github.com/echopilot/echopilot/services/tenancy/internal/grpcapi"
	"github.com/echopilot/echopilot/services/tenancy/internal/store"
)

// Spec returns the tenancy service for service.Run.
func Spec() service.Spec {
	var retention time.Duration
	var st domain.Store
	live := domain.NewLive()
	return service.Spec{
		Name:        "tenancy",
		GRPCAddr:    ":9101",
		MetricsAddr: ":9201",
		Migrations:  store.Migrations,
		Flags: func(l *config.Loader) {
			l.Duration(&retention, "decision-retention", "ECHOPILOT_DECISION_RETENTION", 30*24*time.Hour,
				"raw access decisions older than this are deleted (counters stay)")
		},
		// Tenancy keeps its own decisions: counted live at once, stored in batches.
		LocalDecisions: func(rt *service.Runtime) decisions.Local {
			st = store.New(rt.DB)
			return decisions.Local{
				OnRecord: func(d identity.Decision) { live.Add(grpcapi.FromIdentityDecision(d)) },
				Sink: func(ctx context.Context, batch []identity.Decision) error {
					return live.Persist(ctx, st, grpcapi.FromIdentityDecisions(batch))
				},
				OnDrop: func(batch []identity.Decision) { live.Drop(grpcapi.FromIdentityDecisions(batch)) },
			}
		},
		Setup: func(_ context.Context, rt *service.Runtime) error {
			svc := domain.NewService(st, live)
			grpcapi.New(svc).Register(rt.GRPC())
			rt.Every("prune-decisions", time.Hour, func(ctx context.Context) error {
				n, err := svc.Prune(ctx, retention)
				if n > 0 {
					rt.Log.Info("pruned access decisions", zap.Int64("rows", n))
				}
				return err
			})
			return nil
		},
	}
}
