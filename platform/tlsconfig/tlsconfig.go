// Package tlsconfig builds the TLS settings of EchoPilot's gRPC servers and
// clients from PEM files that are re-read when they change, so a rotated
// certificate (cert-manager, a Kubernetes Secret) takes effect on the next
// handshake without a restart.
package tlsconfig

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/credentials"
)

// DefaultInterval is how often, at most, the files are looked at again.
const DefaultInterval = 5 * time.Second

// Files names the PEM files. CertFile and KeyFile go together; CAFile is
// the bundle peers' certificates are verified against (the system roots
// for a client when empty).
type Files struct {
	CertFile, KeyFile, CAFile string
}

// Options tune a Reloader.
type Options struct {
	// Interval between looks at the files, on handshakes (0: DefaultInterval).
	Interval time.Duration
	// Log hears of reloads and of reloads that failed (nil: none).
	Log *zap.Logger
}

// material is one consistent set of loaded files.
type material struct {
	cert            *tls.Certificate // nil without CertFile
	pool            *x509.CertPool   // nil without CAFile
	certPEM, keyPEM []byte
	caPEM           []byte
}

// Reloader holds the last good certificate and CA pool and replaces them
// when the files change. A change that does not load (a half-written file,
// a key that does not match) keeps the last good pair, is logged and
// counted, and is tried again at the next look.
type Reloader struct {
	files    Files
	interval time.Duration
	log      *zap.Logger

	cur       atomic.Pointer[material]
	nextCheck atomic.Int64 // unix nanoseconds
	mu        sync.Mutex   // one reload at a time
	lastErr   string       // under mu: the failure last reported, not repeated every look
	reloads   atomic.Int64
	failures  atomic.Int64
}

// New loads the files once; it fails when they do not load, since a
// service must not start without the certificate it was given.
func New(files Files, opt Options) (*Reloader, error) {
	if (files.CertFile == "") != (files.KeyFile == "") {
		return nil, errors.New("tls: a certificate file and a key file go together")
	}
	if files.CertFile == "" && files.CAFile == "" {
		return nil, errors.New("tls: neither a certificate nor a CA file")
	}
	r := &Reloader{files: files, interval: opt.Interval, log: opt.Log}
	if r.interval <= 0 {
		r.interval = DefaultInterval
	}
	if r.log == nil {
		r.log = zap.NewNop()
	}
	m, err := load(files, nil)
	if err != nil {
		return nil, err
	}
	r.cur.Store(m)
	r.nextCheck.Store(time.Now().Add(r.interval).UnixNano())
	return r, nil
}

// Reloads counts changes of the files that took effect.
func (r *Reloader) Reloads() int64 { return r.reloads.Load() }

// Failures counts changes of the files that did not load (each distinct
// failure once, however many looks see it).
func (r *Reloader) Failures() int64 { return r.failures.Load() }

// NotAfter is when the certificate in use expires, the files re-read
// first if due (zero without a certificate).
func (r *Reloader) NotAfter() time.Time {
	m := r.current()
	if m.cert == nil {
		return time.Time{}
	}
	leaf := m.cert.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(m.cert.Certificate[0]); err != nil {
			return time.Time{}
		}
	}
	return leaf.NotAfter
}

// HasCertificate reports whether a certificate and key were configured.
func (r *Reloader) HasCertificate() bool { return r.files.CertFile != "" }

// current returns the material, re-reading the files when the interval has
// passed since the last look.
func (r *Reloader) current() *material {
	now := time.Now()
	if now.UnixNano() < r.nextCheck.Load() || !r.mu.TryLock() {
		// Another handshake is looking already: use what is loaded.
		return r.cur.Load()
	}
	defer r.mu.Unlock()
	r.nextCheck.Store(now.Add(r.interval).UnixNano())
	old := r.cur.Load()
	m, err := load(r.files, old)
	switch {
	case err != nil:
		if err.Error() != r.lastErr {
			r.lastErr = err.Error()
			r.failures.Add(1)
			r.log.Error("TLS files changed but do not load; keeping the previous ones", zap.Error(err))
		}
	case m != old:
		r.lastErr = ""
		r.reloads.Add(1)
		r.cur.Store(m)
		r.log.Info("TLS files reloaded", zap.String("cert_file", r.files.CertFile), zap.String("ca_file", r.files.CAFile))
	}
	return r.cur.Load()
}

// load reads the files and parses what differs from prev (nil: all);
// it returns prev itself when nothing changed. Comparing the bytes rather
// than mtimes sees a Kubernetes Secret's symlink swap and same-second
// rewrites alike.
func load(f Files, prev *material) (*material, error) {
	m := &material{}
	if prev != nil {
		*m = *prev
	}
	changed := prev == nil
	if f.CertFile != "" {
		certPEM, err := os.ReadFile(f.CertFile)
		if err != nil {
			return nil, fmt.Errorf("tls: read certificate: %w", err)
		}
		keyPEM, err := os.ReadFile(f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: read key: %w", err)
		}
		if prev == nil || !bytes.Equal(certPEM, prev.certPEM) || !bytes.Equal(keyPEM, prev.keyPEM) {
			pair, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				return nil, fmt.Errorf("tls: load %s and %s: %w", f.CertFile, f.KeyFile, err)
			}
			m.cert, m.certPEM, m.keyPEM, changed = &pair, certPEM, keyPEM, true
		}
	}
	if f.CAFile != "" {
		caPEM, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls: read CA bundle: %w", err)
		}
		if prev == nil || !bytes.Equal(caPEM, prev.caPEM) {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(caPEM) {
				return nil, fmt.Errorf("tls: %s holds no PEM certificate", f.CAFile)
			}
			m.pool, m.caPEM, changed = pool, caPEM, true
		}
	}
	if !changed {
		return prev, nil
	}
	return m, nil
}

// ClientAuth says whether a server asks its clients for certificates.
type ClientAuth int

const (
	// NoClientCert asks for none (TLS only).
	NoClientCert ClientAuth = iota
	// VerifyClientCertIfGiven verifies a certificate a client presents
	// against the CA bundle, and admits clients without one (edge workers,
	// which prove themselves with their token alone).
	VerifyClientCertIfGiven
	// RequireClientCert is mutual TLS: no certificate from the CA, no
	// connection.
	RequireClientCert
)

// ParseClientAuth reads "none", "optional" or "require".
func ParseClientAuth(s string) (ClientAuth, error) {
	switch s {
	case "", "none":
		return NoClientCert, nil
	case "optional":
		return VerifyClientCertIfGiven, nil
	case "require":
		return RequireClientCert, nil
	}
	return 0, fmt.Errorf("tls client auth %q: want none, optional or require", s)
}

// ServerConfig is a server's TLS 1.2+ configuration. Every handshake gets
// the current certificate and, for client certificates, the current CA
// pool.
func (r *Reloader) ServerConfig(auth ClientAuth) (*tls.Config, error) {
	if !r.HasCertificate() {
		return nil, errors.New("tls: a server needs a certificate and key file")
	}
	if auth != NoClientCert && r.files.CAFile == "" {
		return nil, errors.New("tls: verifying client certificates needs a CA file")
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m := r.current()
			cfg := &tls.Config{
				MinVersion:   tls.VersionTLS12,
				Certificates: []tls.Certificate{*m.cert},
				NextProtos:   []string{"h2"},
			}
			switch auth {
			case VerifyClientCertIfGiven:
				cfg.ClientAuth, cfg.ClientCAs = tls.VerifyClientCertIfGiven, m.pool
			case RequireClientCert:
				cfg.ClientAuth, cfg.ClientCAs = tls.RequireAndVerifyClientCert, m.pool
			}
			return cfg, nil
		},
	}, nil
}

// ClientConfig is a client's TLS 1.2+ configuration as of now: the current
// CA pool (nil: the system roots) and, when a certificate is configured,
// the current one for servers that ask (GetClientCertificate reloads it).
// A long-lived client should use ClientCredentials, which takes the CA
// pool afresh on every handshake.
func (r *Reloader) ClientConfig() *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: r.current().pool}
	if r.HasCertificate() {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return r.current().cert, nil
		}
	}
	return cfg
}

// ServerCredentials are gRPC server transport credentials.
func (r *Reloader) ServerCredentials(auth ClientAuth) (credentials.TransportCredentials, error) {
	cfg, err := r.ServerConfig(auth)
	if err != nil {
		return nil, err
	}
	return credentials.NewTLS(cfg), nil
}

// ClientCredentials are gRPC client transport credentials that build the
// TLS configuration on each handshake, so a rotated CA bundle is trusted
// without re-dialing.
func (r *Reloader) ClientCredentials() credentials.TransportCredentials {
	return &clientCreds{r: r, TransportCredentials: credentials.NewTLS(r.ClientConfig())}
}

type clientCreds struct {
	credentials.TransportCredentials // Info, and the server side it never uses
	r                                *Reloader
	serverName                       string
}

func (c *clientCreds) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	cfg := c.r.ClientConfig()
	cfg.ServerName = c.serverName
	return credentials.NewTLS(cfg).ClientHandshake(ctx, authority, conn)
}

func (c *clientCreds) Clone() credentials.TransportCredentials {
	return &clientCreds{r: c.r, TransportCredentials: c.TransportCredentials.Clone(), serverName: c.serverName}
}

// OverrideServerName is deprecated in gRPC but part of the interface.
func (c *clientCreds) OverrideServerName(name string) error {
	c.serverName = name
	return nil
}
