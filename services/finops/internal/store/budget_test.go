package store_test

import (
	"database/sql"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/page"
	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/finops/internal/domain"
	"github.com/echopilot/echopilot/services/finops/internal/store"
)

func alertService(st domain.Store, now time.Time) *domain.Service {
	return domain.NewService(st, domain.Config{Rate: rate, Now: func() time.Time { return now }})
}

func keys(as []domain.Alert) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.Key
	}
	slices.Sort(out)
	return out
}

// A budget is stored per tenant, replaced by a second Set, validated with
// reason codes, and deleted once.
func TestBudgetCRUD(t *testing.T) {
	eachBackend(t, func(t *testing.T, f fixture) {
		svc := alertService(f.st, t0)
		acme := domain.Caller{Tenant: "acme"}
		if _, err := svc.GetBudget(t.Context(), acme); reason(err) != domain.ReasonBudgetNotFound {
			t.Fatalf("no budget: %v", err)
		}
		if _, err := svc.SetBudget(t.Context(), acme, 20_000_000, nil); err != nil {
			t.Fatal(err)
		}
		b, err := svc.SetBudget(t.Context(), acme, 30_000_000, []int32{100, 25, 100})
		if err != nil {
			t.Fatal(err)
		}
		got, err := svc.GetBudget(t.Context(), acme)
		if err != nil || got.AmountMicros != 30_000_000 || !slices.Equal(got.ThresholdsPct, []int32{25, 100}) ||
			!got.UpdatedAt.Equal(b.UpdatedAt) || got.TenantID != "acme" {
			t.Fatalf("get = %+v, %v", got, err)
		}
		if _, err := svc.GetBudget(t.Context(), domain.Caller{Tenant: "globex"}); reason(err) != domain.ReasonBudgetNotFound {
			t.Errorf("globex sees a budget: %v", err)
		}
		for _, c := range []struct {
			amount int64
			ts     []int32
		}{{0, nil}, {-1, nil}, {1_000_000_000_000_001, nil}, {1, []int32{0}}, {1, []int32{1001}},
			{1, []int32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}}} {
			if _, err := svc.SetBudget(t.Context(), acme, c.amount, c.ts); reason(err) != domain.ReasonBudgetInvalid {
				t.Errorf("set %d %v: %v", c.amount, c.ts, err)
			}
		}
		for i, want := range []bool{true, false} {
			if ok, err := svc.DeleteBudget(t.Context(), acme); err != nil || ok != want {
				t.Errorf("delete %d = %v, %v", i, ok, err)
			}
		}
	})
}

func reason(err error) string { return apierr.Reason(err) }

// budgetData: acme spends $10 of AI on March 10 (day0), whole rate card
// allocated ($0.60 a day when it has jobs), and $99 on February 28, outside
// the month.
func budgetData(t *testing.T, f fixture) {
	f.record(t, "acme", usage("a1", t0, 1, 1, 10_000_000), usage("a0", t0.Add(-10*24*time.Hour), 1, 1, 99_000_000))
}

// Actual spend of March is $10.60 over 10 days; the forecast $10.60/10×31
// = $32.86. Against $20 (50/80/100 %): actual crosses 50 %, the forecast
// all three. The platform's budget of $40 at 100 %: actual $10 AI + 10
// days of rate card $6 = $16, forecast $49.60, crossed. Each is recorded
// once, however often the evaluator runs.
func TestEvaluateBudgetsOnce(t *testing.T) {
	want := []string{
		"budget/acme/2026-03/100/forecast", "budget/acme/2026-03/50/actual", "budget/acme/2026-03/50/forecast",
		"budget/acme/2026-03/80/forecast", "budget/default/2026-03/100/forecast",
	}
	eachBackend(t, func(t *testing.T, f fixture) {
		budgetData(t, f)
		svc := alertService(f.st, t0)
		if _, err := svc.SetBudget(t.Context(), domain.Caller{Tenant: "acme"}, 20_000_000, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.SetBudget(t.Context(), domain.Caller{Tenant: "default", PlatformAdmin: true}, 40_000_000, []int32{100}); err != nil {
			t.Fatal(err)
		}
		got, err := svc.EvaluateBudgets(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(keys(got), want) {
			t.Fatalf("first run recorded %v, want %v", keys(got), want)
		}
		for _, a := range got {
			if a.Key == "budget/acme/2026-03/50/actual" && (a.Value != 10_600_000 || a.Reference != 20_000_000) {
				t.Errorf("actual crossing = %+v", a)
			}
			if a.Key == "budget/acme/2026-03/50/forecast" && a.Value != 32_860_000 {
				t.Errorf("forecast crossing = %+v", a)
			}
		}
		if again, err := svc.EvaluateBudgets(t.Context()); err != nil || len(again) != 0 {
			t.Fatalf("second run recorded %v, %v", keys(again), err)
		}
		// More spend crosses the next actual threshold only.
		f.record(t, "acme", usage("a2", t0, 1, 1, 6_000_000))
		more, err := svc.EvaluateBudgets(t.Context())
		if err != nil || !slices.Equal(keys(more), []string{"budget/acme/2026-03/80/actual"}) {
			t.Fatalf("after more spend: %v, %v", keys(more), err)
		}
		// The listing: a tenant its own, newest first; the platform all.
		list, err := svc.Alerts(t.Context(), domain.Caller{Tenant: "acme"}, page.Request{PageSize: 2})
		if err != nil || len(list.Alerts) != 2 || list.Alerts[0].Key != "budget/acme/2026-03/80/actual" || list.Next == "" {
			t.Fatalf("acme page 1: %+v, %v", list, err)
		}
		n := len(list.Alerts)
		for list.Next != "" {
			if list, err = svc.Alerts(t.Context(), domain.Caller{Tenant: "acme"}, page.Request{PageSize: 2, PageToken: list.Next}); err != nil {
				t.Fatal(err)
			}
			for _, a := range list.Alerts {
				if a.TenantID != "acme" {
					t.Errorf("acme sees %+v", a)
				}
			}
			n += len(list.Alerts)
		}
		if n != 5 {
			t.Errorf("acme has %d alerts, want 5", n)
		}
		if all, err := svc.Alerts(t.Context(), domain.Caller{Tenant: "default", PlatformAdmin: true}, page.Request{}); err != nil || len(all.Alerts) != 6 {
			t.Errorf("platform sees %d, %v", len(all.Alerts), err)
		}
		if g, err := svc.Alerts(t.Context(), domain.Caller{Tenant: "globex"}, page.Request{}); err != nil || len(g.Alerts) != 0 {
			t.Errorf("globex sees %+v, %v", g.Alerts, err)
		}
	})
}

// Two replicas evaluating at the same time record each crossing once
// between them.
func TestEvaluateBudgetsTwoReplicas(t *testing.T) {
	eachBackend(t, func(t *testing.T, f fixture) {
		budgetData(t, f)
		second := store.New(storetest.Open(t, f.appURL))
		if _, err := alertService(f.st, t0).SetBudget(t.Context(), domain.Caller{Tenant: "acme"}, 20_000_000, nil); err != nil {
			t.Fatal(err)
		}
		var (
			mu  sync.Mutex
			got []domain.Alert
			wg  sync.WaitGroup
		)
		for _, st := range []domain.Store{f.st, second, f.st, second} {
			wg.Go(func() {
				as, err := alertService(st, t0).EvaluateBudgets(t.Context())
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				got = append(got, as...)
				mu.Unlock()
			})
		}
		wg.Wait()
		if len(got) != 4 {
			t.Errorf("replicas recorded %v, want 4 alerts once each", keys(got))
		}
		var n int
		if err := f.owner.QueryRowContext(t.Context(), "SELECT count(*) FROM finops_alerts").Scan(&n); err != nil || n != 4 {
			t.Errorf("stored %d alerts, %v", n, err)
		}
	})
}

// anomalyData: tenant records one job a day with a cost of $1 plus a little
// variation and a $5 payment, on the days from..to before day0, and a $10
// job with it on day0-1 (yesterday) when spike.
func anomalyData(t *testing.T, f fixture, tenant string, from int, spike bool) {
	for i := from; i >= 2; i-- {
		at := t0.Add(-time.Duration(i) * 24 * time.Hour)
		f.record(t, tenant, usage(fmt.Sprintf("%s-%d", tenant, i), at, 1, 1, 1_000_000+int64(i%3)*50_000))
		f.apply(t, charge(fmt.Sprintf("evt-%s-%d", tenant, i), "charge.succeeded", fmt.Sprintf("ch-%s-%d", tenant, i), tenant, "", 500, 0, at))
	}
	at := t0.Add(-24 * time.Hour)
	cost := int64(1_000_000)
	if spike {
		cost = 10_000_000
	}
	f.record(t, tenant, usage(tenant+"-1", at, 1, 1, cost))
	f.apply(t, charge("evt-"+tenant+"-1", "charge.succeeded", "ch-"+tenant+"-1", tenant, "", 500, 0, at))
}

// After 14 normal days a spike of cost (and so of margin) is flagged once;
// the normal days before it are not.
func TestAnomalySpike(t *testing.T) {
	eachBackend(t, func(t *testing.T, f fixture) {
		anomalyData(t, f, "acme", 15, true)
		svc := alertService(f.st, t0)
		got, err := svc.DetectAnomalies(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"anomaly/acme/2026-03-09/cost", "anomaly/acme/2026-03-09/margin"}
		if !slices.Equal(keys(got), want) {
			t.Fatalf("recorded %v, want %v", keys(got), want)
		}
		for _, a := range got {
			if a.Metric == domain.MetricCost && (a.Value != 10_600_000 || a.Reference < 1_600_000 || a.Reference > 1_650_000) {
				t.Errorf("cost anomaly = %+v", a)
			}
		}
		if again, err := svc.DetectAnomalies(t.Context()); err != nil || len(again) != 0 {
			t.Errorf("second run recorded %v, %v", keys(again), err)
		}
	})
}

// A tenant's first days never alert: with 6 days of history (below
// AnomalyMinHistory) the same spike is not flagged; with 7 it is.
func TestAnomalyNeedsHistory(t *testing.T) {
	eachBackend(t, func(t *testing.T, f fixture) {
		anomalyData(t, f, "newco", 7, true)   // days -7..-2: 6 days before the spike
		anomalyData(t, f, "olderco", 8, true) // 7 days
		got, err := alertService(f.st, t0).DetectAnomalies(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range got {
			if a.TenantID == "newco" {
				t.Errorf("a new tenant alerted: %+v", a)
			}
		}
		if !slices.Contains(keys(got), "anomaly/olderco/2026-03-09/cost") {
			t.Errorf("7 days of history not enough: %v", keys(got))
		}
	})
}

// On PostgreSQL budgets and alerts are behind row-level security: a
// tenant's transaction writes none of another tenant's and sees only its
// own.
func TestRLSBudgetsAndAlerts(t *testing.T) {
	f := newFixture(t, storetest.Backends()[1])
	for _, tenant := range []string{"acme", "globex"} {
		svc := alertService(f.st, t0)
		if _, err := svc.SetBudget(t.Context(), domain.Caller{Tenant: tenant}, 5, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := f.st.RecordAlert(t.Context(), domain.Alert{Key: "k-" + tenant, TenantID: tenant, Kind: domain.AlertBudget, CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	storetest.RLSRefusesWrites(t, f.db, "acme", map[string]string{
		"budget for another tenant": "INSERT INTO budgets (tenant_id, amount_micros, thresholds_pct, updated_at) VALUES ('globex2', 1, '50', now())",
		"alert for another tenant": `INSERT INTO finops_alerts (alert_key, tenant_id, kind, metric, period, threshold_pct, value,
			reference, message, created_at) VALUES ('x', 'globex', 'budget', '', '', 0, 0, 0, '', now())`,
		"move own budget": "UPDATE budgets SET tenant_id = 'globex2' WHERE tenant_id = 'acme'",
	})
	storetest.RLSHidesForeignRows(t, f.db, "acme", []string{
		"DELETE FROM budgets WHERE tenant_id = 'globex'", "UPDATE budgets SET amount_micros = 0 WHERE tenant_id = 'globex'",
		"DELETE FROM finops_alerts WHERE tenant_id = 'globex'",
	})
	for _, table := range []string{"budgets", "finops_alerts"} {
		if n := count(t, f.owner, table, "WHERE tenant_id = 'globex'"); n != 1 {
			t.Errorf("globex has %d rows of %s, want 1", n, table)
		}
		err := f.db.InTenantReadTx(t.Context(), "acme", func(tx *sql.Tx) error {
			if n := count(t, tx, table, ""); n != 1 {
				t.Errorf("acme's transaction counts %d rows of %s, want its own 1", n, table)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
