package netguard_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/echopilot/echopilot/platform/netguard"
)

// A parsed allow-list prints in a form that parses to the same list, and a
// refused one names an entry.
func FuzzParseAllowList(f *testing.F) {
	for _, s := range []string{"127.0.0.1/32,receiver.internal", "10.0.0.1/8", "::ffff:127.0.0.1", "fe80::1%eth0", "*.x", "127.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := netguard.ParseAllowList(s)
		if err != nil {
			if !strings.Contains(err.Error(), "outbound allow-list entry") {
				t.Fatalf("error %q names no entry", err)
			}
			return
		}
		again, err := netguard.ParseAllowList(a.String())
		if err != nil || again.String() != a.String() {
			t.Fatalf("%q printed as %q, which parses to %q, %v", s, a, again, err)
		}
	})
}

// hostileDNS resolves every name to loopback.
type hostileDNS struct{}

func (hostileDNS) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
}

// Whatever the URL, with every name resolving to loopback, CheckURL accepts
// only well-formed http(s) URLs naming a public address, and its errors are
// one of the two kinds, never echoing the URL.
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{"http://127.0.0.1:9203/metrics", "https://93.184.216.34/x", "http://[::ffff:7f00:1]/", "http://0x7f000001/"} {
		f.Add(s)
	}
	g := &netguard.Guard{Resolver: hostileDNS{}}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := g.CheckURL(t.Context(), raw)
		switch {
		case err == nil:
			ip, perr := netip.ParseAddr(u.Hostname())
			if perr != nil || !netguard.Allowed(ip, netguard.AllowList{}) || (u.Scheme != "http" && u.Scheme != "https") ||
				u.User != nil || len(raw) > netguard.MaxURLLength {
				t.Fatalf("CheckURL(%q) accepted %v", raw, u)
			}
		case errors.Is(err, netguard.ErrDestinationNotAllowed):
			if err.Error() != "destination not allowed" {
				t.Fatalf("refusal %q says more", err)
			}
		case errors.Is(err, netguard.ErrInvalidURL):
			if len(raw) > 40 && strings.Contains(err.Error(), raw) {
				t.Fatalf("error %q echoes the URL", err)
			}
		default:
			t.Fatalf("CheckURL(%q) = %v", raw, err)
		}
	})
}
