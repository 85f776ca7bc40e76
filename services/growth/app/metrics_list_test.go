package app_test

import (
	"testing"

	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/services/growth/app"
)

// TestMetricsList: the metric names growth registers are the committed list the
// deploy checks hold alert rules and dashboards to (-update-metrics).
func TestMetricsList(t *testing.T) {
	servicetest.GoldenMetrics(t, app.Spec(), "../../../deploy/testdata/metrics/growth.txt")
}
