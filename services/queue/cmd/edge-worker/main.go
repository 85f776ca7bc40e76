// Command edge-worker runs queue jobs on an edge machine, and enqueues jobs
// or prints the queue status for its tenant:
//
//	edge-worker --mode=worker  [--max-jobs=N] [--types=ai_task,…] [--concurrency=N]
//	edge-worker --mode=enqueue --type=ai_task --payload='{"prompt":"hi"}' [--count=N]
//	edge-worker --mode=status
//
// It talks gRPC to the queue service (--queue-addr) with a bearer token
// (--token-file or --token; a worker token minted by the queue is refreshed
// when half its lifetime has passed), or, for local runs, with a worker token it mints from
// ECHOPILOT_JWT_HS256_SECRET for --tenant. The connection is TLS unless the
// queue is on loopback (system roots, or --ca-file); plaintext to another
// machine is refused without --insecure. Every flag has an ECHOPILOT_*
// environment fallback; -h lists them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	finopsv1 "github.com/echopilot/echopilot/gen/go/echopilot/finops/v1"
	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	"github.com/echopilot/echopilot/platform/config"
	"github.com/echopilot/echopilot/platform/netguard"
	"github.com/echopilot/echopilot/services/queue/worker"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "edge-worker:", err)
		os.Exit(1)
	}
}

// Config is the whole configuration of edge-worker.
type Config struct {
	Mode      string
	QueueAddr string
	QueueTLS  tlsMode
	Insecure  bool
	CAFile    string
	CertFile  string
	KeyFile   string
	Token     string
	TokenFile string
	Secret    string // HS256 secret to mint a local worker token
	Tenant    string
	LogLevel  string

	// worker mode
	WorkerID      string
	Types         string
	Concurrency   int
	MaxJobs       int
	Lease         time.Duration
	Batch         int
	Wait          time.Duration
	ShutdownGrace time.Duration

	// handlers
	AIBaseURL               string
	AIModel                 string
	AIAPIKey                string
	AITimeout               time.Duration
	DataSyncURL             string
	DataSyncAllowedPrefixes string
	OutboundAllow           string
	DataSyncSecret          string
	DataSyncTimeout         time.Duration
	FinopsAddr              string

	// enqueue mode
	JobType        string
	Priority       string
	Payload        string
	Count          int
	IdempotencyKey string
	MaxAttempts    int
}

func parseConfig(args []string, stderr io.Writer) (Config, error) {
	var c Config
	l := config.New("edge-worker")
	l.FS.SetOutput(stderr)
	l.String(&c.Mode, "mode", "ECHOPILOT_WORKER_MODE", "worker", "worker (run jobs), enqueue (add jobs) or status (print the queue status)")
	l.String(&c.QueueAddr, "queue-addr", "ECHOPILOT_QUEUE_ADDR", "127.0.0.1:9104", "queue service gRPC address")
	c.QueueTLS = tlsAuto
	l.Var(&c.QueueTLS, "queue-tls", "ECHOPILOT_QUEUE_TLS",
		"auto (TLS unless the queue is on loopback), true or false (plaintext, refused beyond loopback without --insecure); also for --finops-addr")
	l.Bool(&c.Insecure, "insecure", "ECHOPILOT_INSECURE", false, "allow plaintext gRPC to a non-loopback address (the token travels in the clear)")
	l.String(&c.CAFile, "ca-file", "ECHOPILOT_TLS_CA_FILE", "", "PEM CA bundle the queue's certificate is verified against, re-read when it changes (default: the system roots)")
	l.String(&c.CertFile, "tls-cert-file", "ECHOPILOT_TLS_CERT_FILE", "", "PEM client certificate for a queue that asks for one (optional)")
	l.String(&c.KeyFile, "tls-key-file", "ECHOPILOT_TLS_KEY_FILE", "", "PEM private key of --tls-cert-file")
	l.Secret(&c.Token, "token", "ECHOPILOT_TOKEN", "bearer token (a worker token needs role \"worker\")")
	l.String(&c.TokenFile, "token-file", "ECHOPILOT_TOKEN_FILE", "",
		"file holding the bearer token, re-read when it changes; a worker token minted by the queue (POST /api/queue/worker-tokens) is refreshed in memory, and in the file when it is writable")
	l.Secret(&c.Secret, "jwt-hs256-secret", "ECHOPILOT_JWT_HS256_SECRET", "local runs without --token: mint short-lived worker tokens for --tenant with this secret")
	l.String(&c.Tenant, "tenant", "ECHOPILOT_TENANT", "default", "tenant of minted tokens, or of anonymous enqueue/status calls")
	l.String(&c.LogLevel, "log-level", "ECHOPILOT_WORKER_LOG_LEVEL", "off", "JSON logs on stderr: off, debug, info, warn or error")

	l.String(&c.WorkerID, "worker-id", "ECHOPILOT_WORKER_ID", defaultWorkerID(), "lease owner name")
	l.String(&c.Types, "types", "ECHOPILOT_WORKER_TYPES", "", "comma-separated job types to run (default: every handler: ai_task, data_sync, report_gen)")
	l.Int(&c.Concurrency, "concurrency", "ECHOPILOT_WORKER_CONCURRENCY", 1, "jobs run in parallel")
	l.Int(&c.MaxJobs, "max-jobs", "ECHOPILOT_WORKER_MAX_JOBS", 0, "stop after this many jobs (0: run until SIGTERM)")
	l.Duration(&c.Lease, "lease", "ECHOPILOT_WORKER_LEASE", 30*time.Second, "lease length (whole seconds); heartbeats renew it every third")
	l.Int(&c.Batch, "batch", "ECHOPILOT_WORKER_BATCH", 0, "most jobs leased per call, 1-100 (default: --concurrency)")
	l.Duration(&c.Wait, "wait", "ECHOPILOT_WORKER_WAIT", 10*time.Second, "long-poll time of a lease call when no job is ready (max 30s)")
	l.Duration(&c.ShutdownGrace, "shutdown-grace", "ECHOPILOT_WORKER_SHUTDOWN_GRACE", 25*time.Second, "on SIGTERM, how long running jobs may finish before they are handed back")

	l.String(&c.AIBaseURL, "ai-base-url", "ECHOPILOT_AI_BASE_URL", "", "OpenAI-compatible API base for ai_task, e.g. https://api.openai.com/v1")
	l.String(&c.AIModel, "ai-model", "ECHOPILOT_AI_MODEL", "", "model for ai_task")
	l.Secret(&c.AIAPIKey, "ai-api-key", "ECHOPILOT_AI_API_KEY", "API key for ai_task (prefer the env variable)")
	l.Duration(&c.AITimeout, "ai-timeout", "ECHOPILOT_AI_TIMEOUT", 2*time.Minute, "ai_task request timeout")
	l.String(&c.DataSyncURL, "data-sync-url", "ECHOPILOT_DATA_SYNC_URL", "", "where data_sync POSTs payloads that name no url")
	l.String(&c.DataSyncAllowedPrefixes, "data-sync-allowed-prefixes", "ECHOPILOT_DATA_SYNC_ALLOWED_PREFIXES", "", "comma-separated URL prefixes a payload's own \"url\" may point under")
	l.String(&c.OutboundAllow, "outbound-allow", "ECHOPILOT_OUTBOUND_ALLOW", "",
		"CIDRs and host names a payload's \"url\" may reach although they are not public, comma-separated (e.g. 127.0.0.1/32,receiver.internal)")
	l.Secret(&c.DataSyncSecret, "data-sync-secret", "ECHOPILOT_DATA_SYNC_SECRET", "HMAC-SHA256 secret signing data_sync requests (prefer the env variable)")
	l.Duration(&c.DataSyncTimeout, "data-sync-timeout", "ECHOPILOT_DATA_SYNC_TIMEOUT", 30*time.Second, "data_sync request timeout")
	l.String(&c.FinopsAddr, "finops-addr", "ECHOPILOT_FINOPS_ADDR", "", "finops gRPC address for report_gen's finops section (empty: none)")

	l.String(&c.JobType, "type", "ECHOPILOT_JOB_TYPE", "ai_task", "enqueue: job type")
	l.String(&c.Priority, "priority", "ECHOPILOT_JOB_PRIORITY", "normal", "enqueue: critical, high, normal or low")
	l.String(&c.Payload, "payload", "ECHOPILOT_JOB_PAYLOAD", "{}", "enqueue: payload, a JSON object")
	l.Int(&c.Count, "count", "ECHOPILOT_JOB_COUNT", 1, "enqueue: number of jobs")
	l.String(&c.IdempotencyKey, "idempotency-key", "ECHOPILOT_JOB_IDEMPOTENCY_KEY", "", "enqueue: key that makes a retried enqueue return the first job (with --count N, -1…-N are appended)")
	l.Int(&c.MaxAttempts, "max-attempts", "ECHOPILOT_JOB_MAX_ATTEMPTS", 0, "enqueue: attempts before the job is dead (0: the queue's default)")
	if err := l.Parse(args); err != nil {
		return Config{}, err
	}
	if l.FS.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments: %q", l.FS.Args())
	}
	switch c.Mode {
	case "worker", "enqueue", "status":
	default:
		return Config{}, fmt.Errorf("--mode %q: want worker, enqueue or status", c.Mode)
	}
	return c, nil
}

// defaultWorkerID is hostname-pid: unique per process, and says where a
// lease is held.
func defaultWorkerID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "edge"
	}
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}

func run(args []string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, stderr)
	if errors.Is(err, flag.ErrHelp) || errors.Is(err, config.ErrPrinted) {
		return nil
	}
	if err != nil {
		return err
	}
	log, err := newLogger(cfg.LogLevel, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	// Decided before anything is dialed: a refusal sends nothing.
	transport, secure, err := transportFor(cfg, cfg.QueueAddr)
	if err != nil {
		return err
	}
	var ftransport credentials.TransportCredentials
	if cfg.FinopsAddr != "" {
		var fsecure bool
		if ftransport, fsecure, err = transportFor(cfg, cfg.FinopsAddr); err != nil {
			return err
		}
		secure = secure && fsecure
	}
	creds, err := newCredentials(cfg)
	if err != nil {
		return err
	}
	creds.secure = secure
	conn, err := grpc.NewClient(cfg.QueueAddr, grpc.WithTransportCredentials(transport), grpc.WithPerRPCCredentials(creds))
	if err != nil {
		return fmt.Errorf("dial queue %s: %w", cfg.QueueAddr, err)
	}
	defer conn.Close()
	var finops finopsv1.FinOpsServiceClient
	if cfg.FinopsAddr != "" {
		// The same credentials: report_gen reads the finops figures of the
		// worker's own tenant.
		fconn, err := grpc.NewClient(cfg.FinopsAddr, grpc.WithTransportCredentials(ftransport), grpc.WithPerRPCCredentials(creds))
		if err != nil {
			return fmt.Errorf("dial finops %s: %w", cfg.FinopsAddr, err)
		}
		defer fconn.Close()
		finops = finopsv1.NewFinOpsServiceClient(fconn)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	queue := queuev1.NewQueueServiceClient(conn)
	if cfg.Mode == "worker" {
		refreshCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		go creds.keepFresh(refreshCtx, queue, log)
	}
	return execute(ctx, cfg, queue, finops, stdout, log)
}

// execute runs the chosen mode against queue (and finops for report_gen,
// when it is not nil).
func execute(ctx context.Context, cfg Config, queue queuev1.QueueServiceClient, finops finopsv1.FinOpsServiceClient, stdout io.Writer, log *zap.Logger) error {
	switch cfg.Mode {
	case "enqueue":
		return enqueue(ctx, cfg, queue, stdout)
	case "status":
		return printStatus(ctx, queue, stdout)
	}
	handlers, err := newHandlers(cfg, queue, finops)
	if err != nil {
		return err
	}
	w, err := worker.New(queue, handlers, worker.Config{
		WorkerID:      cfg.WorkerID,
		Types:         config.List(cfg.Types),
		Concurrency:   cfg.Concurrency,
		Lease:         cfg.Lease,
		Batch:         cfg.Batch,
		Wait:          cfg.Wait,
		MaxJobs:       cfg.MaxJobs,
		ShutdownGrace: cfg.ShutdownGrace,
		Out:           stdout,
		Log:           log,
	})
	if err != nil {
		return err
	}
	_, err = w.Run(ctx)
	return err
}

// newHandlers builds the handler of every job type edge-worker knows;
// without a finops client, reports have no finops section.
func newHandlers(cfg Config, queue queuev1.QueueServiceClient, finops finopsv1.FinOpsServiceClient) (map[string]worker.Handler, error) {
	var source worker.FinopsSource
	if finops != nil {
		source = worker.NewFinopsClient(finops)
	}
	allow, err := netguard.ParseAllowList(cfg.OutboundAllow)
	if err != nil {
		return nil, err
	}
	dataSync, err := worker.NewDataSync(worker.DataSyncConfig{
		URL:             cfg.DataSyncURL,
		AllowedPrefixes: config.List(cfg.DataSyncAllowedPrefixes),
		Outbound:        allow,
		Secret:          []byte(cfg.DataSyncSecret),
		Timeout:         cfg.DataSyncTimeout,
	})
	if err != nil {
		return nil, err
	}
	return map[string]worker.Handler{
		"ai_task": worker.NewAITask(worker.AIConfig{
			BaseURL: cfg.AIBaseURL, Model: cfg.AIModel, APIKey: cfg.AIAPIKey, Timeout: cfg.AITimeout,
		}),
		"report_gen": worker.NewReportGen(queue, source),
		"data_sync":  dataSync,
	}, nil
}

// newLogger returns a JSON logger on stderr at level, or none for "off":
// stdout carries the progress lines only.
func newLogger(level string, stderr io.Writer) (*zap.Logger, error) {
	if level == "off" || level == "" {
		return zap.NewNop(), nil
	}
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	core := zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(stderr)), lvl)
	return zap.New(core).With(zap.String("service", "edge-worker")), nil
}
