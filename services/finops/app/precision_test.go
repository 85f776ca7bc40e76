package app_test

import (
	"encoding/csv"
	"strings"
	"testing"

	finopsv1 "github.com/echopilot/echopilot/gen/go/echopilot/finops/v1"
)

// The case: three ai_task jobs of gpt-4o-mini, 1,000 input and 500
// output tokens each, cost 3 × (1000×$0.15 + 500×$0.60)/1M = $0.00135.
// Every report shows it, and every total that includes it, to the
// micro-dollar, with the exact integer beside.
func TestSubCentAICost(t *testing.T) {
	backends(t, func(t *testing.T, c finopsv1.FinOpsServiceClient) {
		record(t, c, "acme", usage("m1", "gpt-4o-mini", 1000, 500), usage("m2", "gpt-4o-mini", 1000, 500),
			usage("m3", "gpt-4o-mini", 1000, 500))
		const aiMicros = 1350
		for _, who := range []string{"admin", "acme"} {
			ctx := admin(t)
			if who == "acme" {
				ctx = as(t, "acme", "user")
			}
			s := summary(t, c, ctx, 7)
			ai, infra, p := s.GetCosts().GetAi(), s.GetCosts().GetInfrastructure(), s.GetProfitability()
			if ai.GetTotalCost() != 0.00135 || ai.GetTotalCostMicros() != aiMicros || ai.GetJobCount() != 3 {
				t.Errorf("%s: ai = %v", who, ai)
			}
			costs := aiMicros + infra.GetTotalCostMicros()
			if p.GetTotalCostsMicros() != costs || p.GetProfitMicros() != -costs || p.GetTotalRevenueMicros() != 0 ||
				p.GetTotalCosts() != float64(costs)/1e6 || p.GetProfit() != -float64(costs)/1e6 {
				t.Errorf("%s: profitability = %v with infrastructure %v", who, p, infra)
			}
			if b := infra.GetBreakdown(); b.GetComputeMicros()+b.GetDatabaseMicros() != infra.GetTotalCostMicros() {
				t.Errorf("%s: breakdown %v does not add up to %d", who, b, infra.GetTotalCostMicros())
			}
		}
		// The admin's whole: 7 days of the rate card, sub-cent AI on top.
		if p := summary(t, c, admin(t), 7).GetProfitability(); p.GetTotalCosts() != 4.20135 || p.GetTotalCostsMicros() != 4_201_350 {
			t.Errorf("admin total costs = %v", p)
		}

		list, err := c.ListTenantCosts(admin(t), &finopsv1.ListTenantCostsRequest{Days: 7})
		if err != nil || len(list.GetTenants()) != 1 {
			t.Fatalf("tenants = %v, %v", list, err)
		}
		tc := list.GetTenants()[0]
		// acme ran every job today: today's whole $0.60 is its allocation.
		if tc.GetAiCost() != 0.00135 || tc.GetAiCostMicros() != aiMicros || tc.GetInfrastructureCostMicros() != 600_000 ||
			tc.GetTotalCosts() != 0.60135 || tc.GetTotalCostsMicros() != 601_350 || tc.GetProfit() != -0.60135 ||
			tc.GetProfitMicros() != -601_350 || list.GetPlatformCostMicros() != 3_600_000 {
			t.Errorf("acme's row = %v (platform %d)", tc, list.GetPlatformCostMicros())
		}

		ts, err := c.GetTimeseries(as(t, "acme", "user"), &finopsv1.GetTimeseriesRequest{Days: 2})
		if err != nil {
			t.Fatal(err)
		}
		if d := ts.GetDays()[1]; d.GetAiCost() != 0.00135 || d.GetAiCostMicros() != aiMicros || d.GetTotalCostsMicros() != 601_350 ||
			d.GetTotalCosts() != 0.60135 {
			t.Errorf("today = %v", d)
		}

		// The CSV writes the exact decimal too.
		_, body, err := export(c, as(t, "acme", "user"), &finopsv1.ExportCostsRequest{Days: 1})
		if err != nil {
			t.Fatal(err)
		}
		rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
		if err != nil || len(rows) != 4 {
			t.Fatalf("export: %v\n%s", err, body)
		}
		if ai := rows[1]; ai[5] != "AI Inference" || ai[8] != "0.00135" || ai[9] != "0.00135" || ai[10] != "4500" {
			t.Errorf("AI row = %v", ai)
		}
	})
}
