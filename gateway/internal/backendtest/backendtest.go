// Package backendtest runs the five real services in-process for the
// gateway's tests (servicetest, auth required), on a fresh database each.
package backendtest

import (
	"net"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/echopilot/echopilot/platform/service"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/platform/store/storetest"
	auditapp "github.com/echopilot/echopilot/services/audit/app"
	finopsapp "github.com/echopilot/echopilot/services/finops/app"
	growthapp "github.com/echopilot/echopilot/services/growth/app"
	queueapp "github.com/echopilot/echopilot/services/queue/app"
	tenancyapp "github.com/echopilot/echopilot/services/tenancy/app"
)

// Specs are the five services by backend name.
func Specs() map[string]service.Spec {
	return map[string]service.Spec{
		"tenancy": tenancyapp.Spec(), "finops": finopsapp.Spec(), "audit": auditapp.Spec(),
		"queue": queueapp.Spec(), "growth": growthapp.Spec(),
	}
}

// Start runs every service on db (each on a database of its own), with
// args added to each one's flags, until t ends, and returns a connection
// to each by name.
func Start(t testing.TB, db storetest.Backend, args ...string) map[string]*grpc.ClientConn {
	t.Helper()
	each := map[string][]string{}
	for name := range Specs() {
		each[name] = args
	}
	return StartEach(t, db, each)
}

// StartEach is Start with flags of each service's own, by service name
// (say, --outbound-allow for audit only).
func StartEach(t testing.TB, db storetest.Backend, args map[string][]string) map[string]*grpc.ClientConn {
	t.Helper()
	conns, _ := start(t, db, args, false)
	return conns
}

// StartWithDatabases is StartEach (StartLinked when linked) that also
// returns the URL each service connects to its database with (its own
// role, row-level security on PostgreSQL), for tests that check what is
// stored.
func StartWithDatabases(t testing.TB, db storetest.Backend, args map[string][]string, linked bool) (map[string]*grpc.ClientConn, map[string]string) {
	t.Helper()
	return start(t, db, args, linked)
}

// StartLinked is StartEach as deployed: tenancy first, on a loopback port,
// the others reaching it (--tenancy-addr) for API keys and tenant states;
// and a second replica of queue on queue's database, named "queue-2".
func StartLinked(t testing.TB, db storetest.Backend, args map[string][]string) map[string]*grpc.ClientConn {
	t.Helper()
	conns, _ := start(t, db, args, true)
	return conns
}

func start(t testing.TB, db storetest.Backend, args map[string][]string, linked bool) (map[string]*grpc.ClientConn, map[string]string) {
	t.Helper()
	conns := map[string]*grpc.ClientConn{}
	urls := map[string]string{}
	specs := Specs()
	opts := map[string]servicetest.Options{}
	for name := range specs {
		opt := servicetest.Options{AuthMode: "required", Args: args[name]}
		opt.MigrateURL, opt.DatabaseURL = db.NewDB(t)
		urls[name] = opt.DatabaseURL
		if name == "audit" {
			// No background scrub, and a signing key of the test's own.
			opt.Args = append([]string{"--scrub-interval=0", "--signing-key-file=" + filepath.Join(t.TempDir(), "signing.key")}, args[name]...)
		}
		opts[name] = opt
	}
	if linked {
		opt := opts["tenancy"]
		opt.TCP = true
		conns["tenancy"] = servicetest.Start(t, specs["tenancy"], opt)
		for name, opt := range opts {
			opt.Args = append([]string{"--tenancy-addr=" + conns["tenancy"].Target()}, opt.Args...)
			opts[name] = opt
		}
	}
	for name, spec := range specs {
		if conns[name] == nil {
			conns[name] = servicetest.Start(t, spec, opts[name])
		}
	}
	if linked {
		// A Spec runs once (its flags are its own variables): a fresh one.
		conns["queue-2"] = servicetest.Start(t, Specs()["queue"], opts["queue"])
	}
	return conns, urls
}

// Lifecycle is the five services as tenancy's lifecycle worker needs them:
// each on a loopback port of its own, the others reaching tenancy for API
// keys and tenant states, tenancy reaching every one of them (exports,
// erasures, the queue its worker leases from). A service can be stopped
// and started again on its address and database (a crash, a restart).
type Lifecycle struct {
	// Conns connects to each service by name.
	Conns map[string]*grpc.ClientConn
	t     testing.TB
	specs map[string]service.Spec
	opts  map[string]servicetest.Options
	addrs map[string]string
	stops map[string]func()
}

// StartLifecycle runs the five services on db with args added to each
// one's flags, until t ends.
func StartLifecycle(t testing.TB, db storetest.Backend, args map[string][]string) *Lifecycle {
	t.Helper()
	l := &Lifecycle{Conns: map[string]*grpc.ClientConn{}, t: t, specs: Specs(), opts: map[string]servicetest.Options{},
		addrs: map[string]string{}, stops: map[string]func(){}}
	for name := range l.specs {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lis.Close() // reopened by start: only the address is wanted now
		l.addrs[name] = lis.Addr().String()
	}
	for name := range l.specs {
		opt := servicetest.Options{AuthMode: "required"}
		opt.MigrateURL, opt.DatabaseURL = db.NewDB(t)
		switch name {
		case "tenancy":
			opt.Args = []string{"--queue-addr=" + l.addrs["queue"], "--finops-addr=" + l.addrs["finops"],
				"--growth-addr=" + l.addrs["growth"], "--audit-addr=" + l.addrs["audit"]}
		case "audit":
			opt.Args = []string{"--scrub-interval=0", "--signing-key-file=" + filepath.Join(t.TempDir(), "signing.key")}
		}
		if name != "tenancy" {
			opt.Args = append(opt.Args, "--tenancy-addr="+l.addrs["tenancy"])
		}
		opt.Args = append(opt.Args, args[name]...)
		l.opts[name] = opt
	}
	// Tenancy last: its worker leases from the queue at once.
	for _, name := range []string{"finops", "audit", "queue", "growth", "tenancy"} {
		l.Start(name)
	}
	return l
}

// Start starts service name on its address and database.
func (l *Lifecycle) Start(name string) {
	l.t.Helper()
	var lis net.Listener
	var err error
	for range 50 { // the port of a service just stopped may take a moment
		if lis, err = net.Listen("tcp", l.addrs[name]); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		l.t.Fatalf("listen %s: %v", l.addrs[name], err)
	}
	opt := l.opts[name]
	opt.Listener = lis
	l.Conns[name], l.stops[name] = servicetest.StartStoppable(l.t, l.specs[name], opt)
}

// Stop stops service name.
func (l *Lifecycle) Stop(name string) { l.stops[name]() }
