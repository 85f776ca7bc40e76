// Package app assembles the tenancy service. The binary runs it; tests in
// this and other modules (the gateway's) run the same thing in-process.
package app

import (
	"context"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/echopilot/echopilot/platform/config"
	"github.com/echopilot/echopilot/platform/decisions"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/outbox"
	"github.com/echopilot/echopilot/platform/service"
	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/platform/tenantdata"
	"github.com/echopilot/echopilot/services/tenancy/internal/domain"
	"github.com/echopilot/echopilot/services/tenancy/internal/grpcapi"
	"github.com/echopilot/echopilot/services/tenancy/internal/store"
)

// Options are the parts of the tenancy service that tests plug in.
type Options struct {
	// AuditPublisher returns the outbox publisher that delivers audited
	// denials (topic tenancy.access.denied) to the audit service at addr; it
	// should release what it holds when ctx, the service's lifetime, ends.
	//
	// The outbox relay runs only when ECHOPILOT_AUDIT_ADDR is set and this
	// is not nil. Otherwise stored denials still write their events, which
	// wait in the outbox until a release that delivers them: nothing is
	// lost, only delayed.
	AuditPublisher service.PublisherFunc
}

// Spec returns the tenancy service for service.Run, delivering audited
// denials to audit's AppendEntries.
func Spec() service.Spec { return SpecWith(Options{AuditPublisher: AuditRecorder}) }

// SpecWith returns the tenancy service with opt.
func SpecWith(opt Options) service.Spec {
	var (
		retention time.Duration
		auditAddr string
		lc        lifecycleFlags
		st        domain.Store
		svc       *domain.Service
		// relay is set once Setup has started the outbox relay. Decisions
		// may be stored before (the decision reporter starts first); their
		// events wait for the relay's first pass.
		relay atomic.Pointer[outbox.Relay]
	)
	live := domain.NewLive()
	return service.Spec{
		Name:            "tenancy",
		GRPCAddr:        ":9101",
		MetricsAddr:     ":9201",
		Migrations:      store.Migrations,
		ExtraMigrations: []pstore.Migrations{outbox.Migrations},
		Flags: func(l *config.Loader) {
			l.Duration(&retention, "decision-retention", "ECHOPILOT_DECISION_RETENTION", 30*24*time.Hour,
				"raw access decisions older than this are deleted (counters stay)")
			l.String(&auditAddr, "audit-addr", "ECHOPILOT_AUDIT_ADDR", "",
				"audit gRPC address that access denials and state changes are delivered to, and tenant exports and erasures read (empty: events wait in the outbox)")
			lc.bind(l)
		},
		// Tenancy keeps its own decisions: counted live at once, stored in batches.
		LocalDecisions: func(rt *service.Runtime) decisions.Local {
			st = store.New(rt.DB)
			svc = domain.NewService(st, live, domain.Hooks{
				Audited: func() { relay.Load().Kick() }, // nil until Setup starts it, or when none runs
			})
			return decisions.Local{
				OnRecord: func(d identity.Decision) { live.Add(fromIdentityDecision(d)) },
				Sink: func(ctx context.Context, batch []identity.Decision) error {
					return svc.Persist(ctx, fromIdentityDecisions(batch))
				},
				OnDrop: func(batch []identity.Decision) { live.Drop(fromIdentityDecisions(batch)) },
			}
		},
		// Tenancy keeps the API keys: its own identity layer reads them
		// from its store, the other services ask LookupAPIKey.
		LocalAPIKeys:      func(*service.Runtime) identity.APIKeyLookup { return svc.LookupAPIKey },
		LocalTenantStates: func(*service.Runtime) identity.TenantStateLookup { return svc.TenantState },
		TenantData: func(*service.Runtime) tenantdata.Rules {
			r := tenantDataRules
			r.BeforeErase, r.AfterErase = svc.CheckErasure, svc.ForgetErasedTargets
			return r
		},
		Setup: func(ctx context.Context, rt *service.Runtime) error {
			r, err := rt.StartRelay(ctx, auditAddr, opt.AuditPublisher, outbox.Options{Topics: []string{domain.TopicAccessDenied, domain.TopicTenantState}})
			if err != nil {
				return err
			}
			relay.Store(r)
			if err := lc.start(ctx, rt, svc, st, auditAddr); err != nil {
				return err
			}
			grpcapi.New(svc, &outbox.AdminServer{DB: rt.DB, Kick: func() { relay.Load().Kick() }}).Register(rt.GRPC())
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

// fromIdentityDecision converts a decision tenancy's own interceptor made
// (hence Service "tenancy") into the decision the domain counts and stores.
func fromIdentityDecision(d identity.Decision) domain.Decision {
	return domain.Decision{
		TenantID: d.CallerTenant, TargetTenantID: d.TargetTenant, Subject: d.Subject, Method: d.Method,
		Service: "tenancy", Allowed: d.Allowed, Reason: d.Reason, Verified: d.Verified, Time: d.Time,
	}
}

// fromIdentityDecisions converts a batch.
func fromIdentityDecisions(batch []identity.Decision) []domain.Decision {
	out := make([]domain.Decision, 0, len(batch))
	for _, d := range batch {
		out = append(out, fromIdentityDecision(d))
	}
	return out
}
