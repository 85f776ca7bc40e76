package service

import (
	"fmt"
	"net"
	"strings"

	"google.golang.org/grpc/resolver"
)

// StaticScheme names a fixed list of replica addresses as one gRPC target:
// static:///10.0.0.1:9101,10.0.0.2:9101. Every binary that dials through
// Dial accepts it in its *_ADDR settings, and round_robin spreads calls over
// the list. A passthrough target carries one address only, and dns:///
// needs a name that resolves to every replica; the static list is for
// replicas without such a name (several processes on one host, as
// devstack's Replicas start them).
const StaticScheme = "static"

// StaticTarget is the target that lists addrs: the address itself when
// there is one (so a single replica's settings stay as they were).
func StaticTarget(addrs ...string) string {
	if len(addrs) == 1 {
		return addrs[0]
	}
	return StaticScheme + ":///" + strings.Join(addrs, ",")
}

func init() { resolver.Register(staticBuilder{}) }

type staticBuilder struct{}

func (staticBuilder) Scheme() string { return StaticScheme }

// OverrideAuthority keeps the connection's authority a valid host:port
// (the first address) instead of the whole list.
func (staticBuilder) OverrideAuthority(t resolver.Target) string {
	first, _, _ := strings.Cut(t.Endpoint(), ",")
	return first
}

func (staticBuilder) Build(t resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	addrs, err := parseStatic(t.Endpoint())
	if err != nil {
		return nil, err
	}
	eps := make([]resolver.Endpoint, len(addrs))
	for i, a := range addrs {
		// Each address is verified by TLS as if it were dialed alone: a
		// replica's certificate names its own host, not the first one's.
		eps[i] = resolver.Endpoint{Addresses: []resolver.Address{{Addr: a, ServerName: a}}}
	}
	if err := cc.UpdateState(resolver.State{Endpoints: eps}); err != nil {
		return nil, fmt.Errorf("static target %q: %w", t.Endpoint(), err)
	}
	return staticResolver{}, nil
}

// parseStatic splits a comma-separated list of host:port addresses,
// refusing empty entries, missing ports and duplicates.
func parseStatic(list string) ([]string, error) {
	var addrs []string
	seen := map[string]bool{}
	for _, a := range strings.Split(list, ",") {
		a = strings.TrimSpace(a)
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("static target: %q is not host:port", a)
		}
		if seen[a] {
			return nil, fmt.Errorf("static target: %q listed twice", a)
		}
		seen[a] = true
		addrs = append(addrs, a)
	}
	return addrs, nil
}

// staticResolver has nothing to re-resolve: the list is the configuration.
type staticResolver struct{}

func (staticResolver) ResolveNow(resolver.ResolveNowOptions) {}
func (staticResolver) Close()                                {}
