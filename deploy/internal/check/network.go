package check

import (
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// endpoint is one side of a connection as NetworkPolicy sees it: a pod of
// the suite, or a stand-in for traffic from elsewhere.
type endpoint struct {
	name      string
	namespace string // "" for outside the cluster
	nsLabels  map[string]string
	labels    map[string]string
	ports     map[string]int32
	suite     bool // a pod of ours: its own egress policies apply
}

// Stand-ins. Prometheus scrapes from the monitoring namespace; "outside"
// is the Internet, a managed database, the identity provider.
var (
	monitoring = endpoint{name: "Prometheus (namespace monitoring)", namespace: "monitoring",
		nsLabels: map[string]string{"kubernetes.io/metadata.name": "monitoring"}}
	outside = endpoint{name: "outside the cluster"}
	kubeDNS = endpoint{name: "kube-dns", namespace: "kube-system",
		nsLabels: map[string]string{"kubernetes.io/metadata.name": "kube-system"},
		labels:   map[string]string{"k8s-app": "kube-dns"}}
)

// canaryPort is a port nothing of ours uses: egress to the outside on it
// means egress is open to the world.
const canaryPort = 9

// network evaluates the overlay's NetworkPolicies the way a CNI does and
// compares who can reach whom with who must: the gateway reaches every
// service, each service the peers its config names (ECHOPILOT_<PEER>_ADDR),
// Prometheus the metrics ports, the edge Gateway the gRPC ports a GRPCRoute
// forwards to, the outside world only the gateway; the
// database and the JWKS endpoint are reachable when the config uses them.
// Anything else allowed is a violation, and so is anything needed but blocked.
func (c *checker) network() {
	if len(c.objs.NetworkPolicies) == 0 {
		c.fail("overlay", "no NetworkPolicy: every pod may reach every other")
		return
	}
	if !c.hasDefaultDeny() {
		c.fail("overlay", "no default-deny NetworkPolicy (podSelector {}, policyTypes Ingress and Egress, no rules)")
	}
	var pods []endpoint
	for _, d := range c.objs.Deployments {
		p := c.pods[d.Name]
		if p == nil {
			continue
		}
		pods = append(pods, endpoint{name: p.name, namespace: p.namespace, nsLabels: c.namespaceLabels(p.namespace),
			labels: p.labels, ports: p.ports, suite: true})
	}
	for _, src := range append(slices.Clone(pods), monitoring, outside, edge) {
		for _, dst := range pods {
			if src.name == dst.name {
				continue
			}
			for _, portName := range sortedKeys(dst.ports) {
				port := dst.ports[portName]
				got := c.reaches(src, dst, corev1.ProtocolTCP, port, portName)
				want := c.needs(src, dst, portName)
				switch {
				case got && !want:
					c.fail("NetworkPolicy", "lets %s reach %s:%d (%s), which it does not call", src.name, dst.name, port, portName)
				case !got && want:
					c.fail("NetworkPolicy", "blocks %s → %s:%d (%s), which it needs", src.name, dst.name, port, portName)
				}
			}
		}
	}
	for _, src := range pods {
		c.egressNeeds(src)
	}
	c.httpsEgress()
}

// needs is the expected matrix.
func (c *checker) needs(src, dst endpoint, portName string) bool {
	dstPod := c.pods[dst.name]
	if dstPod.gateway {
		// The public entry point (the Ingress controller; Prometheus is as
		// outside as anyone), and its admin port for Prometheus only.
		switch portName {
		case "http":
			return !src.suite
		case "metrics":
			return src.name == monitoring.name
		}
		return false
	}
	switch {
	case src.name == monitoring.name:
		return portName == "metrics"
	case src.name == edge.name:
		return portName == "grpc" && c.edgeRouted(dst.name)
	case !src.suite:
		return false
	case portName != "grpc":
		return false
	case c.pods[src.name].gateway:
		return true
	}
	_, calls := c.pods[src.name].env[addrKey(dst.name)]
	return calls
}

// egressNeeds: names resolve, and what the config points outside the
// cluster (a PostgreSQL database, a JWKS URL) is reachable, but nothing else.
func (c *checker) egressNeeds(src endpoint) {
	p := c.pods[src.name]
	if !c.permits(src, kubeDNS, egress, corev1.ProtocolUDP, 53, "") {
		c.fail("NetworkPolicy", "blocks %s → kube-dns UDP 53: it cannot resolve names", src.name)
	}
	if !p.gateway && !p.sqlite && !c.permits(src, outside, egress, corev1.ProtocolTCP, 5432, "") {
		c.fail("NetworkPolicy", "blocks %s → its PostgreSQL database (TCP 5432 outside the suite)", src.name)
	}
	if jwks, ok := p.env["ECHOPILOT_JWKS_URL"]; ok && jwks.known {
		if port := urlPort(jwks.value); !c.permits(src, outside, egress, corev1.ProtocolTCP, port, "") {
			c.fail("NetworkPolicy", "blocks %s → its JWKS URL %s (TCP %d)", src.name, jwks.value, port)
		}
	}
	if c.permits(src, outside, egress, corev1.ProtocolTCP, canaryPort, "") {
		c.fail("NetworkPolicy", "lets %s reach outside the cluster on any port (tried TCP %d)", src.name, canaryPort)
	}
}

func urlPort(raw string) int32 {
	u, err := url.Parse(raw)
	if err != nil {
		return 443
	}
	if p, err := strconv.Atoi(u.Port()); err == nil {
		return int32(p)
	}
	if u.Scheme == "http" {
		return 80
	}
	return 443
}

// reaches: a connection needs the source's egress and the destination's
// ingress. Stand-ins outside the suite have no egress policies of ours.
func (c *checker) reaches(src, dst endpoint, proto corev1.Protocol, port int32, portName string) bool {
	if src.suite && !c.permits(src, dst, egress, proto, port, portName) {
		return false
	}
	return c.permits(dst, src, ingress, proto, port, portName)
}

type direction int

const (
	ingress direction = iota
	egress
)

// permits reports whether self's policies in dir admit traffic with other:
// a pod no policy selects (for dir) is not isolated; a selected one admits
// only what some rule allows.
func (c *checker) permits(self, other endpoint, dir direction, proto corev1.Protocol, port int32, portName string) bool {
	isolated := false
	for _, np := range c.objs.NetworkPolicies {
		sel := np.Spec.PodSelector
		if np.Namespace != self.namespace || !matches(&sel, self.labels) || !hasType(np, dir) {
			continue
		}
		isolated = true
		for _, r := range rules(np, dir) {
			if peersMatch(r.peers, other, np.Namespace) && portsMatch(r.ports, proto, port, portName) {
				return true
			}
		}
	}
	return !isolated
}

type rule struct {
	peers []networkingv1.NetworkPolicyPeer
	ports []networkingv1.NetworkPolicyPort
}

func rules(np *networkingv1.NetworkPolicy, dir direction) []rule {
	var out []rule
	if dir == ingress {
		for _, r := range np.Spec.Ingress {
			out = append(out, rule{r.From, r.Ports})
		}
		return out
	}
	for _, r := range np.Spec.Egress {
		out = append(out, rule{r.To, r.Ports})
	}
	return out
}

// hasType follows the API's defaulting: without policyTypes a policy is
// Ingress, plus Egress when it has egress rules.
func hasType(np *networkingv1.NetworkPolicy, dir direction) bool {
	want := networkingv1.PolicyTypeIngress
	if dir == egress {
		want = networkingv1.PolicyTypeEgress
	}
	if len(np.Spec.PolicyTypes) == 0 {
		return dir == ingress || len(np.Spec.Egress) > 0
	}
	return slices.Contains(np.Spec.PolicyTypes, want)
}

func peersMatch(peers []networkingv1.NetworkPolicyPeer, other endpoint, policyNS string) bool {
	if len(peers) == 0 {
		return true
	}
	for _, p := range peers {
		if peerMatches(p, other, policyNS) {
			return true
		}
	}
	return false
}

// peerMatches: an ipBlock is taken to mean addresses outside the cluster
// (pod IPs are not stable enough to allow by address); selectors mean pods.
func peerMatches(p networkingv1.NetworkPolicyPeer, other endpoint, policyNS string) bool {
	if p.IPBlock != nil {
		return other.namespace == ""
	}
	if other.namespace == "" {
		return false
	}
	if p.NamespaceSelector == nil {
		if other.namespace != policyNS {
			return false
		}
	} else if !matches(p.NamespaceSelector, other.nsLabels) {
		return false
	}
	return p.PodSelector == nil || matches(p.PodSelector, other.labels)
}

func portsMatch(ports []networkingv1.NetworkPolicyPort, proto corev1.Protocol, port int32, portName string) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		pp := corev1.ProtocolTCP
		if p.Protocol != nil {
			pp = *p.Protocol
		}
		if pp != proto {
			continue
		}
		switch {
		case p.Port == nil:
			return true
		case p.Port.StrVal != "":
			if p.Port.StrVal == portName {
				return true
			}
		case p.EndPort != nil:
			if port >= p.Port.IntVal && port <= *p.EndPort {
				return true
			}
		case p.Port.IntVal == port:
			return true
		}
	}
	return false
}

// matches is label-selector matching where, unlike selects, the empty
// selector matches everything (as in a NetworkPolicy).
func matches(sel *metav1.LabelSelector, lbls map[string]string) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return false
	}
	return s.Matches(labels.Set(lbls))
}

func (c *checker) hasDefaultDeny() bool {
	for _, np := range c.objs.NetworkPolicies {
		sel := np.Spec.PodSelector
		if len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0 &&
			hasType(np, ingress) && hasType(np, egress) && len(np.Spec.Ingress) == 0 && len(np.Spec.Egress) == 0 {
			return true
		}
	}
	return false
}

// namespaceLabels are a namespace's labels, with the one the API server
// sets on every namespace.
func (c *checker) namespaceLabels(ns string) map[string]string {
	out := map[string]string{"kubernetes.io/metadata.name": ns}
	for _, n := range c.objs.Namespaces {
		if n.Name == ns {
			for k, v := range n.Labels {
				out[k] = v
			}
		}
	}
	return out
}

// guarded are the ranges the outbound guard (platform/netguard) refuses
// that a cluster and its network live in: private, shared (CGNAT),
// loopback, link-local (cloud metadata), "this network"; for IPv6,
// unique-local, link-local, loopback and IPv4-mapped.
var guarded = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("::ffff:0:0/96"),
}

// httpsEgress: HTTPS egress is where webhooks and sync requests to URLs a
// tenant chose go, beside the JWKS. It reaches public addresses, and the
// cluster's own and the private network's ranges only where a rule names
// them narrowly (an on-premises receiver): defence in depth beside the
// guard in the code. A rule to every address, or an ipBlock that spans a
// guarded range without excepting it, is a violation.
func (c *checker) httpsEgress() {
	for _, np := range c.objs.NetworkPolicies {
		if !hasType(np, egress) || !c.selectsSuitePod(np) {
			continue
		}
		obj := "NetworkPolicy/" + np.Name
		for _, r := range np.Spec.Egress {
			if !portsMatch(r.Ports, corev1.ProtocolTCP, 443, "") {
				continue
			}
			if len(r.To) == 0 {
				c.fail(obj, "HTTPS egress to every address, the cluster's own and its private network included: use an ipBlock that excepts %s", guardedList())
				continue
			}
			for _, peer := range r.To {
				if peer.IPBlock == nil {
					continue
				}
				cidr, err := netip.ParsePrefix(peer.IPBlock.CIDR)
				if err != nil {
					c.fail(obj, "ipBlock %q: %v", peer.IPBlock.CIDR, err)
					continue
				}
				for _, g := range guarded {
					if cidr.Addr().Is4() != g.Addr().Is4() || cidr.Bits() > g.Bits() || !cidr.Contains(g.Addr()) {
						continue // another family, or narrower than g: a deliberate allow
					}
					if !excepted(peer.IPBlock.Except, g) {
						c.fail(obj, "ipBlock %s lets HTTPS reach %s, which the outbound guard refuses: add it to except", cidr, g)
					}
				}
			}
		}
	}
}

func excepted(except []string, g netip.Prefix) bool {
	for _, e := range except {
		p, err := netip.ParsePrefix(e)
		if err == nil && p.Bits() <= g.Bits() && p.Contains(g.Addr()) {
			return true
		}
	}
	return false
}

func guardedList() string {
	var s []string
	for _, g := range guarded {
		s = append(s, g.String())
	}
	return strings.Join(s, ", ")
}

// selectsSuitePod: np applies to some pod of a checked Deployment.
func (c *checker) selectsSuitePod(np *networkingv1.NetworkPolicy) bool {
	for _, p := range c.pods {
		sel := np.Spec.PodSelector
		if p.namespace == np.Namespace && matches(&sel, p.labels) {
			return true
		}
	}
	return false
}
