// Package decisions reports every access decision a service makes to
// tenancy, which owns the statistics. Requests never wait for it: decisions
// are batched, retried, and whatever cannot be delivered is counted in
// echopilot_decisions_undelivered_total (and logged), never dropped silently.
package decisions

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/timestamppb"

	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	"github.com/echopilot/echopilot/platform/batcher"
	"github.com/echopilot/echopilot/platform/identity"
)

// Reporter implements identity.DecisionSink on top of a batcher.
type Reporter struct {
	*batcher.Batcher[identity.Decision]
	decided     *prometheus.CounterVec
	unverified  *prometheus.CounterVec
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
	unverified := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "echopilot_access_denied_unverified_total",
		Help: "Denials of callers without a verified token (forged, expired or missing tokens), counted under the unverified bucket and never in the tenant they name.",
	}, []string{"reason"})
	reg.MustRegister(decided, unverified, delivered, undelivered)
	b := batcher.New(local.Sink, log.Named("decisions"), batcher.Options[identity.Decision]{Observers: batcher.Observers[identity.Decision]{
		Delivered: func(ds []identity.Decision) { delivered.Add(float64(len(ds))) },
		Undelivered: func(ds []identity.Decision) {
			undelivered.Add(float64(len(ds)))
			if local.OnDrop != nil {
				local.OnDrop(ds)
			}
		},
	}})
	return &Reporter{Batcher: b, decided: decided, unverified: unverified, undelivered: undelivered, onRecord: local.OnRecord}
}

// Record queues d without blocking.
func (r *Reporter) Record(d identity.Decision) {
	outcome := "denied"
	if d.Allowed {
		outcome = "allowed"
	}
	r.decided.WithLabelValues(outcome, d.Reason).Inc()
	if !d.Allowed && !d.Verified {
		r.unverified.WithLabelValues(d.Reason).Inc()
	}
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

// RemoteSink delivers batches to tenancy's ReportDecisions through client,
// whose connection carries the service's identity (Runtime.DialPeer).
func RemoteSink(client tenancyv1.TenancyServiceClient, service string) batcher.Sink[identity.Decision] {
	return func(ctx context.Context, batch []identity.Decision) error {
		req := &tenancyv1.ReportDecisionsRequest{Decisions: make([]*tenancyv1.Decision, 0, len(batch))}
		for _, d := range batch {
			req.Decisions = append(req.Decisions, ToProto(d, service))
		}
		if _, err := client.ReportDecisions(ctx, req); err != nil {
			return fmt.Errorf("report %d decisions: %w", len(batch), err)
		}
		return nil
	}
}
