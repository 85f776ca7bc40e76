package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/tlsconfig"
)

// reasonLeaseLost is the queue's fencing refusal (domain.ReasonLeaseLost,
// which e2e cannot import: it is internal to the queue module).
const reasonLeaseLost = "LEASE_LOST"

// A worker behind a flaky link, over TLS end to end through a TCP proxy
// that drops its connections. A brief cut (shorter than the lease): the
// worker reconnects, its heartbeats renew the lease and it completes the
// job. A long cut (longer than the lease): the job expires and another
// worker leases it; the first worker's late heartbeat and completion, sent
// while the second holds the lease, and its failure report after the second
// completed, are refused by the fencing token, and the job keeps the second
// worker's result.
func TestFlakyLinkLeases(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		s := startOn(t, "optional", backend)
		ai := newGateAI(t)
		proxy := startFlakyProxy(t, s.GRPCAddrs["queue"])
		user := s.token(t, "acme", "user")
		t.Run("brief cut", func(t *testing.T) { flakyBriefCut(t, s, ai, proxy, user) })
		t.Run("long cut", func(t *testing.T) { flakyLongCut(t, s, ai, proxy, user) })
		st := s.status(t, user)
		if st["total_jobs"] != 2.0 || st["completed"] != 2.0 || st["processing"] != 0.0 || st["queued"] != 0.0 {
			t.Fatalf("status at the end = %v, want both jobs completed", st)
		}
		// One AI call per delivery that ran the handler: A's in the brief
		// cut, B's in the long one (A there is a test client).
		if n := ai.calls.Load(); n != 2 {
			t.Fatalf("AI endpoint called %d times, want 2", n)
		}
	})
}

// flakyBriefCut: the real edge-worker binary, through the proxy, holds a
// job (its AI call waits on the test); the proxy drops its connection and
// refuses new ones until the worker has tried to reconnect, which is well
// within the lease. Only a heartbeat after the outage can move the lease's
// expiry, so seeing it move proves renewals resumed; then the job is
// released and the worker completes it on its first and only attempt.
func flakyBriefCut(t *testing.T, s *suite, ai *gateAI, proxy *flakyProxy, user string) {
	const lease = 9 * time.Second // heartbeats every 3 s
	gate := ai.hold("brief")
	jobID := enqueueAI(t, s, user, "brief")
	argv, env := s.workerArgs(t, "acme", ai.Server, "--max-jobs=1", "--worker-id=flaky-a", "--wait=5s",
		fmt.Sprintf("--lease=%s", lease), "--log-level=warn")
	argv = append(argv, "--queue-addr="+proxy.Addr()) // the later flag wins
	a := startWorkerProc(t, "A", argv, env)
	a.await(t, gate.started, 20*time.Second, "worker A's AI call")
	if job := s.job(t, user, jobID); job["status"] != "processing" || job["worker_id"] != "flaky-a" {
		t.Fatalf("job before the cut = %v", job)
	}

	cutAt := time.Now()
	if n := proxy.Cut(); n == 0 {
		t.Fatal("the cut dropped no connection: worker A is not connected through the proxy")
	}
	// Keep the link down until the worker has tried to come back (a
	// heartbeat or a reconnect refused by the proxy).
	waitFor(t, lease/2, "worker A to try the cut link", func() bool { return proxy.refused.Load() > 0 })
	before := leaseExpiry(t, s.job(t, user, jobID))
	proxy.Restore()
	if d := time.Since(cutAt); d >= lease/2 {
		t.Fatalf("the brief cut lasted %v: not brief against a %v lease", d, lease)
	} else {
		t.Logf("brief cut: %v, %d connection attempts refused", d.Round(time.Millisecond), proxy.refused.Load())
	}

	waitFor(t, lease, "a lease renewal after the outage", func() bool {
		job := s.job(t, user, jobID)
		if job["status"] != "processing" {
			t.Fatalf("job after the brief cut = %v, want it still processing by flaky-a", job)
		}
		return leaseExpiry(t, job).After(before)
	})
	if proxy.accepted.Load() < 2 {
		t.Fatalf("proxy forwarded %d connections, want worker A to have reconnected", proxy.accepted.Load())
	}
	close(gate.release)
	text := a.wait(t, 20*time.Second)
	t.Logf("worker A output:\n%s", text)
	if !strings.Contains(text, "✓ Completed: ") || !strings.Contains(text, "Processed 1 jobs.") {
		t.Fatalf("worker A output:\n%s", text)
	}
	job := s.job(t, user, jobID)
	if job["status"] != "completed" || job["attempts"] != 1.0 || job["last_error"] != nil && job["last_error"] != "" {
		t.Fatalf("job after the brief cut = %s, want completed on attempt 1", mustJSON(t, job))
	}
}

// flakyLongCut: worker A is a gRPC client of the test, speaking TLS with a
// worker token through the proxy as the edge worker would (lease,
// heartbeat, complete). The real binary cannot play A here: once a lease
// has gone unrenewed for its length, edge-worker stops the job and sends
// nothing more (it fences itself), so only a client that does send the late
// calls can show the queue refusing them. Worker B is the real binary,
// connected directly.
func flakyLongCut(t *testing.T, s *suite, ai *gateAI, proxy *flakyProxy, user string) {
	const leaseSeconds = 2
	jobID := enqueueAI(t, s, user, "long")
	a := s.dialWorker(t, proxy.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, identity.MDAuthorization, "Bearer "+s.token(t, "acme", "worker"))

	res, err := a.LeaseJobs(ctx, &queuev1.LeaseJobsRequest{
		WorkerId: "flaky-a2", Types: []string{"ai_task"}, MaxJobs: 1, LeaseSeconds: leaseSeconds, WaitMs: 5000,
	})
	if err != nil || len(res.GetLeases()) != 1 || res.GetLeases()[0].GetJob().GetJobId() != jobID {
		t.Fatalf("A's lease = %v, %v; want job %s", res, err, jobID)
	}
	l := res.GetLeases()[0]
	heartbeat := func(ctx context.Context, opts ...grpc.CallOption) error {
		_, err := a.Heartbeat(ctx, &queuev1.HeartbeatRequest{
			JobId: jobID, WorkerId: "flaky-a2", LeaseToken: l.GetLeaseToken(), LeaseSeconds: leaseSeconds,
		}, opts...)
		return err
	}
	if err := heartbeat(ctx); err != nil {
		t.Fatalf("A's heartbeat through the proxy: %v", err)
	}

	cutAt := time.Now()
	if n := proxy.Cut(); n == 0 {
		t.Fatal("the cut dropped no connection: worker A is not connected through the proxy")
	}
	hctx, hcancel := context.WithTimeout(ctx, 2*time.Second)
	err = heartbeat(hctx)
	hcancel()
	if c := status.Code(err); c != codes.Unavailable && c != codes.DeadlineExceeded {
		t.Fatalf("A's heartbeat over the cut link: %v, want UNAVAILABLE or DEADLINE_EXCEEDED", err)
	}

	// B long-polls directly; it gets the job only once A's lease expired.
	// It uses A's worker id (a worker restarted under a fixed
	// --worker-id), so that only the lease token tells A's calls from B's.
	gate := ai.hold("long")
	argv, env := s.workerArgs(t, "acme", ai.Server, "--max-jobs=1", "--worker-id=flaky-a2", "--wait=30s")
	b := startWorkerProc(t, "B", argv, env)
	b.await(t, gate.started, 20*time.Second, "worker B's AI call")
	if d := time.Since(cutAt); d <= leaseSeconds*time.Second {
		t.Fatalf("B took the job %v after the cut, within A's %d s lease", d, leaseSeconds)
	}
	if job := s.job(t, user, jobID); job["status"] != "processing" || job["attempts"] != 2.0 {
		t.Fatalf("job leased to B = %v, want processing on attempt 2", job)
	}
	proxy.Restore()

	// A is back while B holds the lease: its calls reach the queue (they
	// wait for the reconnect) and are refused by the fencing token.
	late := func(what string, call func(context.Context) error) {
		t.Helper()
		cctx, ccancel := context.WithTimeout(ctx, 15*time.Second)
		defer ccancel()
		err := call(cctx)
		if status.Code(err) != codes.FailedPrecondition || apierr.Reason(err) != reasonLeaseLost {
			t.Errorf("A's late %s: %v, want FAILED_PRECONDITION %s", what, err, reasonLeaseLost)
		}
	}
	late("heartbeat", func(ctx context.Context) error { return heartbeat(ctx, grpc.WaitForReady(true)) })
	lateResult, _ := structpb.NewStruct(map[string]any{"answer": "late from A"})
	late("completion", func(ctx context.Context) error {
		_, err := a.CompleteJob(ctx, &queuev1.CompleteJobRequest{
			JobId: jobID, WorkerId: "flaky-a2", LeaseToken: l.GetLeaseToken(), Result: lateResult,
		}, grpc.WaitForReady(true))
		return err
	})

	// B finishes undisturbed; A's failure report, later still, changes
	// nothing either.
	close(gate.release)
	if text := b.wait(t, 20*time.Second); !strings.Contains(text, "✓ Completed: ") || !strings.Contains(text, "Processed 1 jobs.") {
		t.Fatalf("worker B output:\n%s", text)
	}
	late("failure", func(ctx context.Context) error {
		_, err := a.FailJob(ctx, &queuev1.FailJobRequest{
			JobId: jobID, WorkerId: "flaky-a2", LeaseToken: l.GetLeaseToken(), Error: "late", Retryable: true,
		}, grpc.WaitForReady(true))
		return err
	})

	job := s.job(t, user, jobID)
	if job["status"] != "completed" || job["attempts"] != 2.0 || job["last_error"] != "lease expired" ||
		dig(job, "result", "answer") != gateAIAnswer {
		t.Fatalf("job after the long cut = %s, want B's result on attempt 2", mustJSON(t, job))
	}
	if code, body := s.call(t, "GET", "/api/queue/jobs?status=completed", user, nil, ""); code != http.StatusOK {
		t.Fatalf("completed jobs = %d %v", code, body)
	} else if n := countJob(body, jobID); n != 1 {
		t.Fatalf("job %s listed %d times among completed jobs, want once: %v", jobID, n, body)
	}
}

func enqueueAI(t *testing.T, s *suite, token, prompt string) string {
	t.Helper()
	code, body := s.call(t, "POST", "/api/queue/enqueue", token, nil, fmt.Sprintf(`{"type":"ai_task","payload":{"prompt":%q}}`, prompt))
	id, _ := body["job_id"].(string)
	if code != http.StatusOK || id == "" {
		t.Fatalf("enqueue = %d %v", code, body)
	}
	return id
}

// job reads a job through the gateway.
func (s *suite) job(t *testing.T, token, id string) map[string]any {
	t.Helper()
	code, body := s.call(t, "GET", "/api/queue/jobs/"+id, token, nil, "")
	job, _ := body["job"].(map[string]any)
	if code != http.StatusOK || job == nil {
		t.Fatalf("job %s = %d %v", id, code, body)
	}
	return job
}

func leaseExpiry(t *testing.T, job map[string]any) time.Time {
	t.Helper()
	raw, _ := job["lease_expire_time"].(string)
	at, err := time.Parse(time.RFC3339Nano, raw)
	if err != nil {
		t.Fatalf("job's lease_expire_time %q: %v", raw, err)
	}
	return at
}

func countJob(body map[string]any, id string) int {
	n := 0
	jobs, _ := body["jobs"].([]any)
	for _, j := range jobs {
		if m, _ := j.(map[string]any); m["job_id"] == id {
			n++
		}
	}
	return n
}

// dialWorker connects to the queue at addr as an edge worker does: TLS
// verified against the stack's CA, no client certificate (the token is the
// worker's identity). Reconnects are quick so that the test does not wait
// out gRPC's default backoff after the link comes back.
func (s *suite) dialWorker(t *testing.T, addr string) queuev1.QueueServiceClient {
	t.Helper()
	var creds credentials.TransportCredentials = insecure.NewCredentials()
	if s.TLS != nil {
		r, err := tlsconfig.New(tlsconfig.Files{CAFile: s.TLS.CAFile}, tlsconfig.Options{})
		if err != nil {
			t.Fatal(err)
		}
		creds = r.ClientCredentials()
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds), grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 500 * time.Millisecond},
		MinConnectTimeout: 2 * time.Second,
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return queuev1.NewQueueServiceClient(conn)
}

// gateAIAnswer is the gate AI endpoint's answer.
const gateAIAnswer = "bonjour"

// gateAI is an AI endpoint that holds the calls of chosen prompts until the
// test releases them; other calls answer at once.
type gateAI struct {
	*httptest.Server
	calls atomic.Int32
	mu    sync.Mutex
	gates map[string]*aiGate
}

// aiGate holds one prompt's call: started is closed when it arrives, and
// closing release lets it answer.
type aiGate struct {
	started, release chan struct{}
	once             sync.Once
}

func newGateAI(t *testing.T) *gateAI {
	t.Helper()
	a := &gateAI{gates: map[string]*aiGate{}}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Model    string `json:"model"`
			Messages []struct {
				Content string `json:"content"`
			} `json:"messages"`
		}
		if r.URL.Path != "/chat/completions" || json.NewDecoder(r.Body).Decode(&req) != nil || len(req.Messages) == 0 {
			http.NotFound(w, r)
			return
		}
		a.calls.Add(1)
		a.mu.Lock()
		g := a.gates[req.Messages[len(req.Messages)-1].Content]
		a.mu.Unlock()
		if g != nil {
			g.once.Do(func() { close(g.started) })
			select {
			case <-g.release:
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"c1","object":"chat.completion","model":%q,
			"choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}],
			"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}`, req.Model, gateAIAnswer)
	}))
	// Close waits for held calls: cut them loose first.
	t.Cleanup(func() { a.CloseClientConnections(); a.Close() })
	return a
}

// hold makes calls with prompt wait until the gate's release is closed.
func (a *gateAI) hold(prompt string) *aiGate {
	g := &aiGate{started: make(chan struct{}), release: make(chan struct{})}
	a.mu.Lock()
	a.gates[prompt] = g
	a.mu.Unlock()
	return g
}

// workerProc is an edge-worker process started by a test.
type workerProc struct {
	name    string
	out     *lockedWriter
	exited  chan struct{}
	waitErr error
}

// startWorkerProc starts the edge-worker binary with argv and env (added to
// this process's environment); it is killed at the end of the test if still
// running.
func startWorkerProc(t *testing.T, name string, argv, env []string) *workerProc {
	t.Helper()
	p := &workerProc{name: name, out: &lockedWriter{b: &strings.Builder{}}, exited: make(chan struct{})}
	cmd := exec.Command(filepath.Join(binDir, "edge-worker"), argv...)
	cmd.Env = append(cmd.Environ(), env...)
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.waitErr = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("worker %s output:\n%s", name, p.out.String())
		}
	})
	return p
}

// await waits for ch to close, failing if the worker exits first.
func (p *workerProc) await(t *testing.T, ch <-chan struct{}, limit time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-p.exited:
		t.Fatalf("worker %s exited before %s: %v", p.name, what, p.waitErr)
	case <-time.After(limit):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// wait waits for the worker to exit successfully and returns its output.
func (p *workerProc) wait(t *testing.T, limit time.Duration) string {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(limit):
		t.Fatalf("timed out waiting for worker %s to finish", p.name)
	}
	if p.waitErr != nil {
		t.Fatalf("worker %s: %v\n%s", p.name, p.waitErr, p.out.String())
	}
	return p.out.String()
}

// flakyProxy passes TCP through to a target (TLS stays end to end between
// client and target) and can cut the link: Cut closes every connection and
// refuses new ones (accepted, then closed at once) until Restore.
type flakyProxy struct {
	ln       net.Listener
	target   string
	accepted atomic.Int32 // connections forwarded
	refused  atomic.Int32 // connections closed at once during a cut

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startFlakyProxy(t *testing.T, target string) *flakyProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &flakyProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		_ = ln.Close()
		p.Cut()
		p.wg.Wait()
	})
	return p
}

func (p *flakyProxy) Addr() string { return p.ln.Addr().String() }

// Cut drops every connection and refuses new ones; it returns how many
// connections it dropped.
func (p *flakyProxy) Cut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	n := 0
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
		n++
	}
	return n / 2 // each link is a client and an upstream connection
}

// Restore accepts connections again.
func (p *flakyProxy) Restore() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

// track registers conns unless the link is cut, in which case it closes them.
func (p *flakyProxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		for _, c := range conns {
			_ = c.Close()
		}
		return false
	}
	for _, c := range conns {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *flakyProxy) untrack(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
		delete(p.conns, c)
	}
}

func (p *flakyProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.forward(c)
		}()
	}
}

func (p *flakyProxy) forward(c net.Conn) {
	p.mu.Lock()
	cut := p.cut
	p.mu.Unlock()
	if cut {
		p.refused.Add(1)
		_ = c.Close()
		return
	}
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		_ = c.Close()
		return
	}
	if !p.track(c, up) {
		p.refused.Add(1)
		return
	}
	p.accepted.Add(1)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done // either side gone: drop the link
	p.untrack(c, up)
	<-done
}
