// Package decisions reports every access decision a service makes to
// tenancy, which owns the statistics. Requests never wait for it: decisions
// are batched, retried, and whatever cannot be delivered is counted in
// echopilot_decisions_undelivered_total (and logged), never dropped silently.
package decisions

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	"github.com/echopilot/echopilot/platform/batcher"
	"github.com/echopilot/echopilot/platform/identity"
)

// Reporter implements identity.DecisionSink on top of a batcher.
type Reporter struct {
	*batcher.Batcher[identity.Decision]
	decided     *prometheus.CounterVec
	undelivered prometheus.Counter
	onRecord    func(identity.Decision)
}

// Local is how a service handles its own decisions instead of reporting them
// to tenancy (tenancy itself uses it).
type Local struct {
	// Sink stores a batch.
	Sink batcher.Sink[identity.Decision]
	// OnRecord, if set, sees each decision as it is made, before batching.
	OnRecord func(identity.Decision)
	// OnDrop, if set, gets the decisions that will never reach Sink.
	OnDrop func([]identity.Decision)
}

// NewReporter returns a Reporter delivering to local.Sink. Run its
// Batcher.Run in a goroutine for the life of the service.
func NewReporter(local Local, log *zap.Logger, reg prometheus.Registerer) *Reporter {
	decided := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "echopilot_access_decisions_total",
		Help: "Access decisions made by this service, by outcome and reason.",
	}, []string{"outcome", "reason"})
	delivered := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "echopilot_decisions_delivered_total",
		Help: "Access decisions delivered to tenancy.",
	})
	undelivered := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "echopilot_decisions_undelivered_total",
		Help: "Access decisions that could not be delivered to tenancy (buffer full or delivery failed).",
	})
	reg.MustRegister(decided, delivered, undelivered)
	b := batcher.New(local.Sink, log.Named("decisions"), batcher.Options[identity.Decision]{Observers: batcher.Observers[identity.Decision]{
		Delivered: func(ds []identity.Decision) { delivered.Add(float64(len(ds))) },
		Undelivered: func(ds []identity.Decision) {
			undelivered.Add(float64(len(ds)))
			if local.OnDrop != nil {
				local.OnDrop(ds)
			}
		},
	}})
	return &Reporter{Batcher: b, decided: decided, undelivered: undelivered, onRecord: local.OnRecord}
}

// Record queues d without blocking.
func (r *Reporter) Record(d identity.Decision) {
	outcome := "denied"
	if d.Allowed {
		outcome = "allowed"
	}
	r.decided.WithLabelValues(outcome, d.Reason).Inc()
	if r.onRecord != nil {
		r.onRecord(d)
	}
	r.Add(d)
}

// ToProto converts a decision for ReportDecisions.
func ToProto(d identity.Decision, service string) *tenancyv1.Decision {
	outcome := tenancyv1.Outcome_OUTCOME_DENIED
	if d.Allowed {
		outcome = tenancyv1.Outcome_OUTCOME_ALLOWED
	}
	return &tenancyv1.Decision{
		TenantId: d.CallerTenant, TargetTenantId: d.TargetTenant, Subject: d.Subject, Method: d.Method,
		Outcome: outcome, Reason: d.Reason, Verified: d.Verified, Service: service, Time: timestamppb.New(d.Time),
	}
}

// TokenSource returns a bearer token for service-to-service calls.
type TokenSource func() (string, error)

// ServiceToken mints short-lived HS256 service tokens from the local secret.
func ServiceToken(secret []byte, service string) TokenSource {
	return func() (string, error) {
		return identity.MintHS256(secret, identity.Claims{
			Subject: "service:" + service, TenantID: identity.DefaultTenant, Roles: []string{identity.RoleService},
		}, 5*time.Minute)
	}
}

// StaticToken returns a fixed token (ECHOPILOT_SERVICE_TOKEN in production,
// issued by the identity provider).
func StaticToken(tok string) TokenSource { return func() (string, error) { return tok, nil } }

// RemoteSink delivers batches to tenancy's ReportDecisions.
func RemoteSink(client tenancyv1.TenancyServiceClient, service string, token TokenSource) batcher.Sink[identity.Decision] {
	return func(ctx context.Context, batch []identity.Decision) error {
		tok, err := token()
		if err != nil {
			return fmt.Errorf("service token: %w", err)
		}
		req := &tenancyv1.ReportDecisionsRequest{Decisions: make([]*tenancyv1.Decision, 0, len(batch))}
		for _, d := range batch {
			req.Decisions = append(req.Decisions, ToProto(d, service))
		}
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
		if _, err := client.ReportDecisions(ctx, req); err != nil {
			return fmt.Errorf("report %d decisions: %w", len(batch), err)
		}
		return nil
	}
}
