package netguard

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// AllowList is the operator's exceptions to the guard: address ranges and
// host names that may be called although they are not public, such as a
// receiver on the internal network. The zero value admits nothing.
type AllowList struct {
	prefixes []netip.Prefix
	hosts    []string // normalized by hostKey
}

// ParseAllowList parses a comma-separated list of CIDRs, IP addresses and
// host names (ECHOPILOT_OUTBOUND_ALLOW), such as
// "127.0.0.1/32,10.1.0.0/16,receiver.internal". A host name admits that
// exact name, whatever it resolves to; it does not admit its subdomains.
// Every bad entry is reported.
func ParseAllowList(s string) (AllowList, error) {
	var a AllowList
	var errs []error
	for entry := range strings.SplitSeq(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		if err := a.add(entry); err != nil {
			errs = append(errs, fmt.Errorf("outbound allow-list entry %q: %w", entry, err))
		}
	}
	if len(errs) > 0 {
		return AllowList{}, errors.Join(errs...)
	}
	return a, nil
}

func (a *AllowList) add(entry string) error {
	if p, err := netip.ParsePrefix(entry); err == nil {
		switch {
		case p.Addr().Is4In6():
			return errors.New("write IPv4 ranges in IPv4 form")
		case p != p.Masked():
			return fmt.Errorf("has bits set past the prefix length (did you mean %s?)", p.Masked())
		}
		a.prefixes = append(a.prefixes, p)
		return nil
	}
	if ip, err := netip.ParseAddr(entry); err == nil {
		switch {
		case ip.Zone() != "":
			return errors.New("zones are not supported")
		case ip.Is4In6():
			return errors.New("write IPv4 addresses in IPv4 form")
		}
		a.prefixes = append(a.prefixes, netip.PrefixFrom(ip, ip.BitLen()))
		return nil
	}
	switch {
	case strings.ContainsAny(entry, ":[]"):
		return errors.New("not an address, a CIDR or a host name (ports and URLs are not supported)")
	case strings.Contains(entry, "/"):
		return errors.New("not a CIDR (want an address range such as 10.0.0.0/8)")
	case strings.Contains(entry, "*"):
		return errors.New("wildcards are not supported: list each host name")
	}
	if err := checkHostName(entry); err != nil {
		return err
	}
	if key := hostKey(entry); !slices.Contains(a.hosts, key) {
		a.hosts = append(a.hosts, key)
	}
	return nil
}

// Empty reports whether the list admits nothing.
func (a AllowList) Empty() bool { return len(a.prefixes) == 0 && len(a.hosts) == 0 }

// String lists the entries in the form ParseAllowList takes, for logs.
func (a AllowList) String() string {
	out := make([]string, 0, len(a.prefixes)+len(a.hosts))
	for _, p := range a.prefixes {
		out = append(out, p.String())
	}
	return strings.Join(append(out, a.hosts...), ",")
}

func (a AllowList) admits(ip netip.Addr) bool { return containsAny(a.prefixes, ip) }

// AllowsHost reports whether host is one of the listed host names.
func (a AllowList) AllowsHost(host string) bool {
	return len(a.hosts) > 0 && slices.Contains(a.hosts, hostKey(host))
}

// hostKey is the form in which host names compare: lower case, without
// the trailing dot of a fully qualified name.
func hostKey(host string) string { return strings.ToLower(strings.TrimSuffix(host, ".")) }

// checkHostName accepts DNS host names in ASCII (IDNs in their xn-- form).
// Names ending in a numeric label are refused: resolvers read some of them
// ("127.1", "0x7f000001", "2130706433") as IPv4 addresses.
func checkHostName(host string) error {
	name := strings.TrimSuffix(host, ".")
	if name == "" || len(name) > 253 {
		return errors.New("not a host name")
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return errors.New("not a host name")
		}
		for _, c := range []byte(l) {
			if !isHostByte(c) {
				return errors.New("not a host name (write international names in their xn-- form)")
			}
		}
	}
	if numeric(labels[len(labels)-1]) {
		return errors.New("a host name must not end in a numeric label")
	}
	return nil
}

func isHostByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// numeric reports whether a label is a decimal, octal or hex number (a
// bare "0x" too: inet_aton reads it as 0).
func numeric(label string) bool {
	l := strings.ToLower(label)
	if digits, hex := strings.CutPrefix(l, "0x"); hex {
		return strings.Trim(digits, "0123456789abcdef") == ""
	}
	return l != "" && strings.Trim(l, "0123456789") == ""
}
