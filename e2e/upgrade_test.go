package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/echopilot/echopilot/platform/devstack"
	"github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/platform/store/storetest"
)

// outboxServices also apply platform/outbox's migrations to their database.
var outboxServices = map[string]bool{"tenancy": true, "audit": true, "queue": true}

// staticTargetFile holds service.StaticTarget: a binary built without it
// cannot dial a peer's replicas (static:///a,b), so it cannot run as a
// replica in a devstack. Earlier previous binaries run standalone beside
// the stack, on the same database, and are called directly.
const staticTargetFile = "platform/service/static.go"

// previousBinary is a service's build from the newest commit that did not
// know its latest migration.
type previousBinary struct {
	service, commit string
	missing         []string // migration files the commit lacks
	runnable        string   // why not, when it cannot run as a replica here
	// standalone: it cannot join the replica set, but runs on its own
	// against the new schema (previousStandalone).
	standalone bool
}

// A rolling upgrade: two replicas of each service on one PostgreSQL
// database per service, the first running this tree's binary (it starts
// first, so it migrates), the second the service's previous binary, built
// from the commit before its latest migration. The gateway and the peer
// services balance over both, and a mixed workload must succeed with
// consistent results: the latest migrations keep the previous binary
// working (expand/contract, docs/operations.md §6). A previous binary that
// predates static:/// targets cannot join the replica set: it runs
// standalone on the migrated database, and its RPCs must agree with what
// the new binary writes and reads (upgrade_standalone_test.go).
func TestUpgradeRolling(t *testing.T) {
	if os.Getenv(storetest.EnvPostgresURL) == "" {
		t.Skip(storetest.EnvPostgresURL + " not set: replicas share a PostgreSQL database, so the upgrade check runs only on PostgreSQL")
	}
	root := devstack.Abs("..")
	prev := previousBinaries(t, root)
	old := map[string]string{} // process name → previous binary
	var runnable, standalone []previousBinary
	for _, p := range prev {
		switch {
		case p.standalone:
			t.Logf("%s: previous binary %.12s (lacks %v) runs standalone: %s", p.service, p.commit, p.missing, p.runnable)
			standalone = append(standalone, p)
		case p.runnable != "":
			t.Logf("%s: previous binary (%.12s) not run: %s", p.service, p.commit, p.runnable)
		default:
			t.Logf("%s: replica 2 runs %.12s, which lacks %v", p.service, p.commit, p.missing)
			runnable = append(runnable, p)
		}
	}
	if len(runnable)+len(standalone) == 0 {
		t.Skip("no service has a previous binary to run (see the log): nothing to check")
	}
	bins := buildPrevious(t, root, append(slices.Clone(runnable), standalone...))
	for _, p := range runnable {
		old[devstack.ReplicaName(p.service, 1)] = bins[p.service]
	}

	databases := postgresDatabases(t)
	s := startStackBinaries(t, upgradeAuthMode, databases, 2, func(name string) string { return old[name] })
	for name := range old {
		if got := s.Replicas[strings.SplitN(name, "-", 2)[0]]; !slices.Contains(got, name) {
			t.Fatalf("%s is not a replica: %v", name, got)
		}
	}
	// Every previous binary started against the schema the new one migrated,
	// which stays at the newest version.
	for _, p := range runnable {
		want := latestVersion(t, root, p.service)
		if got := schemaVersion(t, s.ownerURL[p.service], p.service); got != want {
			t.Errorf("%s schema at version %d after the previous binary started, want %d", p.service, got, want)
		}
	}

	ai := newPickupAI(t)
	t.Run("queue", func(t *testing.T) { upgradeQueue(t, s, ai) })
	t.Run("audit", func(t *testing.T) { upgradeAudit(t, s) })
	t.Run("finops", func(t *testing.T) { upgradeFinops(t, s) })
	t.Run("growth", func(t *testing.T) { upgradeGrowth(t, s) })
	t.Run("tenancy", func(t *testing.T) { upgradeTenancy(t, s) })

	// Previous binaries that cannot join the replica set run standalone on
	// the databases the new binaries migrated, and are called directly.
	checks := map[string]func(*testing.T, *suite, *grpc.ClientConn){
		"tenancy": previousTenancy, "audit": previousAudit, "growth": previousGrowth,
	}
	for _, p := range standalone {
		t.Run("previous-"+p.service, func(t *testing.T) {
			check := checks[p.service]
			if why, ok := knownBreaking[migrationKey{p.service, latestVersion(t, root, p.service)}]; ok {
				// Pinned, not skipped: the day the previous binary works
				// on this schema, the entry must go.
				check = func(t *testing.T, s *suite, conn *grpc.ClientConn) { previousBreaks(t, s, conn, p.service, why) }
			}
			if check == nil {
				t.Fatalf("no standalone check for %s's previous binary: add one", p.service)
			}
			appURL, _ := databases(p.service)
			check(t, s, startPrevious(t, s, root, p, bins[p.service], appURL))
			want := latestVersion(t, root, p.service)
			if got := schemaVersion(t, s.ownerURL[p.service], p.service); got != want {
				t.Errorf("%s schema at version %d after the previous binary ran, want %d", p.service, got, want)
			}
		})
	}

	// The previous binaries took their share of the traffic and are still up.
	for name := range old {
		if s.Procs[name].Exited() {
			t.Errorf("previous binary %s exited", name)
		}
		if n := servedRPCs(s.MetricsAddrs[name]); n == 0 {
			t.Errorf("previous binary %s served no RPCs: the check did not exercise it", name)
		}
	}
}

// previousBinaries finds each service's previous commit: on the
// first-parent history (merges are releases), the parent of the commit
// that last changed its migrations; HEAD itself when the work tree changes
// them. It skips t without git or the full history.
func previousBinaries(t *testing.T, root string) []previousBinary {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not found: the upgrade check builds the previous commit's binaries")
	}
	if out, err := gitOut(root, "rev-parse", "--is-shallow-repository"); err != nil || out != "false" {
		t.Skipf("the upgrade check needs the repository's full history (git rev-parse --is-shallow-repository: %q, %v); fetch with --unshallow", out, err)
	}
	var prev []previousBinary
	for _, svc := range devstack.Services() {
		dir := "services/" + svc.Name + "/internal/store/migrations"
		paths := []string{dir}
		if outboxServices[svc.Name] {
			paths = append(paths, "platform/outbox/migrations")
		}
		p := previousBinary{service: svc.Name}
		dirty, err := gitOut(root, append([]string{"status", "--porcelain", "--"}, paths...)...)
		if err != nil {
			t.Fatal(err)
		}
		if dirty != "" {
			// Uncommitted migrations: HEAD is the code that does not know them.
			p.commit, err = gitOut(root, "rev-parse", "HEAD")
		} else {
			var last string
			if last, err = gitOut(root, append([]string{"log", "-1", "--first-parent", "--format=%H", "--"}, paths...)...); err == nil {
				p.commit, err = gitOut(root, "rev-parse", "--verify", "--quiet", last+"^1")
			}
		}
		if err != nil || p.commit == "" {
			t.Skipf("%s: no commit before its latest migration (%v): the history is incomplete", svc.Name, err)
		}
		for _, d := range paths {
			have, _ := gitOut(root, "ls-tree", "--name-only", p.commit+":"+d+"/postgres")
			files, _ := filepath.Glob(filepath.Join(root, d, "postgres", "*.sql"))
			for _, f := range files {
				if !slices.Contains(strings.Fields(have), filepath.Base(f)) {
					p.missing = append(p.missing, path.Join(path.Base(d), filepath.Base(f)))
				}
			}
		}
		if _, err := gitOut(root, "cat-file", "-e", p.commit+":services/"+svc.Name+"/cmd/"+svc.Name); err != nil {
			p.runnable = "the service did not exist yet: its first migration is its latest"
		} else if len(p.missing) == 0 {
			// The last change edited a migration instead of adding one: there
			// is no schema the previous binary does not know.
			p.runnable = "its latest migration change added no file"
		} else if _, err := gitOut(root, "cat-file", "-e", p.commit+":"+staticTargetFile); err != nil {
			p.runnable = "it predates static:/// replica targets (" + staticTargetFile + "), so it cannot join a replicated stack"
			p.standalone = true
		}
		prev = append(prev, p)
	}
	return prev
}

// buildPrevious builds the previous binaries of prev, once per commit,
// and returns each service's binary.
func buildPrevious(t *testing.T, root string, prev []previousBinary) map[string]string {
	t.Helper()
	pkgs := map[string][]string{} // commit → packages
	var commits []string
	for _, p := range prev {
		if pkgs[p.commit] == nil {
			commits = append(commits, p.commit)
		}
		pkgs[p.commit] = append(pkgs[p.commit], "./services/"+p.service+"/cmd/"+p.service)
	}
	dirs := map[string]string{}
	for _, c := range commits {
		dirs[c] = buildAt(t, root, c, pkgs[c])
	}
	bins := map[string]string{}
	for _, p := range prev {
		bins[p.service] = filepath.Join(dirs[p.commit], p.service)
	}
	return bins
}

// buildAt builds pkgs from commit in a temporary worktree, with that
// commit's go.work, and returns the directory of the binaries.
func buildAt(t *testing.T, root, commit string, pkgs []string) string {
	t.Helper()
	tmp := t.TempDir()
	src, bin := filepath.Join(tmp, "src"), filepath.Join(tmp, "bin")
	if out, err := gitOut(root, "worktree", "add", "--detach", src, commit); err != nil {
		t.Fatalf("git worktree add %.12s: %v\n%s", commit, err, out)
	}
	remove := func() {
		if _, err := os.Stat(src); err == nil {
			if out, err := gitOut(root, "worktree", "remove", "--force", src); err != nil {
				t.Errorf("git worktree remove %s: %v\n%s", src, err, out)
			}
		}
	}
	t.Cleanup(remove) // when the build fails
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", append([]string{"build", "-o", bin + string(os.PathSeparator)}, pkgs...)...)
	cmd.Dir = src
	// That commit's workspace, whatever GOWORK the test runs under.
	cmd.Env = append(os.Environ(), "GOWORK="+filepath.Join(src, "go.work"))
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %v at %.12s: %v\n%s", pkgs, commit, err, out)
	}
	t.Logf("built %v at %.12s in %v", pkgs, commit, time.Since(start).Round(time.Second))
	remove()
	return bin
}

func gitOut(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return strings.TrimSpace(stderr.String()), fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// latestVersion is the version of svc's newest PostgreSQL migration in the
// work tree: what the new binary migrates to.
func latestVersion(t *testing.T, root, svc string) int64 {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "services", svc, "internal/store/migrations/postgres/*.sql"))
	if err != nil || len(files) == 0 {
		t.Fatalf("%s migrations: %v", svc, err)
	}
	var latest int64
	for _, f := range files {
		v, err := strconv.ParseInt(strings.SplitN(filepath.Base(f), "_", 2)[0], 10, 64)
		if err != nil {
			t.Fatalf("migration %s: %v", f, err)
		}
		latest = max(latest, v)
	}
	return latest
}

// schemaVersion is the highest version recorded in svc's version table.
func schemaVersion(t *testing.T, ownerURL, svc string) int64 {
	t.Helper()
	db, err := store.Open(t.Context(), ownerURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int64
	if err := db.QueryRowContext(t.Context(), "SELECT max(version_id) FROM "+svc+"_schema_version").Scan(&v); err != nil {
		t.Fatalf("%s version: %v", svc, err)
	}
	return v
}

// upgradeQueue: jobs enqueued through both queue replicas, one worker on
// each: every job completed once, on its first lease.
func upgradeQueue(t *testing.T, s *suite, ai *pickupAI) {
	const tenant, n = "upq", 20
	s.startWorker(t, tenant, devstack.ReplicaName("queue", 0), "w-up1", ai)
	s.startWorker(t, tenant, devstack.ReplicaName("queue", 1), "w-up2", ai)
	user := s.token(t, tenant, "user")
	ids := make([]string, n)
	parallel(t, n, 4, func(i int) {
		code, body, err := s.try("POST", "/api/queue/enqueue", user, nil, fmt.Sprintf(`{"type":"ai_task","payload":{"prompt":"up-%d"}}`, i))
		if code != http.StatusOK {
			t.Errorf("enqueue %d = %d %v %v", i, code, body, err)
			return
		}
		ids[i] = body["job_id"].(string)
	})
	if t.Failed() {
		return
	}
	waitFor(t, 60*time.Second, "every job to complete", func() bool { return s.status(t, user)["completed"] == float64(n) })
	for i, id := range ids {
		code, body := s.call(t, "GET", "/api/queue/jobs/"+id, user, nil, "")
		job, _ := body["job"].(map[string]any)
		if code != http.StatusOK || job["status"] != "completed" || job["attempts"] != 1.0 {
			t.Errorf("job %d = %d %v", i, code, job)
		}
		if c := ai.callsOf(fmt.Sprintf("up-%d", i)); c != 1 {
			t.Errorf("job %d ran %d times", i, c)
		}
	}
	// The usage of every job reaches finops once, from either queue's relay.
	waitFor(t, 20*time.Second, "the queue's usage to reach finops", func() bool {
		_, sum := s.call(t, "GET", "/api/finops/summary?days=7", user, nil, "")
		got, _ := dig(sum, "costs", "ai", "job_count").(float64)
		return got >= n
	})
	_, sum := s.call(t, "GET", "/api/finops/summary?days=7", user, nil, "")
	if dig(sum, "costs", "ai", "job_count") != float64(n) || dig(sum, "costs", "ai", "input_tokens") != float64(1000*n) {
		t.Errorf("ai costs = %v", dig(sum, "costs", "ai"))
	}
}

// upgradeAudit: concurrent appends through both audit replicas make one
// valid chain holding each entry once.
func upgradeAudit(t *testing.T, s *suite) {
	const n = 20
	user := s.token(t, "upa", "user")
	parallel(t, n, 4, func(i int) {
		body := fmt.Sprintf(`{"entries":[{"event_type":"upgrade.test","user":"u@upa.test","action":"write","resource":"r-%d","severity":"low"}]}`, i)
		if code, out, err := s.try("POST", "/api/audit/entries", user, nil, body); code != http.StatusOK {
			t.Errorf("append %d = %d %v %v", i, code, out, err)
		}
	})
	code, body := s.call(t, "GET", "/api/audit/chain?limit=1000", user, nil, "")
	entries, _ := body["entries"].([]any)
	if code != http.StatusOK || body["total"] != float64(n) || len(entries) != n || dig(body, "verification", "valid") != true {
		t.Fatalf("chain = %d total %v, %d entries, verification %v", code, body["total"], len(entries), body["verification"])
	}
	seen := map[string]bool{}
	for i, e := range entries {
		e := e.(map[string]any)
		if e["seq"] != float64(i+1) || seen[e["resource"].(string)] {
			t.Fatalf("entry %d = %v", i, e)
		}
		seen[e["resource"].(string)] = true
	}
}

// upgradeFinops: Stripe payments, each sent twice at once, count once.
func upgradeFinops(t *testing.T, s *suite) {
	const payments = 6
	parallel(t, 2*payments, 4, func(i int) {
		ev := charge(fmt.Sprintf("evt_up_%d", i/2), 1000, "upf")
		if code, body, err := s.try("POST", "/api/finops/stripe/webhook", "", map[string]string{"Stripe-Signature": stripeSign(ev, time.Now())}, string(ev)); code != http.StatusOK {
			t.Errorf("webhook = %d %v %v", code, body, err)
		}
	})
	code, sum := s.call(t, "GET", "/api/finops/summary?days=7", s.token(t, "upf", "user"), nil, "")
	if code != http.StatusOK || dig(sum, "revenue", "total_revenue") != float64(payments*10) || dig(sum, "revenue", "payment_count") != float64(payments) {
		t.Errorf("summary = %d, revenue %v", code, sum["revenue"])
	}
}

// upgradeGrowth: a referral's signups and conversions, each event sent
// twice at once, count once.
func upgradeGrowth(t *testing.T, s *suite) {
	const signups = 5
	user := s.token(t, "upg", "user")
	code, body := s.call(t, "POST", "/api/growth/referral/create", user, nil, `{"referrer_id":"r1","campaign":"upgrade"}`)
	if code != http.StatusOK {
		t.Fatalf("referral = %d %v", code, body)
	}
	ref := body["referral_code"].(string)
	for _, format := range []string{
		`{"referral_code":%q,"type":"signup","event_id":"s-%d","customer_id":"c-%d"}`,
		`{"referral_code":%q,"type":"conversion","event_id":"c-%d","customer_id":"c-%d","revenue":100}`,
	} {
		parallel(t, 2*signups, 4, func(i int) {
			if code, body, err := s.try("POST", "/api/growth/referral/events", user, nil, fmt.Sprintf(format, ref, i/2, i/2)); code != http.StatusOK {
				t.Errorf("event = %d %v %v", code, body, err)
			}
		})
	}
	_, body = s.call(t, "GET", "/api/growth/referrals?days=7", user, nil, "")
	if body["total_signups"] != float64(signups) || body["total_conversions"] != float64(signups) || body["total_revenue"] != float64(100*signups) {
		t.Errorf("referrals = %v", body)
	}
}

// upgradeTenancy: a denial reported by a service reaches the tenant's
// stats, and consecutive reads (alternating replicas) agree.
func upgradeTenancy(t *testing.T, s *suite) {
	tok := s.token(t, "upt", "user")
	if code, body := s.call(t, "GET", "/api/finops/summary", tok, map[string]string{"X-Tenant-ID": "globex"}, ""); code != http.StatusForbidden {
		t.Fatalf("cross-tenant read = %d %v", code, body)
	}
	waitFor(t, 5*time.Second, "the denial in the tenant's stats", func() bool {
		_, body := s.call(t, "GET", "/api/tenant/info", tok, nil, "")
		return dig(body, "stats", "cross_tenant_denied") == 1.0
	})
	for range 4 {
		if code, body := s.call(t, "GET", "/api/tenant/info", tok, nil, ""); code != http.StatusOK || dig(body, "stats", "cross_tenant_denied") != 1.0 {
			t.Fatalf("tenant info = %d %v", code, body)
		}
	}
}
