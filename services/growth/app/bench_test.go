package app_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	growthv1 "github.com/echopilot/echopilot/gen/go/echopilot/growth/v1"
	"github.com/echopilot/echopilot/platform/loadtest"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/growth/app"
	"github.com/echopilot/echopilot/services/growth/internal/code"
	"github.com/echopilot/echopilot/services/growth/internal/domain"
	"github.com/echopilot/echopilot/services/growth/internal/store"
)

// Data set of BenchmarkReferralStatsAtScale, as the issue sets it.
const (
	scaleTenants   = 1000
	scaleReferrers = 100  // per tenant: 100,000 referrers
	scaleEvents    = 1000 // per tenant: 1,000,000 events
	scaleDays      = 60   // events spread over, twice the window asked for
)

// benchService runs the service on backend over loopback TCP, with the
// whole interceptor chain, and opens the same database for seeding.
func benchService(b *testing.B, backend string) (growthv1.GrowthServiceClient, *store.Store, string) {
	opt := servicetest.Options{AuthMode: "required", Quiet: true, TCP: true}
	var appURL string
	if backend == "postgres" {
		opt.MigrateURL, appURL = storetest.Postgres(b)
	} else {
		appURL = "sqlite://" + filepath.Join(b.TempDir(), "growth.db")
	}
	opt.DatabaseURL = appURL
	c := growthv1.NewGrowthServiceClient(servicetest.Start(b, app.Spec(), opt))
	return c, store.New(storetest.Open(b, appURL)), opt.MigrateURL
}

// BenchmarkReferralStatsAtScale is GET /api/growth/referrals?days=30 of one
// tenant (a different one each call), over gRPC on loopback TCP with the
// full interceptor chain, after seeding 1,000 tenants × 100 referrers ×
// 1,000 events (1,000,000 events) over 60 days through the store's batch
// intake, which keeps the rollups as the RPCs do (seeding is not timed).
// Reported: p50 and p95 latency.
//
//	go test -run '^$' -bench ReferralStatsAtScale -benchtime 2000x -timeout 60m ./services/growth/app/
func BenchmarkReferralStatsAtScale(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			c, st, migrateURL := benchService(b, backend)
			seedScale(b, st)
			if backend == "postgres" {
				storetest.VacuumAnalyze(b, migrateURL)
			}
			ctxs := make([]context.Context, scaleTenants)
			for i := range ctxs {
				ctxs[i] = as(b, tenantName(i), "user")
			}
			var lat loadtest.Latencies
			i := 0
			for b.Loop() {
				var s *growthv1.ListReferralsResponse
				err := lat.Time(func() (err error) {
					s, err = c.ListReferrals(ctxs[i%scaleTenants], &growthv1.ListReferralsRequest{Days: 30})
					return err
				})
				if err != nil || s.GetTotalReferrals() != scaleReferrers || len(s.GetReferrals()) != domain.DefaultPageSize {
					b.Fatalf("stats: %v %v", s, err)
				}
				i++
			}
			lat.Report(b, 0.5, 0.95)
		})
	}
}

func tenantName(i int) string { return fmt.Sprintf("t%04d", i) }

// seedScale creates each tenant's referrers and records its events in one
// batch: 60% clicks, 25% signups, 12% conversions, 3% refunds of earlier
// conversions, on 8 goroutines.
func seedScale(b *testing.B, st *store.Store) {
	b.Helper()
	start := time.Now()
	now := time.Now().UTC()
	loadtest.Parallel(b, 8, scaleTenants, func(t int) error {
		tenant := tenantName(t)
		codes := make([]string, scaleReferrers)
		for r := range codes {
			ref, _, err := st.CreateReferral(b.Context(), tenant,
				domain.Referral{ReferrerID: fmt.Sprintf("referrer-%03d", r), Campaign: "default", CreatedAt: now}, code.New)
			if err != nil {
				return err
			}
			codes[r] = ref.Code
		}
		evs := make([]domain.Event, scaleEvents)
		var conversions []string
		for e := range evs {
			ev := domain.Event{ID: fmt.Sprintf("e%04d", e), Code: codes[(e*7+t)%scaleReferrers],
				OccurredAt: now.Add(-time.Duration((e*37)%(scaleDays*24)) * time.Hour)}
			switch p := e % 100; {
			case p < 60:
				ev.Type = domain.EventClick
			case p < 85:
				ev.Type = domain.EventSignup
			case p < 97 || len(conversions) == 0:
				ev.Type, ev.CustomerID, ev.AmountCents = domain.EventConversion, fmt.Sprint("cust-", e), int64(1000+e*13)
				conversions = append(conversions, ev.ID)
			default:
				ev.Type, ev.Code, ev.RefundOf, ev.AmountCents = domain.EventRefund, "", conversions[e%len(conversions)], 500
			}
			evs[e] = ev
		}
		_, err := st.RecordEvents(b.Context(), tenant, evs, domain.Terms{DefaultBPS: 2000})
		return err
	})
	b.Logf("seeded %d referrers and %d events in %v", scaleTenants*scaleReferrers, scaleTenants*scaleEvents,
		time.Since(start).Round(time.Second))
}

// exportRows is the size of BenchmarkPayoutExport's tenant.
const exportRows = 100_000

// BenchmarkPayoutExport is GET /api/growth/payouts/export?days=30 of one
// tenant with 100,000 referrals that each earned a payout, streamed over
// gRPC on loopback TCP. Reported besides the time per export: the rows and
// chunks streamed, and the peak heap in use (sampled every millisecond,
// over the baseline before the export) of client and server together,
// which stays flat however many rows there are.
//
//	go test -run '^$' -bench PayoutExport -benchtime 5x -timeout 30m ./services/growth/app/
func BenchmarkPayoutExport(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			c, st, migrateURL := benchService(b, backend)
			seedExport(b, st)
			if backend == "postgres" {
				storetest.VacuumAnalyze(b, migrateURL)
			}
			ctx := as(b, "acme", "user")
			var peak atomic.Uint64
			var rows, chunks int
			b.ReportAllocs()
			for b.Loop() {
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				base := ms.HeapInuse
				done := make(chan struct{})
				sampled := make(chan struct{})
				go func() {
					defer close(sampled)
					var m runtime.MemStats
					for {
						runtime.ReadMemStats(&m)
						if m.HeapInuse > base && m.HeapInuse-base > peak.Load() {
							peak.Store(m.HeapInuse - base)
						}
						select {
						case <-done:
							return
						case <-time.After(time.Millisecond):
						}
					}
				}()
				rows, chunks = streamExport(b, c, ctx)
				close(done)
				<-sampled
			}
			if rows != exportRows+1 {
				b.Fatalf("exported %d lines, want %d", rows, exportRows+1)
			}
			b.ReportMetric(float64(rows-1), "rows")
			b.ReportMetric(float64(chunks), "chunks")
			b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
		})
	}
}

// streamExport reads an export, counting lines and chunks without keeping
// them.
func streamExport(b *testing.B, c growthv1.GrowthServiceClient, ctx context.Context) (lines, chunks int) {
	stream, err := c.ExportPayouts(ctx, &growthv1.ExportPayoutsRequest{Days: 30})
	if err != nil {
		b.Fatal(err)
	}
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return lines, chunks
		}
		if err != nil {
			b.Fatal(err)
		}
		chunks++
		for _, c := range m.GetData() {
			if c == '\n' {
				lines++
			}
		}
	}
}

// seedExport gives tenant acme exportRows referrals, each with one
// conversion in the last 30 days.
func seedExport(b *testing.B, st *store.Store) {
	b.Helper()
	start := time.Now()
	now := time.Now().UTC()
	const batch = 1000
	loadtest.Parallel(b, 8, exportRows/batch, func(k int) error {
		evs := make([]domain.Event, batch)
		for i := range evs {
			n := k*batch + i
			ref, _, err := st.CreateReferral(b.Context(), "acme",
				domain.Referral{ReferrerID: fmt.Sprintf("referrer-%06d", n), Campaign: "spring", CreatedAt: now}, code.New)
			if err != nil {
				return err
			}
			evs[i] = domain.Event{ID: fmt.Sprint("c", n), Type: domain.EventConversion, Code: ref.Code, CustomerID: "cust",
				AmountCents: int64(1000 + n%50000), OccurredAt: now.Add(-time.Duration(n%29*24) * time.Hour)}
		}
		_, err := st.RecordEvents(b.Context(), "acme", evs, domain.Terms{DefaultBPS: 2000})
		return err
	})
	b.Logf("seeded %d referrals with a conversion each in %v", exportRows, time.Since(start).Round(time.Second))
}
