package devstack

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/echopilot/echopilot/platform/service"
)

// Service is one gRPC service of the suite.
type Service struct {
	Name string
	Pkg  string // main package, relative to the workspace root
	// Offset fixes the service's ports in `make run`: gRPC on BasePort+Offset,
	// metrics on BasePort+100+Offset (tenancy 9101, finops 9102, audit 9103,
	// queue 9104, growth 9105), the defaults the binaries and gateway share.
	// Replica i (from 0) adds 10*i to both (queue's second: 9114 and 9214).
	Offset int
	// EdgeFacing services are called by edge workers, which prove
	// themselves with a token and hold no client certificate: with TLS
	// they verify client certificates when given instead of requiring one.
	EdgeFacing bool
}

// Services lists the suite's gRPC services in start order (tenancy first:
// the others report to it); the gateway comes last.
func Services() []Service {
	return []Service{
		{Name: "tenancy", Pkg: "./services/tenancy/cmd/tenancy", Offset: 0},
		{Name: "finops", Pkg: "./services/finops/cmd/finops", Offset: 1, EdgeFacing: true},
		{Name: "audit", Pkg: "./services/audit/cmd/audit", Offset: 2},
		{Name: "queue", Pkg: "./services/queue/cmd/queue", Offset: 3, EdgeFacing: true},
		{Name: "growth", Pkg: "./services/growth/cmd/growth", Offset: 4},
	}
}

// GatewayPkg is the gateway's main package.
const GatewayPkg = "./gateway/cmd/gateway"

// Packages are the main packages of a stack, the gateway's first, then
// extra ones (such as the edge worker): what Build takes.
func Packages(extra ...string) []string {
	pkgs := []string{GatewayPkg}
	for _, s := range Services() {
		pkgs = append(pkgs, s.Pkg)
	}
	return append(pkgs, extra...)
}

// Options describe one stack.
type Options struct {
	BinDir   string // where Build put the binaries
	DataDir  string // SQLite files and logs
	AuthMode string // optional (default) or required
	Secret   string // HS256 secret shared by the services
	// Ports: 0 picks free ones. Fixed ports give `make run` stable addresses.
	GatewayPort int
	BasePort    int // service i listens on BasePort+i (gRPC) and BasePort+100+i (metrics)
	// GatewayAdminPort serves the gateway's /metrics and /healthz; with
	// fixed ports 0 means BasePort+179 (9280 for `make run`'s 9101).
	GatewayAdminPort int
	// Database returns a service's database URL and, optionally, the owner
	// URL its migrations run with; nil means SQLite under DataDir.
	Database func(service string) (url, migrateURL string)
	Out      io.Writer // children's output, prefixed by name (nil discards)
	Env      []string  // extra environment for every child
	// Replicas is the number of processes per service (0 means 1), all on
	// the service's one database, so PostgreSQL only. Every client of a
	// service (the gateway, peer services) is given all of them as one
	// static:/// target (service.StaticTarget) and balances over them.
	Replicas int
	// Binary, when set and not empty for a process name (see Stack.Procs),
	// is the path of the binary that process runs instead of BinDir's
	// binary of its service: a rolling-upgrade check runs one replica from
	// an earlier commit's build.
	Binary func(process string) string
	// TLS issues a local CA and a certificate per process under
	// DataDir/tls, and runs every gRPC connection over TLS: mutual TLS
	// between the services and from the gateway, TLS with a token alone
	// from edge workers (see Service.EdgeFacing). The gateway's HTTP
	// listener stays plain.
	TLS bool
}

// maxFixedReplicas keeps fixed ports apart: replica i's metrics port
// BasePort+100+10*i+Offset stays below the gateway's admin port BasePort+179.
const maxFixedReplicas = 7

// replicaPool is each process's PostgreSQL pool when a service runs as
// several replicas: ten processes at the default 16 could take 160
// connections of a server that allows 100.
const replicaPool = 6

// Stack is a running suite.
type Stack struct {
	// Procs, GRPCAddrs and MetricsAddrs are keyed by process name: a
	// service's name for its first replica (and "gateway"), ReplicaName for
	// the others.
	Procs        map[string]*Proc
	GRPCAddrs    map[string]string
	MetricsAddrs map[string]string
	// Replicas lists each service's process names, first replica first.
	Replicas   map[string][]string
	GatewayURL string
	// GatewayAdminURL serves the gateway's /metrics and /healthz.
	GatewayAdminURL string
	// TLS is the stack's CA and certificates; nil when it runs plaintext.
	TLS   *TLS
	opt   Options
	order []string
	env   map[string][]string
	bin   map[string]string // process name → binary
	mu    sync.Mutex        // keeps children's log lines whole
}

// Up starts every service, waits for gRPC health, then starts the gateway
// and waits for /health.
//
// Ports Up chooses itself (no GatewayPort and BasePort) were free when
// chosen, but another socket can take one before its process binds it
// (a client's ephemeral port comes from the same range): then Up starts
// the suite again on fresh ports, up to three times in all.
func Up(ctx context.Context, opt Options) (*Stack, error) {
	if opt.Out == nil {
		opt.Out = io.Discard
	}
	for attempt := 1; ; attempt++ {
		s, clash, err := up(ctx, opt)
		if err == nil || !clash || attempt == 3 || fixedPorts(opt) {
			return s, err
		}
		fmt.Fprintf(opt.Out, "devstack: %v; starting again on other ports\n", err)
	}
}

// up is one try of Up; clash reports that it failed because a process's
// port was taken by another socket.
func up(ctx context.Context, opt Options) (_ *Stack, clash bool, _ error) {
	if opt.AuthMode == "" {
		opt.AuthMode = "optional"
	}
	if opt.Out == nil {
		opt.Out = io.Discard
	}
	if opt.Database == nil {
		opt.Database = func(svc string) (string, string) { return "sqlite://" + filepath.Join(opt.DataDir, svc+".db"), "" }
	}
	if err := os.MkdirAll(opt.DataDir, 0o755); err != nil {
		return nil, false, fmt.Errorf("data dir: %w", err)
	}
	svcs := Services()
	if err := checkReplicas(&opt, svcs); err != nil {
		return nil, false, err
	}
	gatewayPort, adminPort, grpcPorts, metricsPorts, err := choosePorts(opt, svcs)
	if err != nil {
		return nil, false, err
	}
	s := &Stack{Procs: map[string]*Proc{}, GRPCAddrs: map[string]string{}, MetricsAddrs: map[string]string{},
		Replicas: map[string][]string{}, opt: opt, env: map[string][]string{}, bin: map[string]string{"gateway": "gateway"}}
	if opt.TLS {
		names := []string{"gateway"}
		for _, svc := range svcs {
			names = append(names, svc.Name)
		}
		if s.TLS, err = issueTLS(filepath.Join(opt.DataDir, "tls"), names); err != nil {
			return nil, false, err
		}
	}
	for i, svc := range svcs {
		for r := range opt.Replicas {
			name := ReplicaName(svc.Name, r)
			s.Replicas[svc.Name] = append(s.Replicas[svc.Name], name)
			s.bin[name] = svc.Name
			s.GRPCAddrs[name] = fmt.Sprintf("127.0.0.1:%d", grpcPorts[r*len(svcs)+i])
			s.MetricsAddrs[name] = fmt.Sprintf("127.0.0.1:%d", metricsPorts[r*len(svcs)+i])
		}
	}
	tokenKey, tokenPub, err := workerTokenKey(opt.DataDir)
	if err != nil {
		return nil, false, err
	}
	common := append([]string{
		"ECHOPILOT_AUTH_MODE=" + opt.AuthMode,
		// The queue signs worker tokens (POST /api/queue/worker-tokens);
		// every service trusts them, finops for edge workers' report_gen.
		"ECHOPILOT_WORKER_TOKEN_KEY_FILE=" + tokenKey,
		"ECHOPILOT_JWT_PUBLIC_KEYS=" + tokenPub,
		"ECHOPILOT_JWT_HS256_SECRET=" + opt.Secret,
		// Local tokens (devtoken, the tests') name no issuer or audience;
		// a deployment sets both.
		"ECHOPILOT_ALLOW_UNBOUND_TOKENS=true",
		"ECHOPILOT_GRPC_REFLECTION=true",
		// audit creates its checkpoint signing key here on first start.
		"ECHOPILOT_AUDIT_SIGNING_KEY_FILE=" + filepath.Join(opt.DataDir, "audit-signing.key"),
	}, opt.Env...)
	if opt.Replicas > 1 {
		// Every replica of every service shares one PostgreSQL server's
		// max_connections (100 by default), with the tests beside them.
		common = append(common, fmt.Sprintf("ECHOPILOT_DB_MAX_CONNS=%d", replicaPool))
	}
	for _, svc := range svcs {
		common = append(common, fmt.Sprintf("ECHOPILOT_%s_ADDR=%s", strings.ToUpper(svc.Name), s.Target(svc.Name)))
	}
	// Replicas start one after another, so only the first runs migrations
	// on an empty database.
	for _, svc := range svcs {
		dbURL, migrateURL := opt.Database(svc.Name)
		for _, name := range s.Replicas[svc.Name] {
			env := append([]string{
				"ECHOPILOT_GRPC_ADDR=" + s.GRPCAddrs[name],
				"ECHOPILOT_METRICS_ADDR=" + s.MetricsAddrs[name],
				"ECHOPILOT_DATABASE_URL=" + dbURL,
				"ECHOPILOT_MIGRATE_DATABASE_URL=" + migrateURL,
			}, s.TLS.env(svc.Name, clientAuth(svc))...)
			s.env[name] = append(env, common...)
			if err := s.start(ctx, name); err != nil {
				s.Down()
				return nil, s.portTaken(name), err
			}
		}
	}
	s.GatewayURL = fmt.Sprintf("http://127.0.0.1:%d", gatewayPort)
	s.GatewayAdminURL = fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	s.env["gateway"] = append([]string{
		fmt.Sprintf("ECHOPILOT_HTTP_ADDR=127.0.0.1:%d", gatewayPort),
		fmt.Sprintf("ECHOPILOT_ADMIN_ADDR=127.0.0.1:%d", adminPort),
	}, s.TLS.env("gateway", "")...)
	s.env["gateway"] = append(s.env["gateway"], common...)
	if err := s.start(ctx, "gateway"); err != nil {
		s.Down()
		return nil, s.portTaken("gateway"), err
	}
	return s, false, nil
}

func (s *Stack) start(ctx context.Context, name string) error {
	p, err := Start(name, s.binary(name), s.env[name], PrefixWriter(s.opt.Out, &s.mu, name))
	if err != nil {
		return err
	}
	s.Procs[name] = p
	if !slices.Contains(s.order, name) {
		s.order = append(s.order, name)
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if name == "gateway" {
		err = WaitHTTP(wctx, s.GatewayURL+"/health", p)
	} else {
		err = WaitGRPC(wctx, s.GRPCAddrs[name], p, s.DialOption())
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// portTaken reports whether a port of process name cannot be bound now
// that its process has stopped: another socket holds it.
func (s *Stack) portTaken(name string) bool {
	addrs := []string{s.GRPCAddrs[name], s.MetricsAddrs[name]}
	if name == "gateway" {
		addrs = []string{strings.TrimPrefix(s.GatewayURL, "http://"), strings.TrimPrefix(s.GatewayAdminURL, "http://")}
	}
	for _, a := range addrs {
		l, err := net.Listen("tcp", a)
		if err != nil {
			return true
		}
		l.Close()
	}
	return false
}

// binary is the path of the binary process name runs.
func (s *Stack) binary(name string) string {
	if s.opt.Binary != nil {
		if bin := s.opt.Binary(name); bin != "" {
			return bin
		}
	}
	return filepath.Join(s.opt.BinDir, s.bin[name])
}

// ReplicaName is the process name of replica i (from 0) of service svc:
// the service's own name for the first, svc-2, svc-3… for the others.
func ReplicaName(svc string, i int) string {
	if i == 0 {
		return svc
	}
	return fmt.Sprintf("%s-%d", svc, i+1)
}

// Target is what clients of service svc are given to dial: its one
// address, or a static:/// list of every replica's.
func (s *Stack) Target(svc string) string {
	addrs := make([]string, 0, len(s.Replicas[svc]))
	for _, name := range s.Replicas[svc] {
		addrs = append(addrs, s.GRPCAddrs[name])
	}
	return service.StaticTarget(addrs...)
}

// Restart starts a stopped or killed process again with the same settings
// and port: a killed replica's replacement, which clients reconnect to.
func (s *Stack) Restart(ctx context.Context, name string) error {
	if p := s.Procs[name]; p != nil && !p.Exited() {
		return fmt.Errorf("%s is still running", name)
	}
	return s.start(ctx, name)
}

// RestartWith is Restart with env added to the process's settings, for
// this start and later ones (a later value of a variable wins).
func (s *Stack) RestartWith(ctx context.Context, name string, env ...string) error {
	if p := s.Procs[name]; p != nil && !p.Exited() {
		return fmt.Errorf("%s is still running", name)
	}
	s.env[name] = append(s.env[name], env...)
	return s.start(ctx, name)
}

// Down stops the gateway first, then the services in reverse start order.
func (s *Stack) Down() error {
	var first error
	for i := len(s.order) - 1; i >= 0; i-- {
		if err := s.Procs[s.order[i]].Stop(15 * time.Second); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func clientAuth(svc Service) string {
	if svc.EdgeFacing {
		return "optional"
	}
	return "require"
}

// checkReplicas defaults opt.Replicas to 1 and refuses several replicas
// on SQLite (one process owns a SQLite file's writer gate) or more than
// fixed ports leave room for.
func checkReplicas(opt *Options, svcs []Service) error {
	if opt.Replicas <= 0 {
		opt.Replicas = 1
	}
	if opt.Replicas == 1 {
		return nil
	}
	if opt.GatewayPort != 0 && opt.BasePort != 0 && opt.Replicas > maxFixedReplicas {
		return fmt.Errorf("%d replicas: fixed ports allow at most %d", opt.Replicas, maxFixedReplicas)
	}
	for _, svc := range svcs {
		if url, _ := opt.Database(svc.Name); !strings.HasPrefix(url, "postgres://") && !strings.HasPrefix(url, "postgresql://") {
			return fmt.Errorf("%d replicas of %s need PostgreSQL, not %s", opt.Replicas, svc.Name, strings.SplitN(url, ":", 2)[0])
		}
	}
	return nil
}

// fixedPorts reports whether opt sets the ports (else Up chooses free ones).
func fixedPorts(opt Options) bool { return opt.GatewayPort != 0 && opt.BasePort != 0 }

// choosePorts returns the gateway's ports and, for replica r of service i,
// gRPC and metrics ports at index r*len(svcs)+i.
func choosePorts(opt Options, svcs []Service) (gateway, admin int, grpc, metrics []int, err error) {
	if fixedPorts(opt) {
		for r := range opt.Replicas {
			for _, s := range svcs {
				grpc = append(grpc, opt.BasePort+10*r+s.Offset)
				metrics = append(metrics, opt.BasePort+100+10*r+s.Offset)
			}
		}
		admin = opt.GatewayAdminPort
		if admin == 0 {
			admin = opt.BasePort + 179
		}
		return opt.GatewayPort, admin, grpc, metrics, nil
	}
	n := opt.Replicas * len(svcs)
	free, err := FreePorts(2 + 2*n)
	if err != nil {
		return 0, 0, nil, nil, err
	}
	admin = free[1+2*n]
	if opt.GatewayAdminPort != 0 {
		admin = opt.GatewayAdminPort
	}
	return free[0], admin, free[1 : 1+n], free[1+n : 1+2*n], nil
}
