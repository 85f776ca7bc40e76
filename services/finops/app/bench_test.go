package app_test

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	finopsv1 "github.com/echopilot/echopilot/gen/go/echopilot/finops/v1"
	"github.com/echopilot/echopilot/platform/loadtest"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/finops/app"
	"github.com/echopilot/echopilot/services/finops/internal/stripe"
)

// Data set of BenchmarkSummaryAtScale, as the issue sets it.
const (
	scaleTenants  = 1000
	scaleUsage    = 1_000_000
	scalePayments = 100_000
	scaleDays     = 30
)

// BenchmarkSummaryAtScale is GET /api/finops/summary?days=30 for every
// tenant (a platform admin's view) and for one tenant, over gRPC on
// loopback TCP with the full interceptor chain, after seeding 1,000,000
// usage records and 100,000 Stripe payments across 1,000 tenants over 30
// days, all through the service's own RPCs (seeding is not timed; it takes
// minutes). Budgets and anomaly detection are on and busy: every tenant
// and the platform have a budget, and the evaluator runs every second
// (production: every 15 minutes), so reads share the machine with it.
// Reported: p50 and p95 latency.
//
//	go test -run '^$' -bench SummaryAtScale -benchtime 300x -timeout 30m ./services/finops/app/
func BenchmarkSummaryAtScale(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			opt := servicetest.Options{AuthMode: "required", Quiet: true, TCP: true,
				Args: []string{"--stripe-webhook-secret=" + secretA, "--alert-interval=1s"}}
			if backend == "postgres" {
				opt.MigrateURL, opt.DatabaseURL = storetest.Postgres(b)
			}
			c := finopsv1.NewFinOpsServiceClient(servicetest.Start(b, app.Spec(), opt))
			seed(b, c)
			for i := 0; i <= scaleTenants; i++ {
				tenant := fmt.Sprintf("t%04d", i)
				if i == scaleTenants {
					tenant = "default" // the platform budget
				}
				if _, err := c.SetBudget(as(b, tenant, "admin"), &finopsv1.SetBudgetRequest{AmountMicros: 1_000_000}); err != nil {
					b.Fatalf("budget of %s: %v", tenant, err)
				}
			}
			if backend == "postgres" {
				storetest.VacuumAnalyze(b, opt.MigrateURL)
			}
			for _, who := range []string{"all", "tenant"} {
				ctx := as(b, "default", "admin")
				if who == "tenant" {
					ctx = as(b, "t0500", "user")
				}
				b.Run(who, func(b *testing.B) {
					var lat loadtest.Latencies
					for b.Loop() {
						var s *finopsv1.GetSummaryResponse
						err := lat.Time(func() (err error) {
							s, err = c.GetSummary(ctx, &finopsv1.GetSummaryRequest{Days: scaleDays})
							return err
						})
						if err != nil || s.GetCosts().GetAi().GetJobCount() == 0 {
							b.Fatalf("summary: %v %v", s, err)
						}
					}
					lat.Report(b, 0.5, 0.95)
				})
			}
		})
	}
}

// seed records the data set through RecordUsage (one tenant's 1,000
// records per call, a tenant's records spread over the days) and the
// Stripe webhook (signed events, 8 senders), and checks the totals.
func seed(b *testing.B, c finopsv1.FinOpsServiceClient) {
	b.Helper()
	start := time.Now()
	now := time.Now().UTC()
	perTenant := scaleUsage / scaleTenants
	svc := servicetest.AsService(b, "queue", "")
	loadtest.Parallel(b, 8, scaleTenants, func(i int) error {
		recs := make([]*finopsv1.UsageRecord, perTenant)
		for j := range recs {
			model := "gpt-4o-mini"
			if j%100 == 0 {
				model = fmt.Sprintf("private-model-%d", j%7)
			}
			recs[j] = &finopsv1.UsageRecord{
				TenantId: fmt.Sprintf("t%04d", i), JobId: fmt.Sprintf("job-%d", j), JobType: "ai_task", Model: model,
				InputTokens: 1200, OutputTokens: 300, DurationMs: 900,
				CompletedAt: timestamppb.New(now.Add(-time.Duration(j%scaleDays) * 24 * time.Hour)),
			}
		}
		_, err := c.RecordUsage(svc, &finopsv1.RecordUsageRequest{Records: recs})
		return err
	})
	usageTook := time.Since(start)
	loadtest.Parallel(b, 8, scalePayments, func(i int) error {
		at := now.Add(-time.Duration(i%scaleDays) * 24 * time.Hour)
		body := chargeEvent(fmt.Sprintf("evt_%d", i), "charge.succeeded", fmt.Sprintf("ch_%d", i), 1000+int64(i%5000), 0,
			fmt.Sprintf("t%04d", i%scaleTenants), fmt.Sprintf("cus_%d", i%scaleTenants), at)
		_, err := send(c, body, stripe.SignatureHeader([]byte(secretA), time.Now(), body))
		return err
	})
	s, err := c.GetSummary(as(b, "default", "admin"), &finopsv1.GetSummaryRequest{Days: scaleDays})
	if err != nil || s.GetCosts().GetAi().GetJobCount() != scaleUsage || s.GetRevenue().GetPaymentCount() != scalePayments {
		b.Fatalf("seeded summary: %v %v", s, err)
	}
	b.Logf("seeded %d usage records in %v and %d payments in %v", scaleUsage, usageTook.Round(time.Second),
		scalePayments, (time.Since(start) - usageTook).Round(time.Second))
}
