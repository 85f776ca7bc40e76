package service

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/echopilot/echopilot/platform/config"
	"github.com/echopilot/echopilot/platform/tlsconfig"
)

// TLS holds the transport settings shared by the services and the
// gateway's backend connections.
type TLS struct {
	CertFile, KeyFile, CAFile string
	ClientAuth                string
	ReloadInterval            time.Duration
}

// BindTLS registers the TLS settings of a service on l.
func BindTLS(l *config.Loader, t *TLS) {
	bindTLS(l, t, "PEM certificate: the gRPC server serves TLS with it, and presents it to peers that ask for a client certificate (re-read when it changes)")
	l.String(&t.ClientAuth, "tls-client-auth", "ECHOPILOT_TLS_CLIENT_AUTH", "none",
		"client certificates: none; optional (verified when given); or require (mutual TLS). Unless none, a service token is honored only from a peer whose certificate names the same service")
}

// BindTLSClient registers the TLS settings of a binary that only dials
// (the gateway's backend connections).
func BindTLSClient(l *config.Loader, t *TLS) {
	bindTLS(l, t, "PEM client certificate presented to backends that ask for one (mutual TLS; re-read when it changes)")
}

func bindTLS(l *config.Loader, t *TLS, certUsage string) {
	l.String(&t.CertFile, "tls-cert-file", "ECHOPILOT_TLS_CERT_FILE", "", certUsage)
	l.String(&t.KeyFile, "tls-key-file", "ECHOPILOT_TLS_KEY_FILE", "", "PEM private key of --tls-cert-file")
	l.String(&t.CAFile, "tls-ca-file", "ECHOPILOT_TLS_CA_FILE", "",
		"PEM CA bundle: connections to peers use TLS verified against it, and client certificates are verified against it (re-read when it changes); empty: peers are dialed in plaintext")
	l.Duration(&t.ReloadInterval, "tls-reload-interval", "ECHOPILOT_TLS_RELOAD_INTERVAL", tlsconfig.DefaultInterval,
		"how often, at most, handshakes look at the TLS files again")
}

// Transport is the loaded TLS settings: what the gRPC server listens with
// and what clients dial with.
type Transport struct {
	// Server is nil when the server serves plaintext.
	Server credentials.TransportCredentials
	// ClientAuth is what the server asks of its clients.
	ClientAuth tlsconfig.ClientAuth
	client     credentials.TransportCredentials // nil: plaintext
	files      *tlsconfig.Reloader              // nil: plaintext
}

// ExpiryGauge reports when the certificate this process presents expires
// (Unix seconds; 0 without one), read at every scrape so a rotation shows
// at once. Registered with or without TLS, so one alert rule serves both.
func (tr *Transport) ExpiryGauge() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "echopilot_tls_certificate_expiry_timestamp_seconds",
		Help: "When the TLS certificate this process presents (server, and client to its peers) expires, in Unix seconds; 0 without one.",
	}, func() float64 {
		if tr == nil || tr.files == nil || !tr.files.HasCertificate() {
			return 0
		}
		return float64(tr.files.NotAfter().Unix())
	})
}

// Open loads the files. Without any file set it is plaintext both ways.
func (t TLS) Open(log *zap.Logger) (*Transport, error) {
	auth, err := tlsconfig.ParseClientAuth(t.ClientAuth)
	if err != nil {
		return nil, err
	}
	if t.CertFile == "" && t.KeyFile == "" && t.CAFile == "" {
		if auth != tlsconfig.NoClientCert {
			return nil, errors.New("--tls-client-auth needs --tls-cert-file, --tls-key-file and --tls-ca-file")
		}
		return &Transport{}, nil
	}
	r, err := tlsconfig.New(tlsconfig.Files{CertFile: t.CertFile, KeyFile: t.KeyFile, CAFile: t.CAFile},
		tlsconfig.Options{Interval: t.ReloadInterval, Log: log})
	if err != nil {
		return nil, err
	}
	tr := &Transport{ClientAuth: auth, files: r}
	if r.HasCertificate() {
		if tr.Server, err = r.ServerCredentials(auth); err != nil {
			return nil, err
		}
	} else if auth != tlsconfig.NoClientCert {
		return nil, errors.New("--tls-client-auth needs --tls-cert-file and --tls-key-file")
	}
	if t.CAFile != "" {
		tr.client = r.ClientCredentials()
	}
	return tr, nil
}

// DialOption is the transport of connections to peers: TLS when a CA
// bundle is set, else plaintext.
func (tr *Transport) DialOption() grpc.DialOption {
	if tr == nil || tr.client == nil {
		return grpc.WithTransportCredentials(insecure.NewCredentials())
	}
	return grpc.WithTransportCredentials(tr.client)
}

// BindsServicePeers reports whether service tokens must come from a peer
// whose verified certificate names the same service: whenever the server
// verifies client certificates.
func (tr *Transport) BindsServicePeers() bool {
	return tr != nil && tr.ClientAuth != tlsconfig.NoClientCert
}

func (tr *Transport) String() string {
	switch {
	case tr == nil || (tr.Server == nil && tr.client == nil):
		return "plaintext"
	case tr.Server == nil:
		return "tls client"
	}
	return fmt.Sprintf("tls (client certificates: %s)", [...]string{"none", "optional", "required"}[tr.ClientAuth])
}
