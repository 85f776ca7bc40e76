package app_test

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	finopsv1 "github.com/echopilot/echopilot/gen/go/echopilot/finops/v1"
	"github.com/echopilot/echopilot/platform/metricstest"
	"github.com/echopilot/echopilot/platform/server"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/services/finops/app"
)

// Budgets through the API: a tenant admin sets its own, a platform admin
// the platform's; nobody sets another tenant's or reads it (but a platform
// admin, who may read); a user sets nothing. The background evaluator then
// records the crossings, which only their tenant (and the platform) lists.
func TestBudgetsAndAlerts(t *testing.T) {
	backendsWith(t, []string{"--alert-interval=50ms"}, func(t *testing.T, c finopsv1.FinOpsServiceClient) {
		acmeAdmin, acmeUser, globexAdmin := as(t, "acme", "admin"), as(t, "acme", "user"), as(t, "globex", "admin")
		set, err := c.SetBudget(acmeAdmin, &finopsv1.SetBudgetRequest{AmountMicros: 1_000, ThresholdsPct: []int32{100}})
		if err != nil || set.GetBudget().GetTenantId() != "acme" || set.GetBudget().GetAmount() != 0.001 {
			t.Fatalf("set: %v, %v", set, err)
		}
		if _, err := c.SetBudget(admin(t), &finopsv1.SetBudgetRequest{AmountMicros: 1_000_000_000}); err != nil {
			t.Fatalf("platform budget: %v", err)
		}

		// Attacks.
		_, err = c.SetBudget(acmeUser, &finopsv1.SetBudgetRequest{AmountMicros: 5})
		wantErr(t, err, codes.PermissionDenied, "ROLE_REQUIRED")
		_, err = c.DeleteBudget(acmeUser, &finopsv1.DeleteBudgetRequest{})
		wantErr(t, err, codes.PermissionDenied, "ROLE_REQUIRED")
		intoAcme := metadata.AppendToOutgoingContext(globexAdmin, "x-tenant-id", "acme")
		_, err = c.SetBudget(intoAcme, &finopsv1.SetBudgetRequest{AmountMicros: 5})
		wantErr(t, err, codes.PermissionDenied, "CROSS_TENANT_DENIED")
		_, err = c.GetBudget(intoAcme, &finopsv1.GetBudgetRequest{})
		wantErr(t, err, codes.PermissionDenied, "CROSS_TENANT_DENIED")
		_, err = c.DeleteBudget(intoAcme, &finopsv1.DeleteBudgetRequest{})
		wantErr(t, err, codes.PermissionDenied, "CROSS_TENANT_DENIED")
		_, err = c.ListAlerts(intoAcme, &finopsv1.ListAlertsRequest{})
		wantErr(t, err, codes.PermissionDenied, "CROSS_TENANT_DENIED")
		platformIntoAcme := metadata.AppendToOutgoingContext(admin(t), "x-tenant-id", "acme")
		_, err = c.SetBudget(platformIntoAcme, &finopsv1.SetBudgetRequest{AmountMicros: 5})
		if err == nil {
			t.Error("a platform admin set a tenant's budget")
		}
		_, err = c.GetBudget(globexAdmin, &finopsv1.GetBudgetRequest{})
		wantErr(t, err, codes.NotFound, "BUDGET_NOT_FOUND")
		_, err = c.SetBudget(acmeAdmin, &finopsv1.SetBudgetRequest{AmountMicros: 5, ThresholdsPct: []int32{5000}})
		wantErr(t, err, codes.InvalidArgument, "BUDGET_INVALID")
		_, err = c.SetBudget(acmeAdmin, &finopsv1.SetBudgetRequest{AmountMicros: -5})
		wantErr(t, err, codes.InvalidArgument, "BUDGET_INVALID")
		if b, err := c.GetBudget(platformIntoAcme, &finopsv1.GetBudgetRequest{}); err != nil || b.GetBudget().GetAmountMicros() != 1_000 {
			t.Fatalf("platform reads acme's budget: %v, %v", b, err)
		}
		if b, err := c.GetBudget(acmeUser, &finopsv1.GetBudgetRequest{}); err != nil || b.GetBudget().GetAmountMicros() != 1_000 {
			t.Fatalf("acme user reads: %v, %v", b, err)
		}

		// acme spends (its job gets today's rate card): above $0.001, both
		// on actual and on forecast.
		record(t, c, "acme", usage("job-1", "gpt-4o", 1000, 1000))
		var alerts []*finopsv1.Alert
		for deadline := time.Now().Add(10 * time.Second); len(alerts) < 2 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			res, err := c.ListAlerts(acmeUser, &finopsv1.ListAlertsRequest{})
			if err != nil {
				t.Fatal(err)
			}
			alerts = res.GetAlerts()
		}
		if len(alerts) != 2 {
			t.Fatalf("acme's alerts: %v", alerts)
		}
		for _, a := range alerts {
			if a.GetKind() != "budget" || a.GetTenantId() != "acme" || a.GetThresholdPct() != 100 || a.GetReference() != 1_000 {
				t.Errorf("alert %v", a)
			}
		}
		time.Sleep(150 * time.Millisecond) // a few more evaluations record nothing new
		if res, err := c.ListAlerts(acmeUser, &finopsv1.ListAlertsRequest{}); err != nil || len(res.GetAlerts()) != 2 {
			t.Errorf("after more runs: %v, %v", res, err)
		}
		if res, err := c.ListAlerts(globexAdmin, &finopsv1.ListAlertsRequest{}); err != nil || len(res.GetAlerts()) != 0 {
			t.Errorf("globex sees %v, %v", res, err)
		}
		if res, err := c.ListAlerts(admin(t), &finopsv1.ListAlertsRequest{}); err != nil || len(res.GetAlerts()) != 2 {
			t.Errorf("platform sees %v, %v", res, err)
		}
		if res, err := c.ListAlerts(platformIntoAcme, &finopsv1.ListAlertsRequest{}); err != nil || len(res.GetAlerts()) != 2 {
			t.Errorf("platform filtering acme sees %v, %v", res, err)
		}
		if d, err := c.DeleteBudget(acmeAdmin, &finopsv1.DeleteBudgetRequest{}); err != nil || !d.GetDeleted() {
			t.Errorf("delete: %v, %v", d, err)
		}
	})
}

// echopilot_finops_alerts_total counts each recorded alert once, by kind:
// the platform budget of one micro-dollar is crossed by the rate card alone
// (actual and forecast), and later runs count nothing more.
func TestAlertsCounter(t *testing.T) {
	reg := server.NewRegistry()
	c := finopsv1.NewFinOpsServiceClient(servicetest.Start(t, app.Spec(), servicetest.Options{
		AuthMode: "required", Registry: reg, Quiet: true, Args: []string{"--alert-interval=20ms"}}))
	if _, err := c.SetBudget(admin(t), &finopsv1.SetBudgetRequest{AmountMicros: 1, ThresholdsPct: []int32{100}}); err != nil {
		t.Fatal(err)
	}
	budget := map[string]string{"kind": "budget"}
	for deadline := time.Now().Add(10 * time.Second); metricstest.Value(t, reg, "echopilot_finops_alerts_total", budget) < 2 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if v := metricstest.Value(t, reg, "echopilot_finops_alerts_total", budget); v != 2 {
		t.Errorf("budget alerts counted %v, want 2", v)
	}
	if v := metricstest.Value(t, reg, "echopilot_finops_alerts_total", map[string]string{"kind": "anomaly"}); v != 0 {
		t.Errorf("anomaly alerts counted %v, want 0", v)
	}
}
