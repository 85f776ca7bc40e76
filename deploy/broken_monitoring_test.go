package deploy

import (
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/echopilot/echopilot/deploy/internal/check"
)

// monitoringBrokenCases break components/monitoring (prod): each rule of
// internal/check/monitoring.go fails on its own.
func monitoringBrokenCases() []brokenCase {
	return []brokenCase{
		{name: "prod: alert on a metric no binary registers", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			alertOf(t, o, "OutboxLag").Expr = intstr.FromString("max(echopilot_outbox_lag_seconds) > 300")
		}, want: "no deployable registers echopilot_outbox_lag_seconds"},
		{name: "prod: alert expression that does not parse", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			alertOf(t, o, "QueueBacklog").Expr = intstr.FromString("max by (priority (echopilot_queue_jobs) > 5")
		}, want: "rulefmt: "},
		{name: "prod: alert template that does not parse", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			alertOf(t, o, "QueueBacklog").Annotations["summary"] = "{{ $value "
		}, want: "rulefmt: "},
		{name: "prod: runbook section missing", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			alertOf(t, o, "OutboxDeadLetters").Annotations["runbook_url"] = "https://github.com/echopilot/echopilot/blob/main/docs/operations.md#no-such-section"
		}, want: "docs/operations.md has no section #no-such-section"},
		{name: "prod: alert without severity", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			delete(alertOf(t, o, "AuditScrubStale").Labels, "severity")
		}, want: "alert AuditScrubStale: no severity label"},
		{name: "prod: dashboard query on a metric no binary registers", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			cm := named(t, o.ConfigMaps, "echopilot-dashboards")
			cm.Data["queue.json"] = strings.Replace(cm.Data["queue.json"], "echopilot_queue_lease_expiries_total", "echopilot_queue_lease_expired_total", 1)
		}, want: "no deployable registers echopilot_queue_lease_expired_total"},
		{name: "prod: dashboard query that does not parse", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			cm := named(t, o.ConfigMaps, "echopilot-dashboards")
			cm.Data["audit.json"] = strings.Replace(cm.Data["audit.json"], "sum(rate(", "sum(rate((", 1)
		}, want: "ConfigMap/echopilot-dashboards audit.json panel"},
		{name: "prod: dashboard missing for a deployable", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			delete(named(t, o.ConfigMaps, "echopilot-dashboards").Data, "growth.json")
		}, want: "no dashboard with uid echopilot-growth"},
		{name: "prod: no alert rules", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			o.PrometheusRules = nil
		}, want: "production has 0 alerts"},
	}
}

// alertOf returns the first rule alerting as name.
func alertOf(t *testing.T, o *check.Objects, name string) *monitoringv1.Rule {
	t.Helper()
	for _, pr := range o.PrometheusRules {
		for gi := range pr.Spec.Groups {
			for ri := range pr.Spec.Groups[gi].Rules {
				if r := &pr.Spec.Groups[gi].Rules[ri]; r.Alert == name {
					return r
				}
			}
		}
	}
	t.Fatalf("no alert %s", name)
	return nil
}
