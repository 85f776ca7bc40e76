package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	audit "github.com/echopilot/echopilot/services/audit/app"
)

// logService is a real audit service (its own database) with a signing key
// file that another one may share: a second database restored from an
// older copy, or a fork, signs with the same key.
type logService struct {
	client auditv1.AuditServiceClient
	vkey   string
}

func startLog(t *testing.T, keyFile string) *logService {
	t.Helper()
	conn := servicetest.Start(t, audit.Spec(), servicetest.Options{Args: []string{"--signing-key-file=" + keyFile}})
	l := &logService{client: auditv1.NewAuditServiceClient(conn)}
	cp, err := l.client.GetCheckpoint(servicetest.As(t, tenant), &auditv1.GetCheckpointRequest{})
	if err != nil {
		t.Fatal(err)
	}
	l.vkey = cp.GetVerifierKey()
	return l
}

// add appends n entries to acme's log, one batch per call.
func (l *logService) add(t *testing.T, n int, tag string) {
	t.Helper()
	for i := range n {
		_, err := l.client.AppendEntries(servicetest.As(t, tenant), &auditv1.AppendEntriesRequest{
			Entries: []*auditv1.NewEntry{{EventType: "doc.update", User: tag, Resource: strconv.Itoa(i)}},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// restGateway serves the two REST paths the monitor reads, as the gateway
// does (Authorization and X-Tenant-ID forwarded, snake_case JSON), from
// whichever log service is current.
type restGateway struct {
	*httptest.Server
	current atomic.Pointer[logService]
	token   string
}

func newRESTGateway(t *testing.T, l *logService) *restGateway {
	t.Helper()
	g := &restGateway{}
	g.current.Store(l)
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		md := metadata.MD{}
		if a := r.Header.Get("Authorization"); a != "" {
			md.Set(identity.MDAuthorization, a)
		}
		if tn := r.Header.Get("X-Tenant-ID"); tn != "" {
			md.Set(identity.MDTenant, tn)
		}
		ctx := metadata.NewOutgoingContext(r.Context(), md)
		c := g.current.Load().client
		var resp proto.Message
		var err error
		switch r.URL.Path {
		case "/api/audit/checkpoint":
			resp, err = c.GetCheckpoint(ctx, &auditv1.GetCheckpointRequest{})
		case "/api/audit/proofs/consistency":
			from, _ := strconv.ParseUint(r.URL.Query().Get("from_size"), 10, 64)
			to, _ := strconv.ParseUint(r.URL.Query().Get("to_size"), 10, 64)
			resp, err = c.GetConsistencyProof(ctx, &auditv1.GetConsistencyProofRequest{FromSize: from, ToSize: to})
		default:
			http.NotFound(w, r)
			return
		}
		if err != nil {
			http.Error(w, `{"ok":false,"message":`+strconv.Quote(err.Error())+`}`, http.StatusBadRequest)
			return
		}
		b, _ := protojson.MarshalOptions{UseProtoNames: true}.Marshal(resp)
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	}))
	t.Cleanup(g.Close)
	tok, err := identity.MintHS256([]byte(servicetest.Secret), identity.Claims{Subject: "auditor@acme", TenantID: tenant}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	g.token = tok
	return g
}

// alerts is a loopback receiver of the monitor's alert webhook.
type alerts struct {
	*httptest.Server
	mu  sync.Mutex
	got []map[string]any
}

func newAlerts(t *testing.T) *alerts {
	a := &alerts{}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(b, &m) != nil {
			t.Errorf("alert: %s %s %q", r.Method, r.Header.Get("Content-Type"), b)
		}
		a.mu.Lock()
		a.got = append(a.got, m)
		a.mu.Unlock()
	}))
	t.Cleanup(a.Close)
	return a
}

func (a *alerts) all() []map[string]any {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]map[string]any(nil), a.got...)
}

func (g *restGateway) once(t *testing.T, dir string, extra ...string) outcome {
	t.Helper()
	args := append([]string{"--follow", "--once", "--checkpoint-dir", dir, "--token", g.token}, extra...)
	return runCmd(t, nil, append(args, g.URL)...)
}

func keptSize(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, keptFile))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(string(b), "\n")[1]
}

// Across appends every round is consistent with the last, and the kept
// checkpoint follows the log.
func TestFollowAcrossAppends(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "key")
	a := startLog(t, keyFile)
	g := newRESTGateway(t, a)
	dir := filepath.Join(t.TempDir(), "state")
	key := "--key=" + a.vkey

	g.once(t, dir, key, "--tenant", tenant).want(t, exitValid, "OK: echopilot.audit/acme: first checkpoint, tree size 0")
	a.add(t, 2, "a")
	g.once(t, dir, key).want(t, exitValid, "tree size 2", "consistent with the kept 0")
	a.add(t, 3, "a")
	g.once(t, dir, key).want(t, exitValid, "tree size 5", "consistent with the kept 2")
	g.once(t, dir, key).want(t, exitValid, "tree size 5 unchanged")
	if s := keptSize(t, dir); s != "5" {
		t.Fatalf("kept size %s, want 5", s)
	}
	// The directory holds acme's log: another's is not a continuation.
	runCmd(t, nil, "--follow", "--once", "--checkpoint-dir", dir, key, "--tenant", "other", g.URL).
		want(t, exitInvalid, `INCONSISTENT: the checkpoint is of log "echopilot.audit/other", the one kept of "echopilot.audit/acme"`)
	// A gateway that fails: nothing checked (exit 2), nothing kept.
	runCmd(t, nil, "--follow", "--once", "--checkpoint-dir", dir, key, g.URL+"/nowhere").want(t, exitError)
	if s := keptSize(t, dir); s != "5" {
		t.Fatalf("kept size %s, want 5", s)
	}
}

// A log restored from an older copy, or forked, and signed with the same
// key: a smaller tree, another root at the kept size, or a larger tree that
// does not extend the kept one is reported, alerted, and exits 1; the kept
// checkpoint stays.
func TestFollowDetectsRollbackAndFork(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "key")
	a := startLog(t, keyFile)
	a.add(t, 5, "a")
	g := newRESTGateway(t, a)
	hook := newAlerts(t)
	dir := t.TempDir()
	args := []string{"--key=" + a.vkey, "--alert-webhook", hook.URL}
	g.once(t, dir, args...).want(t, exitValid, "tree size 5")

	restored := startLog(t, keyFile) // same key, its own database
	if restored.vkey != a.vkey {
		t.Fatal("the second service does not share the key")
	}
	g.current.Store(restored)
	restored.add(t, 3, "a")
	g.once(t, dir, args...).want(t, exitInvalid, "INCONSISTENT: the tree shrank from 5 to 3 entries")
	restored.add(t, 2, "b")
	g.once(t, dir, args...).want(t, exitInvalid, "INCONSISTENT: another root at tree size 5")
	restored.add(t, 2, "b")
	g.once(t, dir, args...).want(t, exitInvalid, "INCONSISTENT: tree 7 does not extend the kept tree 5")
	if s := keptSize(t, dir); s != "5" {
		t.Fatalf("kept size %s after inconsistencies, want 5", s)
	}

	got := hook.all()
	if len(got) != 3 {
		t.Fatalf("%d alerts, want 3: %v", len(got), got)
	}
	first := got[0]
	kept, _ := first["kept_checkpoint"].(map[string]any)
	received, _ := first["received_checkpoint"].(map[string]any)
	if first["alert"] != "audit_log_inconsistent" || first["tenant_id"] != tenant || first["gateway"] != g.URL ||
		!strings.Contains(fmt.Sprint(first["reason"]), "shrank") || fmt.Sprint(kept["size"]) != "5" || fmt.Sprint(received["size"]) != "3" ||
		!strings.HasPrefix(fmt.Sprint(first["received_note"]), "echopilot.audit/acme\n3\n") {
		t.Fatalf("alert: %v", first)
	}

	// Back on the genuine log, which went on: consistent again.
	a.add(t, 1, "a")
	g.current.Store(a)
	g.once(t, dir, args...).want(t, exitValid, "tree size 6", "consistent with the kept 5")
}

// A checkpoint signed by another key is reported as such, with or without
// a kept checkpoint; with --trust-on-first-use the key of the first round
// is pinned in the directory and holds the next rounds to it.
func TestFollowBadSignature(t *testing.T) {
	a := startLog(t, filepath.Join(t.TempDir(), "key"))
	a.add(t, 2, "a")
	other := startLog(t, filepath.Join(t.TempDir(), "other-key"))
	other.add(t, 2, "a")
	g := newRESTGateway(t, other)
	hook := newAlerts(t)

	dir := t.TempDir()
	g.once(t, dir, "--key="+a.vkey, "--alert-webhook", hook.URL).want(t, exitInvalid, "INCONSISTENT: the service's checkpoint does not verify")
	if _, err := os.Stat(filepath.Join(dir, keptFile)); !os.IsNotExist(err) {
		t.Fatalf("a checkpoint that does not verify was kept: %v", err)
	}
	if got := hook.all(); len(got) != 1 || got[0]["received_checkpoint"] != nil || got[0]["received_note"] == "" {
		t.Fatalf("alerts: %v", got)
	}

	tofu := t.TempDir()
	g.current.Store(a)
	g.once(t, tofu).want(t, exitError) // no key, no --trust-on-first-use
	g.once(t, tofu, "--trust-on-first-use").want(t, exitValid, "PINNED: verifier key "+a.vkey, "first checkpoint, tree size 2")
	g.current.Store(other)
	g.once(t, tofu, "--trust-on-first-use").want(t, exitInvalid, "does not verify")
}

func TestFollowUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--follow", "--key=k", "http://127.0.0.1:1"},                                  // no --checkpoint-dir
		{"--follow", "--key=k", "--checkpoint-dir", t.TempDir()},                       // no URL
		{"--follow", "--key=k", "--checkpoint-dir", t.TempDir(), "ftp://x"},            // not http
		{"--follow", "--key=k", "--checkpoint-dir", t.TempDir(), "--json", "http://x"}, // export flags
		{"--follow", "--key=k", "--checkpoint-dir", t.TempDir(), "--interval=0s", "http://x"},
		{"--follow", "--key=k", "--checkpoint-dir", t.TempDir(), "--alert-webhook=x", "http://x"},
	} {
		o := runCmd(t, nil, args...)
		if o.code != exitError || !strings.Contains(o.stderr, "-h for usage") {
			t.Errorf("%q: exit %d, %s", args, o.code, o.stderr)
		}
	}
}

// Without --once the monitor goes on every --interval until it finds an
// inconsistency.
func TestFollowLoop(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "key")
	a := startLog(t, keyFile)
	a.add(t, 3, "a")
	fork := startLog(t, keyFile)
	fork.add(t, 4, "b")
	g := newRESTGateway(t, a)
	go func() {
		time.Sleep(200 * time.Millisecond)
		g.current.Store(fork)
	}()
	o := runCmd(t, nil, "--follow", "--interval=20ms", "--checkpoint-dir", t.TempDir(), "--key="+a.vkey, "--token", g.token, g.URL)
	o.want(t, exitInvalid, "first checkpoint, tree size 3", "tree size 3 unchanged", "INCONSISTENT: tree 4 does not extend the kept tree 3")
}
