package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/loadtest"
	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/finops/internal/domain"
)

// BenchmarkSummary is the store's part of GET /api/finops/summary: one
// Totals and one UnpricedModels call over 30 days, for every tenant (an
// admin's view) or one, with benchTenants tenants that each have a rollup
// and a usage record every day of benchHistory days. The target is p95 ≤
// 20 ms for every tenant on both databases; p50-ms and p95-ms are the
// figures to compare.
//
//	go test -run '^$' -bench Summary -benchtime 200x ./internal/store/
func BenchmarkSummary(b *testing.B) {
	const benchTenants = 1000
	for _, backend := range storetest.Backends() {
		for _, history := range []int64{30, 90} {
			b.Run(fmt.Sprintf("%s/history=%dd", backend.Name, history), func(b *testing.B) {
				f := newFixture(b, backend)
				f.bulk(b, benchTenants, day0-history+1, day0)
				days := domain.LastDays(t0, 30)
				for _, sc := range []domain.Scope{all, scope("t0500")} {
					name := "all"
					if !sc.All {
						name = "tenant"
					}
					b.Run(name, func(b *testing.B) {
						var lat loadtest.Latencies
						for b.Loop() {
							start := time.Now()
							tot := f.totals(b, sc, days)
							models := f.unpricedModels(b, sc, days)
							lat.Add(time.Since(start))
							if tot.JobCount == 0 || len(models) == 0 {
								b.Fatalf("empty summary: %+v, %v", tot, models)
							}
						}
						lat.Report(b, 0.5, 0.95)
					})
				}
			})
		}
	}
}

// BenchmarkRecordUsage is one RecordUsage call of batch new records, as the
// queue's outbox relay delivers them; records/s is the figure to compare.
//
//	go test -run '^$' -bench RecordUsage ./internal/store/
func BenchmarkRecordUsage(b *testing.B) {
	for _, backend := range storetest.Backends() {
		for _, batch := range []int{1, 100, 1000} {
			b.Run(fmt.Sprintf("%s/batch=%d", backend.Name, batch), func(b *testing.B) {
				f := newFixture(b, backend)
				recs := make([]domain.UsageRecord, batch)
				n := 0
				for b.Loop() {
					for i := range recs {
						n++
						recs[i] = usage(fmt.Sprintf("job-%d", n), t0.Add(time.Duration(n)*time.Second), 100, 10, 5000)
					}
					f.record(b, fmt.Sprintf("t%d", n%10), recs...)
				}
				b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "records/s")
			})
		}
	}
}
