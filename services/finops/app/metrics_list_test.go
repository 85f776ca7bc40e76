package app_test

import (
	"testing"

	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/services/finops/app"
)

// TestMetricsList: the metric names finops registers are the committed list the
// deploy checks hold alert rules and dashboards to (-update-metrics).
func TestMetricsList(t *testing.T) {
	servicetest.GoldenMetrics(t, app.Spec(), "../../../deploy/testdata/metrics/finops.txt",
		"--audit-addr=127.0.0.1:1") // starts the outbox relay, as in production
}
