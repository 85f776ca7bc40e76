package app

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/echopilot/echopilot/services/queue/internal/domain"
)

func TestDepthGauge(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	m.setDepth([]domain.Depth{
		{Status: domain.StatusQueued, Priority: domain.PriorityHigh, N: 3},
		{Status: domain.StatusProcessing, Priority: domain.PriorityLow, N: 2},
	})
	// Drained since: every series reads 0, none keeps its old value.
	m.setDepth([]domain.Depth{{Status: domain.StatusFailed, Priority: domain.PriorityCritical, N: 1}})
	m.leaseExpiries.Add(2)
	want := `
# HELP echopilot_queue_lease_expiries_total Leases that ran out before their worker completed or failed the job.
# TYPE echopilot_queue_lease_expiries_total counter
echopilot_queue_lease_expiries_total 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "echopilot_queue_lease_expiries_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m.depth); n != 12 {
		t.Errorf("%d depth series, want 3 states × 4 priorities", n)
	}
	for _, c := range []struct {
		state, priority string
		want            float64
	}{{"queued", "high", 0}, {"processing", "low", 0}, {"failed", "critical", 1}} {
		if got := testutil.ToFloat64(m.depth.WithLabelValues(c.state, c.priority)); got != c.want {
			t.Errorf("depth{%s,%s} = %v, want %v", c.state, c.priority, got, c.want)
		}
	}
}

func TestWorkerGauge(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	m.setWorkers(domain.WorkerCounts{Fresh: 3, Stale: 1})
	m.setWorkers(domain.WorkerCounts{Fresh: 2})
	m.workerLimit.Inc()
	want := `
# HELP echopilot_queue_workers Registered workers of all tenants by state (fresh, stale: not heard from for --worker-stale-after), refreshed every few seconds.
# TYPE echopilot_queue_workers gauge
echopilot_queue_workers{state="fresh"} 2
echopilot_queue_workers{state="stale"} 0
# HELP echopilot_queue_worker_limit_reached_total Lease and heartbeat calls of a new worker left unregistered because its tenant has the most workers registered.
# TYPE echopilot_queue_worker_limit_reached_total counter
echopilot_queue_worker_limit_reached_total 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "echopilot_queue_workers", "echopilot_queue_worker_limit_reached_total"); err != nil {
		t.Error(err)
	}
}

func TestOldestJobGauge(t *testing.T) {
	m := newMetrics(prometheus.NewRegistry())
	if n := testutil.CollectAndCount(m.oldest); n != 4 {
		t.Fatalf("oldest series at start = %d, want 4", n)
	}
	m.setOldest(map[domain.Priority]time.Duration{domain.PriorityHigh: 90 * time.Second})
	m.setOldest(map[domain.Priority]time.Duration{domain.PriorityLow: 30 * time.Second})
	for p, want := range map[string]float64{"high": 0, "low": 30, "normal": 0, "critical": 0} {
		if got := testutil.ToFloat64(m.oldest.WithLabelValues(p)); got != want {
			t.Errorf("oldest{priority=%q} = %v, want %v", p, got, want)
		}
	}
}
