package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/devstack"
	"github.com/echopilot/echopilot/platform/store"
)

// privatePostgres starts a PostgreSQL server of its own (the machine's
// binaries, a throwaway data directory, a free port), so a test may restart
// it without disturbing the server other tests share. It returns the
// superuser URL and a restart function.
func privatePostgres(t *testing.T) (string, func()) {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(bins) == 0 {
		t.Skip("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin): skipping the PostgreSQL restart test")
	}
	binDir := filepath.Dir(bins[len(bins)-1])
	// Directly under the temporary folder: t.TempDir's parent is private to
	// this user, and the server may have to run as another.
	parent, err := os.MkdirTemp("", "echopilot-pg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(parent) })
	dir := filepath.Join(parent, "data")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// The server refuses to run as root: run it as the postgres user then.
	as := func(name string, args ...string) *exec.Cmd {
		return exec.Command(filepath.Join(binDir, name), args...)
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skip("running as root without a postgres user: skipping the PostgreSQL restart test")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, d := range []string{parent, dir} {
			if err := os.Chown(d, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
		as = func(name string, args ...string) *exec.Cmd {
			return exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(binDir, name)}, args...)...)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	run := func(c *exec.Cmd) {
		t.Helper()
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", c.Args, err, out)
		}
	}
	run(as("initdb", "-D", dir, "-A", "trust", "-U", "postgres", "--no-sync"))
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", port, parent)
	logFile := filepath.Join(parent, "log")
	run(as("pg_ctl", "-D", dir, "-o", opts, "-l", logFile, "-w", "start"))
	t.Cleanup(func() { _ = as("pg_ctl", "-D", dir, "-m", "immediate", "-w", "stop").Run() })
	restart := func() { run(as("pg_ctl", "-D", dir, "-o", opts, "-l", logFile, "-m", "fast", "-w", "restart")) }
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port), restart
}

// PostgreSQL restarts under traffic: calls fail meanwhile with 503 and a
// reason (never a hang or a 500), the services reconnect by themselves,
// and no acknowledged write is lost.
func TestPostgresRestartDuringTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	adminURL, restart := privatePostgres(t)
	urls := map[string][2]string{}
	for _, svc := range devstack.Services() {
		m, a, err := store.Provision(t.Context(), adminURL, "echopilot_"+svc.Name, "echopilot_"+svc.Name+"_app", "pw-"+svc.Name)
		if err != nil {
			t.Fatal(err)
		}
		urls[svc.Name] = [2]string{a, m}
	}
	s := startWith(t, "optional", func(svc string) (string, string) { return urls[svc][0], urls[svc][1] })
	acme := map[string]string{"X-Tenant-ID": "acme"}
	acked, attempted := 0, 0
	write := func(i int) bool {
		attempted++
		start := time.Now()
		code, body := s.call(t, "POST", "/api/audit/entries", "", acme,
			fmt.Sprintf(`{"entries":[{"event_type":"pg.restart","resource":"r-%d","severity":"low"}]}`, i))
		if took := time.Since(start); took > 10*time.Second {
			t.Fatalf("write %d took %v", i, took)
		}
		switch {
		case code == http.StatusOK:
			acked++
			return true
		case code == http.StatusServiceUnavailable && errReason(body) == "DATABASE_UNAVAILABLE":
			return false
		default:
			t.Fatalf("write %d during the restart: %d %v", i, code, body)
			return false
		}
	}
	for i := range 10 {
		if !write(i) {
			t.Fatalf("write %d failed before the restart", i)
		}
	}
	restart()
	// Pools find their connections broken on first use and reconnect.
	recovered := false
	for i := 10; i < 200 && !recovered; i++ {
		recovered = write(i)
		if !recovered {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if !recovered {
		t.Fatal("audit never recovered after PostgreSQL restarted")
	}
	for i := 200; i < 210; i++ {
		if !write(i) {
			t.Fatalf("write %d failed after recovery", i)
		}
	}
	code, body := s.call(t, "GET", "/api/audit/chain?limit=1", "", acme, "")
	total, _ := body["total"].(float64)
	if code != http.StatusOK || dig(body, "verification", "valid") != true || total < float64(acked) || total > float64(attempted) {
		t.Fatalf("after the restart: %d %v; %d acknowledged of %d", code, body["verification"], acked, attempted)
	}
	// Every service answers again.
	for _, path := range []string{"/api/tenant/info", "/api/finops/summary", "/api/queue/status", "/api/growth/referrals"} {
		var code int
		for range 50 {
			if code, _ = s.call(t, "GET", path, "", acme, ""); code == http.StatusOK {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if code != http.StatusOK {
			t.Errorf("%s after the restart: %d", path, code)
		}
	}
}
