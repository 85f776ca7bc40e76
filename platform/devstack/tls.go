package devstack

import (
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/echopilot/echopilot/platform/tlsconfig"
	"github.com/echopilot/echopilot/platform/tlsconfig/devca"
)

// clientName is the identity of devstack's own certificate: its health
// checks, and tests that call the services directly.
const clientName = "devstack"

// TLS is a stack's local CA and the certificates it issued.
type TLS struct {
	Dir    string
	CAFile string
	certs  map[string]devca.Paths
	client *tlsconfig.Reloader
}

// issueTLS makes a fresh CA under dir and a certificate for each name, for
// 127.0.0.1, ::1, localhost and the service's bare name (as deployed
// certificates do: a service dials itself by it) and naming the service
// (tlsconfig.ServiceURI).
func issueTLS(dir string, names []string) (*TLS, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tls dir: %w", err)
	}
	ca, err := devca.New("EchoPilot devstack CA", 30*24*time.Hour)
	if err != nil {
		return nil, err
	}
	t := &TLS{Dir: dir, certs: map[string]devca.Paths{}}
	if t.CAFile, err = ca.WriteCA(dir); err != nil {
		return nil, err
	}
	for _, name := range append(names, clientName) {
		p, err := ca.WriteLeaf(dir, name, devca.Leaf{
			Service: name, Hosts: []string{"127.0.0.1", "::1", "localhost", name}, ValidFor: 30 * 24 * time.Hour,
		})
		if err != nil {
			return nil, err
		}
		t.certs[name] = p
	}
	cp := t.certs[clientName]
	if t.client, err = tlsconfig.New(tlsconfig.Files{CertFile: cp.Cert, KeyFile: cp.Key, CAFile: t.CAFile}, tlsconfig.Options{}); err != nil {
		return nil, err
	}
	return t, nil
}

// Files are the certificate, key and CA bundle issued to process name
// (a service, "gateway" or "devstack"), for tests that act as it.
func (t *TLS) Files(name string) tlsconfig.Files {
	p := t.certs[name]
	return tlsconfig.Files{CertFile: p.Cert, KeyFile: p.Key, CAFile: t.CAFile}
}

// env is the TLS settings of process name; clientAuth is empty for a
// process without a gRPC server (the gateway).
func (t *TLS) env(name, clientAuth string) []string {
	if t == nil {
		return nil
	}
	p := t.certs[name]
	env := []string{"ECHOPILOT_TLS_CERT_FILE=" + p.Cert, "ECHOPILOT_TLS_KEY_FILE=" + p.Key, "ECHOPILOT_TLS_CA_FILE=" + t.CAFile}
	if clientAuth != "" {
		env = append(env, "ECHOPILOT_TLS_CLIENT_AUTH="+clientAuth)
	}
	return env
}

// DialOption is how to reach the stack's services: TLS with devstack's
// own certificate (which names service "devstack", so a service token of
// another service is refused over it), or plaintext without TLS.
func (s *Stack) DialOption() grpc.DialOption {
	if s.TLS == nil {
		return grpc.WithTransportCredentials(insecure.NewCredentials())
	}
	return grpc.WithTransportCredentials(s.TLS.client.ClientCredentials())
}
