package app_test

import (
	"path/filepath"
	"testing"

	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/services/audit/app"
)

// TestMetricsList: the metric names audit registers are the committed list
// the deploy checks hold alert rules and dashboards to (-update-metrics).
func TestMetricsList(t *testing.T) {
	servicetest.GoldenMetrics(t, app.Spec(), "../../../deploy/testdata/metrics/audit.txt",
		"--signing-key-file="+filepath.Join(t.TempDir(), "signing.key"))
}
