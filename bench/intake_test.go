package bench

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	finopsv1 "github.com/echopilot/echopilot/gen/go/echopilot/finops/v1"
	"github.com/echopilot/echopilot/platform/outbox"
	"github.com/echopilot/echopilot/platform/service"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/platform/svcauth"
	finops "github.com/echopilot/echopilot/services/finops/app"
	queue "github.com/echopilot/echopilot/services/queue/app"
)

// recordsPerRound is how many completed-job events each measured round
// delivers.
const recordsPerRound = 5000

// BenchmarkUsageIntake measures usage intake through the outbox: the
// queue's completed-job events wait in an outbox (written beforehand, not
// timed); the platform relay with the queue's finops publisher delivers
// them over gRPC (loopback TCP, service token) to finops, which prices and
// stores each with its rollups. Reported: records/s from the first claim
// until the outbox is empty, for events of one tenant and of 100 tenants
// (finops writes each tenant's records under its own row-level-security
// scope, so mixed batches cost more statements).
//
//	go test -run '^$' -bench UsageIntake -benchtime 1x ./bench/
func BenchmarkUsageIntake(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		for _, tenants := range []int{1, 100} {
			for _, batched := range []bool{true, false} {
				b.Run(fmt.Sprintf("%s/tenants=%d/batched=%t", backend, tenants, batched), func(b *testing.B) {
					benchIntake(b, backend, tenants, batched)
				})
			}
		}
	}
}

// benchIntake measures one configuration; batched=false is the baseline:
// the same publisher handed one event per call by the per-event relay.
func benchIntake(b *testing.B, backend string, tenants int, batched bool) {
	opt := servicetest.Options{AuthMode: "required", Quiet: true, TCP: true}
	outboxURL := "sqlite://" + filepath.Join(b.TempDir(), "queue.db")
	var outboxMigrate string
	if backend == "postgres" {
		opt.MigrateURL, opt.DatabaseURL = storetest.Postgres(b)
		outboxMigrate, outboxURL = storetest.Postgres(b)
	}
	conn := servicetest.Start(b, finops.Spec(), opt)
	db := openOutbox(b, outboxURL, outboxMigrate)
	rt := &service.Runtime{Credential: svcauth.Minted([]byte(servicetest.Secret), "queue")}
	peer, err := rt.DialPeer(conn.Target())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = peer.Close() })
	pub := queue.FinOpsRecorder(peer)
	relay := outbox.NewBatchRelay(db, pub, zap.NewNop(), prometheus.NewRegistry(), outbox.Options{Batch: 100})
	if !batched {
		one := func(ctx context.Context, e outbox.Event) error { return pub(ctx, []outbox.Event{e})[0] }
		relay = outbox.NewRelay(db, one, zap.NewNop(), prometheus.NewRegistry(), outbox.Options{Batch: 100})
	}
	var total time.Duration
	for round := 0; b.Loop(); round++ {
		b.StopTimer()
		addCompleted(b, db, round, recordsPerRound, tenants)
		b.StartTimer()
		start := time.Now()
		for delivered := 0; delivered < recordsPerRound; {
			n, err := relay.RunOnce(b.Context())
			if err != nil {
				b.Fatal(err)
			}
			if n == 0 {
				b.Fatalf("relay delivered %d of %d", delivered, recordsPerRound)
			}
			delivered += n
		}
		total += time.Since(start)
	}
	b.ReportMetric(float64(recordsPerRound*b.N)/total.Seconds(), "records/s")
	checkIntake(b, conn, recordsPerRound*b.N)
}

func openOutbox(b *testing.B, url, migrateURL string) *store.DB {
	b.Helper()
	if migrateURL != "" {
		owner, err := store.Open(b.Context(), migrateURL)
		if err != nil {
			b.Fatal(err)
		}
		if err := owner.Migrate(b.Context(), outbox.Migrations); err != nil {
			b.Fatal(err)
		}
		_ = owner.Close()
	}
	db, err := store.Open(b.Context(), url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	if migrateURL == "" {
		if err := db.Migrate(b.Context(), outbox.Migrations); err != nil {
			b.Fatal(err)
		}
	}
	return db
}

// addCompleted writes n queue.job.completed events as the queue does.
func addCompleted(b *testing.B, db *store.DB, round, n, tenants int) {
	b.Helper()
	now := time.Now().UTC()
	evs := make([]outbox.Event, 0, n)
	for i := range n {
		tenant := fmt.Sprintf("tenant-%03d", i%tenants)
		job := fmt.Sprintf("job-%d-%d", round, i)
		payload, _ := json.Marshal(map[string]any{
			"job_id": job, "tenant_id": tenant, "type": "ai_task", "completed_at": now,
			"usage": map[string]any{"model": "gpt-4o-mini", "input_tokens": 1200, "output_tokens": 300, "duration_ms": 800},
		})
		evs = append(evs, outbox.Event{Topic: "queue.job.completed", Key: job, TenantID: tenant, Payload: payload})
	}
	err := db.InTx(b.Context(), func(tx *sql.Tx) error {
		_, err := outbox.AddMany(b.Context(), tx, db.Dialect, evs)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
}

// checkIntake proves the records arrived: finops counts every job once.
func checkIntake(b *testing.B, conn *grpc.ClientConn, want int) {
	b.Helper()
	s, err := finopsv1.NewFinOpsServiceClient(conn).GetSummary(bearer(b, "default", "admin"), &finopsv1.GetSummaryRequest{Days: 1})
	if err != nil {
		b.Fatal(err)
	}
	if got := s.GetCosts().GetAi().GetJobCount(); got != int64(want) {
		b.Fatalf("finops counted %d jobs, want %d", got, want)
	}
}
