package netguard_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/echopilot/echopilot/platform/netguard"
)

func mustAllow(t testing.TB, s string) netguard.AllowList {
	t.Helper()
	a, err := netguard.ParseAllowList(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAllowed(t *testing.T) {
	refused := []string{
		// loopback, unspecified, "this network"
		"127.0.0.1", "127.255.255.254", "::1", "0.0.0.0", "::", "0.1.2.3",
		// private, shared (CGNAT)
		"10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.255", "192.168.1.1", "100.64.0.1", "100.127.255.255",
		// link-local, cloud metadata
		"169.254.169.254", "169.254.0.1", "fe80::1", "fe80::a9fe:a9fe%eth0", "fd00:ec2::254",
		// unique-local, site-local (deprecated)
		"fc00::1", "fd12:3456:789a::1", "fec0::1",
		// multicast, broadcast, reserved
		"224.0.0.1", "239.255.255.250", "ff02::1", "ff0e::1", "255.255.255.255", "240.0.0.1",
		// special-purpose and documentation ranges
		"192.0.0.8", "192.0.2.1", "192.88.99.1", "198.18.0.1", "198.19.255.255", "198.51.100.7", "203.0.113.9",
		"2001:db8::1", "3fff::1", "100::1", "2001::1", "2001:2::1", "2001:20::1", "5f00::1", "64:ff9b:1::1",
		// IPv4-mapped, IPv4-compatible (deprecated), NAT64 and 6to4 forms of refused addresses
		"::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:10.0.0.1", "::ffff:0.0.0.0", "::ffff:255.255.255.255",
		"::127.0.0.1", "::8.8.8.8", "::ffff:0:127.0.0.1",
		"64:ff9b::127.0.0.1", "64:ff9b::169.254.169.254", "64:ff9b::10.0.0.1", "64:ff9b::", "2002:7f00:1::1", "2002:a9fe:a9fe::",
	}
	public := []string{
		"8.8.8.8", "1.1.1.1", "93.184.216.34", "223.255.255.255", "9.255.255.255", "11.0.0.0",
		// next to refused ranges
		"100.63.255.255", "100.128.0.0", "172.15.255.255", "172.32.0.0", "169.253.255.255", "169.255.0.0",
		"192.167.255.255", "192.169.0.0", "198.17.255.255", "198.20.0.0", "1.0.0.0", "126.255.255.255", "128.0.0.0",
		"2606:4700:4700::1111", "2a00:1450:4001::1", "2001:4860:4860::8888", "2001:200::1", "2003::1", "3ffe::1",
		"::ffff:8.8.8.8", "64:ff9b::8.8.8.8",
	}
	for _, s := range refused {
		if netguard.Allowed(netip.MustParseAddr(s), netguard.AllowList{}) {
			t.Errorf("Allowed(%s) = true, want refused", s)
		}
	}
	for _, s := range public {
		if !netguard.Allowed(netip.MustParseAddr(s), netguard.AllowList{}) {
			t.Errorf("Allowed(%s) = false, want allowed", s)
		}
	}
	if netguard.Allowed(netip.Addr{}, mustAllow(t, "0.0.0.0/0,::/0")) {
		t.Error("the invalid address is allowed")
	}
}

func TestAllowedWithAllowList(t *testing.T) {
	for _, tc := range []struct {
		allow, addr string
		want        bool
	}{
		{"127.0.0.1/32", "127.0.0.1", true},
		{"127.0.0.1", "127.0.0.1", true},
		{"127.0.0.1/32", "::ffff:127.0.0.1", true}, // judged unmapped
		{"127.0.0.1/32", "127.0.0.2", false},
		{"127.0.0.1/32", "::1", false},
		{"127.0.0.1/32", "0.0.0.0", false},
		{"127.0.0.1/32", "169.254.169.254", false},
		{"10.0.0.0/8", "10.20.30.40", true},
		{"10.0.0.0/8", "::ffff:10.20.30.40", true},
		{"10.0.0.0/8", "11.0.0.1", true}, // public anyway
		{"10.0.0.0/8", "192.168.0.1", false},
		{"fd00::/8", "fd00::5", true},
		{"fd00::/8", "fc00::5", false},
		{"fe80::/10", "fe80::1%eth0", true}, // zones ignored
		{"::1", "::1", true},
		{"localhost", "127.0.0.1", false}, // names admit names, not addresses
		{"receiver.internal,10.1.0.0/16", "10.1.2.3", true},
		{"receiver.internal,10.1.0.0/16", "10.2.0.1", false},
	} {
		if got := netguard.Allowed(netip.MustParseAddr(tc.addr), mustAllow(t, tc.allow)); got != tc.want {
			t.Errorf("Allowed(%s, %q) = %v, want %v", tc.addr, tc.allow, got, tc.want)
		}
	}
}

func TestParseAllowList(t *testing.T) {
	for in, want := range map[string]string{
		"":                                      "",
		" , ,":                                  "",
		"127.0.0.1/32,receiver.internal":        "127.0.0.1/32,receiver.internal",
		" 10.0.0.0/8 , 192.168.1.7 , ::1 ":      "10.0.0.0/8,192.168.1.7/32,::1/128",
		"Receiver.Internal.,receiver.internal":  "receiver.internal",
		"fd00::/8,hooks_1.corp.example,a-b.c":   "fd00::/8,hooks_1.corp.example,a-b.c",
		"xn--bcher-kva.example,localhost":       "xn--bcher-kva.example,localhost",
		"0.0.0.0/0,::/0":                        "0.0.0.0/0,::/0",
		"100.64.0.0/10,169.254.169.254/32,host": "100.64.0.0/10,169.254.169.254/32,host",
	} {
		a, err := netguard.ParseAllowList(in)
		if err != nil {
			t.Errorf("ParseAllowList(%q): %v", in, err)
			continue
		}
		if a.String() != want || a.Empty() != (want == "") {
			t.Errorf("ParseAllowList(%q) = %q (empty %v), want %q", in, a, a.Empty(), want)
		}
	}
	for in, why := range map[string]string{
		"10.0.0.1/8":                "did you mean 10.0.0.0/8?",
		"10.0.0.0/33":               "not a CIDR",
		"300.1.1.1/8":               "not a CIDR",
		"::ffff:127.0.0.1/128":      "IPv4 form",
		"::ffff:127.0.0.1":          "IPv4 form",
		"fe80::1%eth0":              "zones",
		"receiver.internal:8080":    "ports and URLs",
		"http://receiver.internal/": "ports and URLs",
		"[::1]":                     "ports and URLs",
		"*.example.com":             "wildcards",
		"-bad.example":              "not a host name",
		"a..b":                      "not a host name",
		"exa mple.com":              "not a host name",
		"bücher.example":            "xn--",
		"127.1":                     "numeric",
		"0x7f000001":                "numeric",
		"2130706433":                "numeric",
		"host.0X1F":                 "numeric",
		strings.Repeat("a", 64):     "not a host name",
	} {
		_, err := netguard.ParseAllowList("ok.example," + in)
		if err == nil || !strings.Contains(err.Error(), why) || !strings.Contains(err.Error(), `entry "`+in+`"`) {
			t.Errorf("ParseAllowList(%q) = %v, want an error naming the entry and saying %q", in, err, why)
		}
	}
	// Every bad entry is reported, not only the first.
	_, err := netguard.ParseAllowList("10.0.0.1/8,ok,*.x")
	if err == nil || !strings.Contains(err.Error(), "10.0.0.1/8") || !strings.Contains(err.Error(), "*.x") {
		t.Errorf("two bad entries: %v", err)
	}
}

func TestAllowsHost(t *testing.T) {
	a := mustAllow(t, "receiver.internal,10.0.0.0/8")
	for host, want := range map[string]bool{
		"receiver.internal": true, "RECEIVER.internal.": true,
		"sub.receiver.internal": false, "receiver.internal.evil.test": false, "10.0.0.1": false, "": false,
	} {
		if got := a.AllowsHost(host); got != want {
			t.Errorf("AllowsHost(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestIsLoopbackHostPort(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:9104": true, "[::1]:9104": true, "localhost:9104": true, "127.8.9.10:1": true,
		":9104": false, "queue.example.com:443": false, "queue-headless:9104": false,
		"127.0.0.1": false, "": false, "[::ffff:127.0.0.1]:1": true,
	} {
		if got := netguard.IsLoopbackHostPort(addr); got != want {
			t.Errorf("IsLoopbackHostPort(%q) = %v, want %v", addr, got, want)
		}
	}
}
