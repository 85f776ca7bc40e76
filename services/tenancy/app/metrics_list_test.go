package app_test

import (
	"testing"

	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/services/tenancy/app"
)

// TestMetricsList: the metric names tenancy registers are the committed list the
// deploy checks hold alert rules and dashboards to (-update-metrics).
func TestMetricsList(t *testing.T) {
	servicetest.GoldenMetrics(t, app.Spec(), "../../../deploy/testdata/metrics/tenancy.txt",
		"--audit-addr=127.0.0.1:1") // starts the outbox relay, as in production
}
