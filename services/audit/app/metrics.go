package app

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/echopilot/echopilot/services/audit/internal/domain"
	"github.com/echopilot/echopilot/services/audit/internal/outbound"
)

// metrics are the audit service's own series, beside the server's and the
// outbox relay's.
type metrics struct {
	appended   prometheus.Counter
	verified   *prometheus.CounterVec
	failures   *prometheus.CounterVec
	scrubbed   prometheus.Gauge
	deliveries *prometheus.CounterVec
	// posted is the receivers' latency, by delivered or failed.
	posted *prometheus.HistogramVec
	// retained counts entries retention deleted; retentionFailures the
	// cuts that failed (nothing deleted: alert on any).
	retained          prometheus.Counter
	retentionFailures prometheus.Counter
	// autoDisabled counts endpoints disabled because every delivery
	// failed for --webhook-auto-disable-after.
	autoDisabled prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		appended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "echopilot_audit_appended_entries_total",
			Help: "Entries committed to tenants' logs (appends and compliance webhooks).",
		}),
		verified: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "echopilot_audit_verifications_total",
			Help: "Log verifications (chain reads, incremental or full, and scrubs) by result (valid: true or false); any false is a log that was tampered with or damaged.",
		}, []string{"valid"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "echopilot_audit_verification_failures_total",
			Help: "Verifications that found a log bad, by mode (incremental: a read; full: verify=full; scrub: the scrubber); once per finding, not per read of a failure that sticks. Alert on any increase.",
		}, []string{"mode"}),
		scrubbed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "echopilot_audit_scrub_last_success_timestamp_seconds",
			Help: "When the scrubber last finished a pass over every tenant's log with all of them valid (Unix seconds; 0 before the first). Alert when older than a few scrub intervals.",
		}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "echopilot_audit_webhook_deliveries_total",
			Help: "Outbound webhook delivery attempts by outcome: delivered, failed (to be retried) or dead (dead-lettered).",
		}, []string{"outcome"}),
		posted: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "echopilot_audit_webhook_delivery_duration_seconds",
			Help:    "Outbound webhook POSTs from sending to the receiver's answer (or the error ending the wait, the timeout included), by outcome: delivered (2xx) or failed.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"outcome"}),
		retained: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "echopilot_audit_retention_deleted_entries_total",
			Help: "Entries deleted by tenants' retention, in whole segments after a passing scrub.",
		}),
		autoDisabled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "echopilot_audit_webhook_endpoints_auto_disabled_total",
			Help: "Webhook endpoints the service disabled because every delivery failed for the auto-disable period.",
		}),
		retentionFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "echopilot_audit_retention_failures_total",
			Help: "Retention cuts that failed (nothing was deleted; the log or its stored tree did not prove the cut). Alert on any increase.",
		}),
	}
	// Every label value exists from the start, so a rate() over them works
	// before the first event.
	for _, v := range []bool{true, false} {
		m.verified.WithLabelValues(strconv.FormatBool(v))
	}
	for _, o := range []string{outbound.OutcomeDelivered, outbound.OutcomeFailed, outbound.OutcomeDead} {
		m.deliveries.WithLabelValues(o)
	}
	for _, o := range []string{outbound.OutcomeDelivered, outbound.OutcomeFailed} {
		m.posted.WithLabelValues(o)
	}
	for _, mode := range []string{domain.ModeIncremental, domain.ModeFull, domain.ModeScrub} {
		m.failures.WithLabelValues(mode)
	}
	reg.MustRegister(m.appended, m.verified, m.failures, m.scrubbed, m.deliveries, m.posted, m.retained, m.retentionFailures, m.autoDisabled)
	return m
}

// ledgerHooks feeds the metrics from the ledger's events; kick runs after
// every append that wrote outbox events (the relay's wake-up).
func (m *metrics) ledgerHooks(kick func()) domain.Hooks {
	return domain.Hooks{
		Appended: func(entries, events int) {
			m.appended.Add(float64(entries))
			if events > 0 {
				kick()
			}
		},
		Verified: func(valid bool) { m.verified.WithLabelValues(strconv.FormatBool(valid)).Inc() },
		Failed:   func(mode string) { m.failures.WithLabelValues(mode).Inc() },
	}
}

// outboundHooks feeds the metrics from the deliveries' events, and kicks
// the relay after a redelivery.
func (m *metrics) outboundHooks(kick func()) outbound.Hooks {
	return outbound.Hooks{
		Attempted:    func(outcome string) { m.deliveries.WithLabelValues(outcome).Inc() },
		Posted:       func(outcome string, took time.Duration) { m.posted.WithLabelValues(outcome).Observe(took.Seconds()) },
		AutoDisabled: m.autoDisabled.Inc,
		Requeued:     kick,
	}
}
