package app

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/echopilot/echopilot/platform/server"

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
	// oldest is the age of the oldest due queued job by priority: unlike
	// the wait histogram, it grows while no worker leases anything.
	oldest *prometheus.GaugeVec
	// wait and run are by job type and priority; types are tenants'
	// strings, so only the first maxTypeLabels distinct ones get a series.
	wait  *prometheus.HistogramVec
	run   *prometheus.HistogramVec
	types *server.BoundedLabel
}

// maxTypeLabels bounds the type label: 20 types (+ "other") × 4
// priorities × 14 buckets per histogram and replica.
const maxTypeLabels = 20

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
		oldest: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "echopilot_queue_oldest_job_age_seconds",
			Help: "How long the oldest queued job of all tenants that is due (run_at passed) has waited, by priority; 0 when none is due. Refreshed every few seconds.",
		}, []string{"priority"}),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "echopilot_queue_job_wait_seconds",
			Help:    "Time from a job becoming runnable (enqueued, or due after a delay or retry backoff) to its lease, by type (the first 20 types this process saw; the rest \"other\") and priority.",
			Buckets: []float64{.01, .05, .1, .5, 1, 5, 15, 30, 60, 120, 300, 900, 1800, 3600},
		}, []string{"type", "priority"}),
		run: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "echopilot_queue_job_run_seconds",
			Help:    "Time from a lease to its worker completing or failing the job, by type (as for the wait) and priority; expired leases are not in it.",
			Buckets: []float64{.05, .1, .5, 1, 5, 15, 30, 60, 120, 300, 900, 1800, 3600, 7200},
		}, []string{"type", "priority"}),
		types: server.NewBoundedLabel(maxTypeLabels),
	}
	reg.MustRegister(m.depth, m.leaseExpiries, m.workers, m.workerLimit, m.oldest, m.wait, m.run)
	m.setOldest(nil) // every priority's series from the start
	return m
}

func (m *metrics) leased(j domain.Job, waited time.Duration) {
	m.wait.WithLabelValues(m.types.Value(j.Type), j.Priority.String()).Observe(waited.Seconds())
}

func (m *metrics) finished(j domain.Job, ran time.Duration) {
	m.run.WithLabelValues(m.types.Value(j.Type), j.Priority.String()).Observe(ran.Seconds())
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

// setOldest sets the oldest-job gauge of every priority.
func (m *metrics) setOldest(ages map[domain.Priority]time.Duration) {
	for _, p := range domain.Priorities() {
		m.oldest.WithLabelValues(p.String()).Set(ages[p].Seconds())
	}
}

// setWorkers sets the worker gauge.
func (m *metrics) setWorkers(c domain.WorkerCounts) {
	m.workers.WithLabelValues("fresh").Set(float64(c.Fresh))
	m.workers.WithLabelValues("stale").Set(float64(c.Stale))
}
