// Package backendtest runs the five real services in-process for the
// gateway's tests (servicetest, auth required), on a fresh database each.
package backendtest

import (
	"path/filepath"
	"testing"

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
		conns["queue-2"] = servicetest.Start(t, specs["queue"], opts["queue"])
	}
	return conns, urls
}
