package netguard_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/netguard"
)

// fakeDNS answers from a table and counts lookups; no test touches DNS.
type fakeDNS struct {
	hosts   map[string][]string
	lookups atomic.Int32
}

func (f *fakeDNS) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	f.lookups.Add(1)
	addrs, ok := f.hosts[strings.ToLower(strings.TrimSuffix(host, "."))] // as DNS compares names
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	out := make([]netip.Addr, len(addrs))
	for i, a := range addrs {
		out[i] = netip.MustParseAddr(a)
	}
	return out, nil
}

func newDNS() *fakeDNS {
	return &fakeDNS{hosts: map[string][]string{
		"localhost":                 {"127.0.0.1", "::1"},
		"hooks.example.com":         {"93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"},
		"mixed.example.com":         {"93.184.216.34", "10.0.0.1"},
		"rebind.example.com":        {"169.254.169.254"},
		"mapped.example.com":        {"::ffff:127.0.0.1"},
		"nat64.example.com":         {"64:ff9b::a9fe:a9fe"},
		"empty.example.com":         {},
		"receiver.internal":         {"10.0.0.5"},
		"xn--bcher-kva.example.com": {"93.184.216.34"},
	}}
}

func TestCheckURL(t *testing.T) {
	const (
		ok      = ""
		refused = "refused"
		invalid = "invalid"
	)
	for _, tc := range []struct {
		allow, url, want string
	}{
		{"", "https://hooks.example.com/audit?x=1", ok},
		{"", "http://hooks.example.com:8080/", ok},
		{"", "HTTPS://HOOKS.EXAMPLE.COM./x", ok},
		{"", "https://xn--bcher-kva.example.com/", ok},
		{"", "http://93.184.216.34/hook", ok},
		{"", "http://[2606:4700:4700::1111]:443/", ok},

		// The attack and its variants: loopback, metadata, private,
		// by address or by a name resolving there.
		{"", "http://127.0.0.1:9203/metrics", refused},
		{"", "http://localhost:9203/metrics", refused},
		{"", "http://LOCALHOST./", refused},
		{"", "http://[::1]:9203/", refused},
		{"", "http://[::ffff:127.0.0.1]:9203/", refused},
		{"", "http://[::ffff:7f00:1]/", refused},
		{"", "http://[64:ff9b::7f00:1]/", refused},
		{"", "http://0.0.0.0:9203/", refused},
		{"", "http://169.254.169.254/latest/meta-data/", refused},
		{"", "http://[fe80::1%25eth0]/", refused},
		{"", "http://10.0.0.1/", refused},
		{"", "http://100.64.1.1/", refused},
		{"", "http://rebind.example.com/", refused},
		{"", "http://mapped.example.com/", refused},
		{"", "http://nat64.example.com/", refused},
		{"", "https://mixed.example.com/", refused}, // any refused address refuses
		{"", "https://missing.example.com/", refused},
		{"", "https://empty.example.com/", refused},
		{"", "https://receiver.internal/", refused},

		// Malformed.
		{"", "ftp://hooks.example.com/", invalid},
		{"", "file:///etc/passwd", invalid},
		{"", "javascript:alert(1)", invalid},
		{"", "http:hooks.example.com", invalid},
		{"", "hooks.example.com/x", invalid},
		{"", "//hooks.example.com/x", invalid},
		{"", "http:///x", invalid},
		{"", "http://:80/", invalid},
		{"", "http://user:pw@hooks.example.com/", invalid},
		{"", "http://user@hooks.example.com/", invalid},
		{"", "http://hooks.example.com:0/", invalid},
		{"", "http://hooks.example.com:65536/", invalid},
		{"", "http://hooks.example.com:99999999999999999999/", invalid},
		{"", "http://127.1/", invalid},
		{"", "http://0x7f000001/", invalid},
		{"", "http://2130706433/", invalid},
		{"", "http://0177.0.0.1/", invalid},
		{"", "http://bücher.example.com/", invalid},
		{"", "http://a..b/", invalid},
		{"", "http://hooks.example.com/" + strings.Repeat("a", netguard.MaxURLLength), invalid},
		{"", "http://[::1/", invalid},
		{"", "", invalid},

		// The operator's allow-list.
		{"127.0.0.1/32", "http://127.0.0.1:9999/hook", ok},
		{"127.0.0.1/32", "http://[::ffff:127.0.0.1]:9999/hook", ok},
		{"127.0.0.1/32", "http://localhost:9999/hook", refused}, // localhost is ::1 too
		{"127.0.0.1/32,::1", "http://localhost:9999/hook", ok},
		{"127.0.0.1/32", "http://127.0.0.2/", refused},
		{"127.0.0.1/32", "http://169.254.169.254/", refused},
		{"receiver.internal", "https://receiver.internal/sync", ok},
		{"receiver.internal", "https://RECEIVER.INTERNAL./sync", ok},
		{"receiver.internal", "https://10.0.0.5/sync", refused}, // the name, not its address
		{"10.0.0.0/8", "https://receiver.internal/sync", ok},
	} {
		dns := newDNS()
		g := &netguard.Guard{Allow: mustAllow(t, tc.allow), Resolver: dns}
		u, err := g.CheckURL(t.Context(), tc.url)
		var got string
		switch {
		case err == nil:
			got = ok
			if u == nil || u.String() == "" {
				t.Errorf("CheckURL(%q) returned no URL", tc.url)
			}
		case errors.Is(err, netguard.ErrDestinationNotAllowed):
			got = refused
			if err.Error() != "destination not allowed" {
				t.Errorf("CheckURL(%q) = %q: a refusal says nothing else", tc.url, err)
			}
		case errors.Is(err, netguard.ErrInvalidURL):
			got = invalid
			if host := strings.TrimPrefix(tc.url, "http://"); len(host) > 8 && strings.Contains(err.Error(), host) {
				t.Errorf("CheckURL(%q) = %q echoes the URL", tc.url, err)
			}
		default:
			t.Errorf("CheckURL(%q) = %v, neither invalid nor refused", tc.url, err)
			continue
		}
		if got != tc.want {
			t.Errorf("allow %q: CheckURL(%q) = %v, want %s", tc.allow, tc.url, err, tc.want)
		}
		if _, err := netip.ParseAddr(strings.Trim(hostOf(tc.url), "[]")); err == nil && dns.lookups.Load() != 0 {
			t.Errorf("CheckURL(%q) resolved an address literal", tc.url)
		}
	}
}

func hostOf(raw string) string {
	_, rest, _ := strings.Cut(raw, "://")
	host, _, _ := strings.Cut(rest, "/")
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return host
}

// firstBytes accepts on ln and sends the first byte of each connection.
func firstBytes(t *testing.T, ln net.Listener) <-chan byte {
	t.Helper()
	ch := make(chan byte, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b, err := bufio.NewReader(c).ReadByte()
				if err == nil {
					ch <- b
				}
			}()
		}
	}()
	return ch
}

// The guarded client refuses loopback at dial time, before connecting: the
// listener's first connection is the probe made after the refusals.
func TestDialRefusedBeforeConnecting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := firstBytes(t, ln)
	port := ln.Addr().(*net.TCPAddr).Port
	c := (&netguard.Guard{}).Client(5 * time.Second)
	for _, u := range []string{
		"http://" + ln.Addr().String() + "/metrics",
		"http://[::ffff:127.0.0.1]:" + strconv.Itoa(port) + "/",
		"http://0.0.0.0:" + strconv.Itoa(port) + "/",
	} {
		res, err := c.Post(u, "application/json", strings.NewReader(`{}`))
		if err == nil {
			res.Body.Close()
			t.Fatalf("POST %s answered %d", u, res.StatusCode)
		}
		if !errors.Is(err, netguard.ErrDestinationNotAllowed) {
			t.Fatalf("POST %s: %v, want ErrDestinationNotAllowed", u, err)
		}
	}
	probe, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	if _, err := probe.Write([]byte("p")); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		if b != 'p' {
			t.Fatalf("the listener got %q first: the guarded client connected", b)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the probe never arrived")
	}
}

// The dial-time check judges the address a name resolves to when dialed,
// whatever the URL says: here the system's localhost (from /etc/hosts).
func TestDialChecksResolvedAddress(t *testing.T) {
	requireHostsLocalhost(t)
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		t.Error("the receiver was called")
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	_, err := (&netguard.Guard{}).Client(5 * time.Second).Get("http://localhost:" + port + "/")
	if !errors.Is(err, netguard.ErrDestinationNotAllowed) {
		t.Fatalf("GET localhost: %v, want ErrDestinationNotAllowed", err)
	}
}

func TestAllowListLetsLocalReceiverThrough(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	urls := map[string]string{"127.0.0.1/32": srv.URL + "/hook"}
	if hostsLocalhost() {
		// An allow-listed name is dialed whatever it resolves to.
		urls["localhost"] = "http://localhost:" + port + "/hook"
	}
	for allow, u := range urls {
		res, err := (&netguard.Guard{Allow: mustAllow(t, allow)}).Client(5*time.Second).Post(u, "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatalf("allow %s: POST %s: %v", allow, u, err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNoContent {
			t.Fatalf("allow %s: status %d", allow, res.StatusCode)
		}
	}
	if int(hits.Load()) != len(urls) {
		t.Fatalf("receiver got %d requests, want %d", hits.Load(), len(urls))
	}
}

// A 3xx is the answer, not a pointer to follow: the target, allow-listed
// like the redirecting receiver, sees nothing.
func TestRedirectsAreNotFollowed(t *testing.T) {
	var targetHits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { targetHits.Add(1) }))
	defer target.Close()
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		redirector := httptest.NewServer(http.RedirectHandler(target.URL+"/elsewhere", code))
		c := (&netguard.Guard{Allow: mustAllow(t, "127.0.0.1/32")}).Client(5 * time.Second)
		res, err := c.Post(redirector.URL, "application/json", strings.NewReader(`{}`))
		redirector.Close()
		if err != nil {
			t.Fatalf("%d: %v", code, err)
		}
		res.Body.Close()
		if res.StatusCode != code {
			t.Fatalf("status %d, want the redirect itself (%d)", res.StatusCode, code)
		}
	}
	if targetHits.Load() != 0 {
		t.Fatalf("the redirect target got %d requests", targetHits.Load())
	}
}

func TestTransportUsesNoProxy(t *testing.T) {
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:1")
	t.Setenv("HTTPS_PROXY", "http://127.0.0.1:1")
	if tr := (&netguard.Guard{}).Transport(); tr.Proxy != nil {
		t.Fatal("the guarded transport has a proxy")
	}
}

// hostsLocalhost reports whether /etc/hosts names localhost: then resolving
// it never leaves the machine.
func hostsLocalhost() bool {
	b, err := os.ReadFile("/etc/hosts")
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(strings.SplitN(line, "#", 2)[0])
		if len(f) > 1 && strings.HasPrefix(f[0], "127.") {
			for _, name := range f[1:] {
				if name == "localhost" {
					return true
				}
			}
		}
	}
	return false
}

func requireHostsLocalhost(t *testing.T) {
	t.Helper()
	if !hostsLocalhost() {
		t.Skip("/etc/hosts does not map localhost: resolving it could reach DNS")
	}
}
