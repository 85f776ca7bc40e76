package app

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/echopilot/echopilot/services/audit/internal/domain"
)

// metrics are the audit service's own series, beside the server's and the
// outbox relay's.
type metrics struct {
	appended   prometheus.Counter
	verified   *prometheus.CounterVec
	deliveries *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		appended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "echopilot_audit_appended_entries_total",
			Help: "Entries committed to tenants' logs (appends and compliance webhooks).",
		}),
		verified: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "echopilot_audit_verifications_total",
			Help: "Whole-log verifications by result (valid: true or false); any false is a log that was tampered with or damaged.",
		}, []string{"valid"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "echopilot_audit_webhook_deliveries_total",
			Help: "Outbound webhook delivery attempts by outcome: delivered, failed (to be retried) or dead (dead-lettered).",
		}, []string{"outcome"}),
	}
	// Every label value exists from the start, so a rate() over them works
	// before the first event.
	for _, v := range []bool{true, false} {
		m.verified.WithLabelValues(strconv.FormatBool(v))
	}
	for _, o := range []string{domain.OutcomeDelivered, domain.OutcomeFailed, domain.OutcomeDead} {
		m.deliveries.WithLabelValues(o)
	}
	reg.MustRegister(m.appended, m.verified, m.deliveries)
	return m
}

// hooks feeds the metrics from the domain's events; kick runs after every
// append (the relay's wake-up).
func (m *metrics) hooks(kick func()) domain.Hooks {
	return domain.Hooks{
		Appended: func(n int) {
			m.appended.Add(float64(n))
			kick()
		},
		Verified:  func(valid bool) { m.verified.WithLabelValues(strconv.FormatBool(valid)).Inc() },
		Attempted: func(outcome string) { m.deliveries.WithLabelValues(outcome).Inc() },
	}
}
