// Package app assembles the queue service. The binary runs it; tests in
// this and other modules (the gateway's, the end-to-end harness) run the
// same thing in-process.
package app

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/echopilot/echopilot/platform/config"
	"github.com/echopilot/echopilot/platform/outbox"
	"github.com/echopilot/echopilot/platform/service"
	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/platform/tenantdata"
	"github.com/echopilot/echopilot/services/queue/internal/domain"
	"github.com/echopilot/echopilot/services/queue/internal/grpcapi"
	"github.com/echopilot/echopilot/services/queue/internal/store"
)

// Background job periods.
const (
	// reapEvery bounds how long a job whose lease expired waits when no
	// worker of its tenant asks for work (lease calls reap their own tenant).
	reapEvery = time.Second
	// foldEvery folds the status counters' deltas (PostgreSQL): a status
	// call sums at most about a second of a tenant's job changes.
	foldEvery = time.Second
	// depthEvery refreshes the queue depth gauge.
	depthEvery = 5 * time.Second
	// pruneEvery runs retention; each run deletes in bounded transactions.
	pruneEvery = 10 * time.Minute
	// listenRestart is the wait before the PostgreSQL listener reconnects
	// after its connection failed.
	listenRestart = time.Second
	// defaultTokenSync bounds how long a revoked worker token keeps
	// working on a replica other than the one that revoked it.
	defaultTokenSync = 2 * time.Second
)

// Options are the parts of the queue service that tests plug in.
type Options struct {
	// FinOpsPublisher returns the outbox publisher that delivers completed
	// jobs' usage (topic queue.job.completed) to finops at addr; it should
	// release what it holds when ctx, the service's lifetime, ends.
	//
	// The outbox relay runs only when ECHOPILOT_FINOPS_ADDR is set and this
	// is not nil. Otherwise completions still write their events, which wait
	// in the outbox (see the outbox pending gauge) until a release that
	// delivers them: nothing is lost, only delayed.
	FinOpsPublisher service.PublisherFunc
}

// Spec returns the queue service for service.Run, delivering usage to
// finops' RecordUsage.
func Spec() service.Spec { return SpecWith(Options{FinOpsPublisher: FinOpsRecorder}) }

// SpecWith returns the queue service with opt.
func SpecWith(opt Options) service.Spec {
	var (
		retention   time.Duration
		backoffBase time.Duration
		backoffCap  time.Duration
		leasePoll   time.Duration
		staleAfter  time.Duration
		rateLimit   int
		rateBurst   int
		finopsAddr  string
		tokenKey    string
		tokenMax    time.Duration
		tokenSync   time.Duration
	)
	return service.Spec{
		Name:            "queue",
		GRPCAddr:        ":9104",
		MetricsAddr:     ":9204",
		Migrations:      store.Migrations,
		ExtraMigrations: []pstore.Migrations{outbox.Migrations},
		Flags: func(l *config.Loader) {
			l.Duration(&retention, "job-retention", "ECHOPILOT_JOB_RETENTION", 7*24*time.Hour,
				"completed, dead and cancelled jobs are deleted this long after they finished")
			l.Duration(&backoffBase, "retry-backoff-base", "ECHOPILOT_RETRY_BACKOFF_BASE", domain.DefaultBackoffBase,
				"wait before the first retry of a failed job; doubles per attempt, with jitter")
			l.Duration(&backoffCap, "retry-backoff-cap", "ECHOPILOT_RETRY_BACKOFF_CAP", domain.DefaultBackoffCap,
				"longest wait between retries")
			l.Duration(&leasePoll, "lease-poll-interval", "ECHOPILOT_LEASE_POLL_INTERVAL", domain.DefaultPoll,
				"how often a waiting lease call looks for delayed jobs come due (new jobs wake it at once)")
			l.Int(&rateLimit, "worker-rate-limit", "ECHOPILOT_WORKER_RATE_LIMIT", 0,
				"worker calls (lease, heartbeat, complete, fail) a tenant may make per second on this replica (0: no limit); for edge routes that bypass the REST gateway's limits")
			l.Int(&rateBurst, "worker-rate-burst", "ECHOPILOT_WORKER_RATE_BURST", 0,
				"burst of worker calls above the rate (0: twice the rate)")
			l.Duration(&staleAfter, "worker-stale-after", "ECHOPILOT_WORKER_STALE_AFTER", domain.DefaultWorkerStaleAfter,
				"a registered worker not heard from (lease or heartbeat) for this long is listed as stale")
			l.String(&finopsAddr, "finops-addr", "ECHOPILOT_FINOPS_ADDR", "",
				"finops gRPC address that completed jobs' usage is delivered to (empty: events wait in the outbox)")
			l.String(&tokenKey, "worker-token-key-file", "ECHOPILOT_WORKER_TOKEN_KEY_FILE", "",
				"PEM Ed25519 private key (PKCS #8) that signs worker tokens; its public key must be in ECHOPILOT_JWT_PUBLIC_KEYS of queue and finops (empty: CreateWorkerToken is refused)")
			l.Duration(&tokenMax, "worker-token-max-lifetime", "ECHOPILOT_WORKER_TOKEN_MAX_LIFETIME", domain.DefaultWorkerTokenMaxLifetime,
				"a worker token refreshes until this long after it was created")
			l.Duration(&tokenSync, "worker-token-sync-interval", "ECHOPILOT_WORKER_TOKEN_SYNC_INTERVAL", defaultTokenSync,
				"how often the queue rereads worker token revocations: a revoked token works at most this long on another replica")
		},
		TenantData: func(rt *service.Runtime) tenantdata.Rules { return tenantDataRules(rt.DB) },
		Setup: func(ctx context.Context, rt *service.Runtime) error {
			if backoffBase <= 0 || backoffCap < backoffBase {
				return errors.New("retry backoff: want 0 < base <= cap")
			}
			if rateLimit < 0 || rateBurst < 0 {
				return errors.New("worker-rate-limit and worker-rate-burst must not be negative")
			}
			if retention <= 0 || leasePoll <= 0 || staleAfter <= 0 || tokenMax <= 0 || tokenSync <= 0 {
				return errors.New("job-retention, lease-poll-interval, worker-stale-after, worker-token-max-lifetime and worker-token-sync-interval must be positive")
			}
			sign, err := workerTokenSigner(rt.Config, tokenKey)
			if err != nil {
				return err
			}
			m := newMetrics(rt.Server.Registry)
			relay, err := rt.StartRelay(ctx, finopsAddr, opt.FinOpsPublisher, outbox.Options{Topics: []string{domain.TopicJobCompleted}})
			if err != nil {
				return err
			}
			wake := domain.NewWakeups()
			// Long polls answer when shutdown begins instead of holding up
			// the graceful stop.
			context.AfterFunc(ctx, wake.Stop)
			st := store.New(rt.DB)
			svc := domain.NewService(st, wake, domain.Config{
				Backoff:          domain.Backoff{Base: backoffBase, Cap: backoffCap},
				Poll:             leasePoll,
				WorkerStaleAfter: staleAfter,
				Hooks: domain.Hooks{
					Completed:          relay.Kick,
					LeasesExpired:      func(n int) { m.leaseExpiries.Add(float64(n)) },
					WorkerLimitReached: m.workerLimit.Inc,
					Leased:             m.leased,
					Finished:           m.finished,
				},
			})
			tokens := domain.NewTokens(st, domain.TokenConfig{Sign: sign, MaxLifetime: tokenMax})
			// Before serving: a revoked token must not pass on a fresh replica.
			if err := tokens.Sync(ctx); err != nil {
				return err
			}
			rt.Every("sync-worker-tokens", tokenSync, tokens.Sync)
			grpcapi.New(svc, tokens, grpcapi.NewWorkerLimit(rateLimit, rateBurst), &outbox.AdminServer{DB: rt.DB, Kick: relay.Kick}).Register(rt.GRPC())

			if rt.DB.Dialect == pstore.Postgres {
				// The status counters' deltas (store.FoldCounts).
				rt.Every("fold-counts", foldEvery, func(ctx context.Context) error {
					_, err := st.FoldCounts(ctx)
					return err
				})
				// Listen returns when its connection fails; Every reconnects.
				rt.Every("listen-jobs", listenRestart, func(ctx context.Context) error {
					return store.Listen(ctx, rt.Config.DatabaseURL, wake.NotifyAll, wake.Notify)
				})
			}
			rt.Every("reap-leases", reapEvery, func(ctx context.Context) error {
				_, err := svc.ReapExpiredLeases(ctx)
				return err
			})
			rt.Every("queue-depth", depthEvery, func(ctx context.Context) error {
				d, err := svc.Depth(ctx)
				if err != nil {
					return err
				}
				m.setDepth(d)
				ages, err := svc.OldestWaiting(ctx)
				if err != nil {
					return err
				}
				m.setOldest(ages)
				return nil
			})
			rt.Every("worker-count", depthEvery, func(ctx context.Context) error {
				c, err := svc.CountWorkers(ctx)
				if err != nil {
					return err
				}
				m.setWorkers(c)
				return nil
			})
			rt.Every("prune-jobs", pruneEvery, func(ctx context.Context) error {
				n, err := svc.Prune(ctx, retention)
				if n > 0 {
					rt.Log.Info("deleted finished jobs", zap.Int64("rows", n))
				}
				if err != nil {
					return err
				}
				n, err = svc.PruneWorkers(ctx)
				if n > 0 {
					rt.Log.Info("deleted workers not seen for a week", zap.Int64("rows", n))
				}
				if err != nil {
					return err
				}
				n, err = tokens.Prune(ctx)
				if n > 0 {
					rt.Log.Info("deleted worker tokens past their max lifetime", zap.Int64("rows", n))
				}
				return err
			})
			return nil
		},
	}
}
