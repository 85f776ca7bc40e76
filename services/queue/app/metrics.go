package app

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/echopilot/echopilot/services/queue/internal/domain"
)

// metrics are the queue's own series, beside the server's and the outbox's.
type metrics struct {
	depth         *prometheus.GaugeVec
	leaseExpiries prometheus.Counter
	// workers and workerLimit are totals over tenants: a tenant label would
	// multiply the series by the tenants, and no queue series has one.
	workers     *prometheus.GaugeVec
	workerLimit prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		depth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "echopilot_queue_jobs",
			Help: "Unfinished jobs of all tenants by state (queued, failed: waiting to retry, processing) and priority, refreshed every few seconds.",
		}, []string{"state", "priority"}),
		leaseExpiries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "echopilot_queue_lease_expiries_total",
			Help: "Leases that ran out before their worker completed or failed the job.",
		}),
		workers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "echopilot_queue_workers",
			Help: "Registered workers of all tenants by state (fresh, stale: not heard from for --worker-stale-after), refreshed every few seconds.",
		}, []string{"state"}),
		workerLimit: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "echopilot_queue_worker_limit_reached_total",
			Help: "Lease and heartbeat calls of a new worker left unregistered because its tenant has the most workers registered.",
		}),
	}
	reg.MustRegister(m.depth, m.leaseExpiries, m.workers, m.workerLimit)
	return m
}

// depthStatuses are the statuses the depth gauge reports (its "state"
// label keeps the name dashboards and alerts already use).
func depthStatuses() []domain.Status {
	return []domain.Status{domain.StatusQueued, domain.StatusFailed, domain.StatusProcessing}
}

// setDepth replaces the gauge's values. Every (state, priority) is set,
// zeros included, so a drained queue reads 0 rather than its last value.
func (m *metrics) setDepth(ds []domain.Depth) {
	n := make(map[domain.Status]map[domain.Priority]int64)
	for _, d := range ds {
		if n[d.Status] == nil {
			n[d.Status] = make(map[domain.Priority]int64)
		}
		n[d.Status][d.Priority] += d.N
	}
	for _, s := range depthStatuses() {
		for _, p := range domain.Priorities() {
			m.depth.WithLabelValues(string(s), p.String()).Set(float64(n[s][p]))
		}
	}
}

// setWorkers sets the worker gauge.
func (m *metrics) setWorkers(c domain.WorkerCounts) {
	m.workers.WithLabelValues("fresh").Set(float64(c.Fresh))
	m.workers.WithLabelValues("stale").Set(float64(c.Stale))
}
