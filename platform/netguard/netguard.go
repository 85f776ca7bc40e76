// Package netguard guards outbound requests to URLs a tenant chose (webhook
// endpoints, sync targets). Such a URL must not reach the platform's own
// network: loopback, private, shared (CGNAT), link-local (cloud metadata),
// unique-local and other special-purpose addresses are refused unless the
// operator's allow-list admits them.
//
// Registration checks the URL and what its host resolves to now (CheckURL).
// That alone is not enough: a name can resolve elsewhere later (DNS
// rebinding) and a receiver can redirect. So the client (Client, Transport)
// checks the address of every connection as it is dialed, follows no
// redirects and uses no proxy.
package netguard

import (
	"errors"
	"net"
	"net/netip"
)

// ErrDestinationNotAllowed is every refusal. Its text is all a tenant gets
// to see: nothing about what the host resolved to or what listens there.
var ErrDestinationNotAllowed = errors.New("destination not allowed")

// Allowed reports whether a request may go to ip: a public address, or one
// the operator's allow-list admits. IPv4-mapped IPv6 addresses are judged as
// the IPv4 address they carry, and zones are ignored.
func Allowed(ip netip.Addr, allow AllowList) bool {
	ip = ip.Unmap().WithZone("")
	return allow.admits(ip) || public(ip)
}

// refused4 are the IPv4 ranges that are not globally reachable unicast
// (IANA IPv4 special-purpose registry, plus multicast and class E).
var refused4 = prefixes(
	"0.0.0.0/8",       // "this network"; 0.0.0.0 reaches the local host
	"10.0.0.0/8",      // private
	"100.64.0.0/10",   // shared address space (CGNAT)
	"127.0.0.0/8",     // loopback
	"169.254.0.0/16",  // link-local, cloud metadata services
	"172.16.0.0/12",   // private
	"192.0.0.0/24",    // IETF protocol assignments
	"192.0.2.0/24",    // documentation
	"192.88.99.0/24",  // 6to4 relay anycast (deprecated)
	"192.168.0.0/16",  // private
	"198.18.0.0/15",   // benchmarking
	"198.51.100.0/24", // documentation
	"203.0.113.0/24",  // documentation
	"224.0.0.0/4",     // multicast
	"240.0.0.0/4",     // reserved, and 255.255.255.255 broadcast
)

// IPv6 is judged by allowing rather than refusing: only 2000::/3 is global
// unicast, so loopback, unspecified, IPv4-compatible (::/96, deprecated),
// unique-local, link-local, site-local and multicast all fall outside it.
var (
	global6 = netip.MustParsePrefix("2000::/3")
	// nat64 addresses reach the IPv4 address in their last 32 bits
	// (RFC 6052): judged as that address.
	nat64    = netip.MustParsePrefix("64:ff9b::/96")
	refused6 = prefixes(
		"2001::/23",     // IETF protocol assignments: Teredo, benchmarking, ORCHID
		"2001:db8::/32", // documentation
		"2002::/16",     // 6to4 (deprecated): embeds any IPv4 address
		"3fff::/20",     // documentation
	)
)

func public(ip netip.Addr) bool {
	switch {
	case ip.Is4():
		return !containsAny(refused4, ip)
	case nat64.Contains(ip):
		b := ip.As16()
		return public(netip.AddrFrom4([4]byte(b[12:])))
	case ip.Is6():
		return global6.Contains(ip) && !containsAny(refused6, ip)
	}
	return false
}

func containsAny(ps []netip.Prefix, ip netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func prefixes(cidrs ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(cidrs))
	for i, c := range cidrs {
		out[i] = netip.MustParsePrefix(c)
	}
	return out
}

// IsLoopbackHostPort reports whether host:port names this machine only: a
// loopback IP or "localhost". Other names are not resolved, so they count
// as remote (a name that resolves to loopback today may not tomorrow).
func IsLoopbackHostPort(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
