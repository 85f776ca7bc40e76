package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"

	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/services/queue/app"
)

func TestParseConfig(t *testing.T) {
	t.Setenv("ECHOPILOT_QUEUE_ADDR", "queue.internal:9104")
	t.Setenv("ECHOPILOT_WORKER_CONCURRENCY", "4")
	cfg, err := parseConfig([]string{"--max-jobs=2", "--worker-id=test_worker", "--concurrency=3"}, io.Discard)
	if err != nil {
		t.Fatalf("parseConfig: %v", err)
	}
	if cfg.Mode != "worker" || cfg.QueueAddr != "queue.internal:9104" || cfg.MaxJobs != 2 ||
		cfg.WorkerID != "test_worker" || cfg.Concurrency != 3 || cfg.Lease != 30*time.Second ||
		cfg.Wait != 10*time.Second || cfg.ShutdownGrace != 25*time.Second || cfg.Tenant != "default" {
		t.Errorf("config = %+v", cfg)
	}

	for name, args := range map[string][]string{
		"bad mode":   {"--mode=serve"},
		"stray args": {"extra"},
		"bad flag":   {"--max-jobs=many"},
	} {
		if _, err := parseConfig(args, io.Discard); err == nil {
			t.Errorf("%s: parseConfig(%q) succeeded", name, args)
		}
	}
	t.Setenv("ECHOPILOT_WORKER_MAX_JOBS", "lots")
	if _, err := parseConfig(nil, io.Discard); err == nil || !strings.Contains(err.Error(), "ECHOPILOT_WORKER_MAX_JOBS") {
		t.Errorf("malformed env: err = %v, want it named", err)
	}
}

func TestDefaultWorkerID(t *testing.T) {
	if !regexp.MustCompile(`^.+-\d+$`).MatchString(defaultWorkerID()) {
		t.Errorf("default worker id %q is not hostname-pid", defaultWorkerID())
	}
}

func TestMintedTokenIsAWorkerToken(t *testing.T) {
	cfg := Config{Mode: "worker", Secret: servicetest.Secret, Tenant: "acme", WorkerID: "edge-1"}
	b, err := newCredentials(cfg)
	if err != nil {
		t.Fatalf("newCredentials: %v", err)
	}
	md, err := b.GetRequestMetadata(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	raw, ok := strings.CutPrefix(md[identity.MDAuthorization], "Bearer ")
	if !ok {
		t.Fatalf("metadata %v has no bearer token", md)
	}
	v, err := identity.NewVerifier(identity.VerifierConfig{HS256Secret: []byte(servicetest.Secret)})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	p, err := v.Verify(context.Background(), raw)
	if err != nil {
		t.Fatalf("minted token does not verify: %v", err)
	}
	if p.Tenant != "acme" || !slices.Equal(p.Roles, []string{"worker"}) || p.Subject != "edge-worker:edge-1" {
		t.Errorf("principal = %+v", p)
	}

	// Reused while fresh (svcauth renews it before it expires).
	if again, _ := b.token(context.Background()); again != raw {
		t.Error("a fresh token was not reused")
	}
}

func TestCredentialChoices(t *testing.T) {
	b, err := newCredentials(Config{Mode: "worker", Token: "given", Secret: servicetest.Secret, Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if md, _ := b.GetRequestMetadata(context.Background()); md[identity.MDAuthorization] != "Bearer given" || len(md) != 1 {
		t.Errorf("with --token: metadata %v", md)
	}
	if _, err := newCredentials(Config{Mode: "worker", Tenant: "acme"}); err == nil {
		t.Error("worker mode without token or secret was accepted")
	}
	if _, err := newCredentials(Config{Mode: "worker", Secret: "too short", Tenant: "acme"}); err == nil {
		t.Error("a short secret was accepted")
	}
	// Without credentials, enqueue and status act for --tenant, which a
	// queue in auth=optional mode accepts unverified.
	b, err = newCredentials(Config{Mode: "status", Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if md, _ := b.GetRequestMetadata(context.Background()); md[identity.MDTenant] != "acme" || md[identity.MDAuthorization] != "" {
		t.Errorf("anonymous: metadata %v", md)
	}
}

func TestLoggerStaysOffStdout(t *testing.T) {
	var stderr bytes.Buffer
	off, err := newLogger("off", &stderr)
	if err != nil {
		t.Fatal(err)
	}
	off.Error("hidden")
	debug, err := newLogger("debug", &stderr)
	if err != nil {
		t.Fatal(err)
	}
	debug.Debug("shown", zap.String("job_id", "j1"))
	var line map[string]any
	if err := json.Unmarshal(stderr.Bytes(), &line); err != nil || line["msg"] != "shown" || line["job_id"] != "j1" {
		t.Errorf("stderr = %q (%v), want one JSON debug line", stderr.String(), err)
	}
	if _, err := newLogger("loud", &stderr); err == nil {
		t.Error("an unknown level was accepted")
	}
}

// credsConn sends edge-worker's own per-call credentials over a test
// connection (grpc.WithPerRPCCredentials does that on a real one).
type credsConn struct {
	*grpc.ClientConn
	creds *bearer
}

func (c credsConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	return c.ClientConn.Invoke(ctx, method, args, reply, append(opts, grpc.PerRPCCredentials(c.creds))...)
}

// cli runs edge-worker's modes against an in-process queue, as the binary
// would with args.
type cli struct {
	t    *testing.T
	conn *grpc.ClientConn
}

func (c cli) run(args ...string) (string, error) {
	c.t.Helper()
	cfg, err := parseConfig(args, io.Discard)
	if err != nil {
		c.t.Fatalf("parseConfig(%q): %v", args, err)
	}
	creds, err := newCredentials(cfg)
	if err != nil {
		c.t.Fatalf("newCredentials: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	err = execute(ctx, cfg, queuev1.NewQueueServiceClient(credsConn{c.conn, creds}), nil, &out, zap.NewNop())
	return out.String(), err
}

// The seed's gate through the command: enqueue 2 → status 2 queued →
// worker --max-jobs=2 → status 2 completed, 0 queued.
func TestCommandGate(t *testing.T) {
	conn := servicetest.Start(t, app.Spec(), servicetest.Options{AuthMode: "required"})
	ai := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"model":"m","choices":[{"message":{"content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}`)
	}))
	defer ai.Close()
	t.Setenv("ECHOPILOT_JWT_HS256_SECRET", servicetest.Secret)
	t.Setenv("ECHOPILOT_TENANT", "acme")
	t.Setenv("ECHOPILOT_AI_BASE_URL", ai.URL)
	t.Setenv("ECHOPILOT_AI_MODEL", "m")
	c := cli{t, conn}

	out, err := c.run("--mode=enqueue", "--type=ai_task", `--payload={"prompt":"hi"}`, "--count=2", "--idempotency-key=gate")
	if err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	var ids []string
	for line := range strings.Lines(out) {
		var r enqueueResult
		if err := json.Unmarshal([]byte(line), &r); err != nil || !r.OK || r.Status != "queued" || r.Duplicate {
			t.Fatalf("enqueue line %q: %+v %v", line, r, err)
		}
		ids = append(ids, r.JobID)
	}
	if len(ids) != 2 {
		t.Fatalf("enqueue printed %d jobs, want 2:\n%s", len(ids), out)
	}
	// The same keys again: the same jobs, as duplicates.
	again, err := c.run("--mode=enqueue", "--type=ai_task", `--payload={"prompt":"hi"}`, "--count=2", "--idempotency-key=gate")
	if err != nil || strings.Count(again, `"duplicate":true`) != 2 || !strings.Contains(again, ids[0]) || !strings.Contains(again, ids[1]) {
		t.Fatalf("enqueue again: %v\n%s", err, again)
	}

	status := func() map[string]any {
		out, err := c.run("--mode=status")
		if err != nil {
			t.Fatalf("status: %v", err)
		}
		var st map[string]any
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status output %q: %v", out, err)
		}
		return st
	}
	if st := status(); st["ok"] != true || st["total_jobs"] != 2.0 || st["queued"] != 2.0 || st["completed"] != 0.0 {
		t.Errorf("status before = %v", st)
	}

	out, err = c.run("--max-jobs=2", "--worker-id=test_worker", "--wait=1s")
	if err != nil {
		t.Fatalf("worker: %v", err)
	}
	want := fmt.Sprintf("Starting edge worker: test_worker\n"+
		"  Processing job %[1]s (ai_task)...\n    ✓ Completed: %[1]s\n"+
		"  Processing job %[2]s (ai_task)...\n    ✓ Completed: %[2]s\n"+
		"Worker stopped. Processed 2 jobs.\n", ids[0][len(ids[0])-8:], ids[1][len(ids[1])-8:])
	if out != want {
		t.Errorf("worker output:\n%s\nwant:\n%s", out, want)
	}

	st := status()
	byType, _ := st["by_type"].(map[string]any)
	if st["completed"] != 2.0 || st["queued"] != 0.0 || st["processing"] != 0.0 || st["failed"] != 0.0 || byType["ai_task"] != 2.0 {
		t.Errorf("status after = %v", st)
	}
	// The seed's key order, numbers not strings, the new fields after.
	raw, _ := c.run("--mode=status")
	if !regexp.MustCompile(`(?s)^\{\s*"ok": true,\s*"total_jobs": 2,\s*"queued": 0,\s*"processing": 0,\s*"completed": 2,\s*"failed": 0,\s*"by_type": \{\s*"ai_task": 2\s*\},\s*"dead": 0,\s*"cancelled": 0,\s*"by_priority": \{`).MatchString(raw) {
		t.Errorf("status JSON shape:\n%s", raw)
	}
}

func TestEnqueueRefusesBadInput(t *testing.T) {
	for name, args := range map[string][]string{
		"payload not json":    {"--mode=enqueue", "--payload=nope"},
		"payload not object":  {"--mode=enqueue", "--payload=[1]"},
		"payload null":        {"--mode=enqueue", "--payload=null"},
		"count zero":          {"--mode=enqueue", "--count=0"},
		"priority unknown":    {"--mode=enqueue", "--priority=urgent"},
		"priority proto name": {"--mode=enqueue", "--priority=PRIORITY_HIGH"},
		"priority zero value": {"--mode=enqueue", "--priority=unspecified"},
	} {
		cfg, err := parseConfig(args, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		// No queue at all: bad input must be refused before any call.
		if err := enqueue(context.Background(), cfg, nil, io.Discard); err == nil {
			t.Errorf("%s: enqueue accepted %q", name, args)
		}
	}
}

// A malformed outbound allow-list stops the worker, naming the entry.
func TestOutboundAllowIsChecked(t *testing.T) {
	t.Setenv("ECHOPILOT_OUTBOUND_ALLOW", "")
	cfg, err := parseConfig([]string{"--outbound-allow=127.0.0.1/32,10.0.0.1/8"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newHandlers(cfg, nil, nil); err == nil || !strings.Contains(err.Error(), `"10.0.0.1/8"`) {
		t.Fatalf("newHandlers = %v, want the bad entry named", err)
	}
}
