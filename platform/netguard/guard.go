package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"syscall"
	"time"
)

// ErrInvalidURL is a URL that is not an absolute http(s) URL with a host;
// the wrapping error's text says what is wrong, without echoing the URL.
var ErrInvalidURL = errors.New("invalid url")

// MaxURLLength bounds the URLs CheckURL accepts.
const MaxURLLength = 2048

// Timeouts of the guarded client.
const (
	lookupTimeout  = 5 * time.Second  // CheckURL's resolution
	dialTimeout    = 10 * time.Second // one connection
	defaultTimeout = 30 * time.Second // a whole request, when Client is given none
)

// Resolver looks up a host's addresses; *net.Resolver is one. Tests pass a
// fake, so that none depends on DNS.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Guard checks requests to URLs tenants chose. The zero value refuses every
// destination that is not public and resolves with net.DefaultResolver.
type Guard struct {
	Allow    AllowList
	Resolver Resolver // nil: net.DefaultResolver
}

// CheckURL vets a URL when a tenant registers it: an absolute http or https
// URL without credentials, whose host is an allowed address, an allow-listed
// name, or a name all of whose addresses are allowed. Malformed URLs are
// ErrInvalidURL. Refused ones are ErrDestinationNotAllowed, and so are names
// that do not resolve: from outside, an internal name and a missing one look
// the same.
func (g *Guard) CheckURL(ctx context.Context, raw string) (*url.URL, error) {
	u, err := parseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalidURL, err)
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		if !Allowed(ip, g.Allow) {
			return nil, ErrDestinationNotAllowed
		}
		return u, nil
	}
	if g.Allow.AllowsHost(host) {
		return u, nil
	}
	var r Resolver = net.DefaultResolver
	if g.Resolver != nil {
		r = g.Resolver
	}
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return nil, ErrDestinationNotAllowed
	}
	for _, ip := range addrs {
		if !Allowed(ip, g.Allow) {
			return nil, ErrDestinationNotAllowed
		}
	}
	return u, nil
}

func parseURL(raw string) (*url.URL, error) {
	if len(raw) > MaxURLLength {
		return nil, fmt.Errorf("longer than %d bytes", MaxURLLength)
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, errors.New("not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, errors.New("the scheme must be http or https")
	case u.Opaque != "" || u.Host == "":
		return nil, errors.New("the URL must be absolute, with a host")
	case u.User != nil:
		return nil, errors.New("credentials in the URL are not allowed")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, errors.New("the port must be 1-65535")
		}
	}
	host := u.Hostname()
	if _, err := netip.ParseAddr(host); err == nil {
		return u, nil
	}
	if err := checkHostName(host); err != nil {
		return nil, err
	}
	return u, nil
}

// Client returns an http.Client over Transport that follows no redirect: a
// 3xx comes back as the response, which callers count as a failure like any
// other non-2xx (a redirect could lead anywhere registration did not check).
// timeout bounds a whole request; 0 means 30 seconds.
func (g *Guard) Client(timeout time.Duration) *http.Client {
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	return &http.Client{
		Transport:     g.Transport(),
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Transport returns an http.Transport whose every connection is checked at
// dial time, on the address actually connected to (after resolution, so a
// name that changed its answer since registration gains nothing), and that
// uses no proxy (a proxy would dial for us, past the check). Allow-listed
// host names are dialed without the check.
func (g *Guard) Transport() *http.Transport {
	allow := g.Allow
	guarded := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second, Control: dialControl(allow)}
	trusted := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if host, _, err := net.SplitHostPort(addr); err == nil && allow.AllowsHost(host) {
				return trusted.DialContext(ctx, network, addr)
			}
			return guarded.DialContext(ctx, network, addr)
		},
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           100,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ResponseHeaderTimeout:  defaultTimeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
}

// dialControl is a net.Dialer Control hook: it runs once the socket exists
// and before it connects, with the resolved address.
func dialControl(allow AllowList) func(network, address string, c syscall.RawConn) error {
	return func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil || !Allowed(ap.Addr(), allow) {
			return ErrDestinationNotAllowed
		}
		return nil
	}
}
