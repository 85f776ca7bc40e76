package tlsconfig

import (
	"context"
	"crypto/x509"
	"net/url"
	"strings"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// A service's certificate names it with one URI SAN,
// spiffe://echopilot/service/<name> (SPIFFE's shape, so a SPIFFE issuer
// can mint them). DNS SANs are not read as identities: they name hosts,
// and a certificate for a host must not double as a service's.
const (
	trustDomain = "echopilot"
	servicePath = "/service/"
)

// ServiceURI is the URI SAN naming service name.
func ServiceURI(name string) *url.URL {
	return &url.URL{Scheme: "spiffe", Host: trustDomain, Path: servicePath + name}
}

// ServiceName returns the service cert names, "" when it names none or
// more than one.
func ServiceName(cert *x509.Certificate) string {
	found := ""
	for _, u := range cert.URIs {
		if u.Scheme != "spiffe" || u.Host != trustDomain {
			continue
		}
		name, ok := strings.CutPrefix(u.Path, servicePath)
		if !ok || name == "" || strings.Contains(name, "/") {
			continue
		}
		if found != "" && found != name {
			return ""
		}
		found = name
	}
	return found
}

// PeerService returns the service named by the verified client
// certificate of the call in ctx; "" when the connection is not TLS, or
// its client presented no certificate that chains to the CA bundle.
func PeerService(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return ""
	}
	// The leaf of a verified chain, not PeerCertificates: those are only
	// what the client sent.
	return ServiceName(info.State.VerifiedChains[0][0])
}
