// Package devca is a throwaway certificate authority for local runs and
// tests: `make run-tls`, the end-to-end suite and the TLS tests issue
// their certificates with it. Nothing in production uses it.
package devca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/echopilot/echopilot/platform/tlsconfig"
)

// CA signs leaf certificates.
type CA struct {
	Cert *x509.Certificate
	key  *ecdsa.PrivateKey
	// PEM is the CA certificate, the bundle peers trust.
	PEM []byte
}

// New makes a CA valid for validFor.
func New(name string, validFor time.Duration) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("devca: key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(validFor),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("devca: sign CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("devca: parse CA: %w", err)
	}
	return &CA{Cert: cert, key: key, PEM: pemBlock("CERTIFICATE", der)}, nil
}

// Leaf describes a certificate to issue.
type Leaf struct {
	// Service, when set, is named by the URI SAN tlsconfig.ServiceURI.
	Service string
	// Hosts are DNS names and IP addresses the certificate is valid for.
	Hosts    []string
	ValidFor time.Duration // 0: 24 hours
}

// Issue returns a certificate and its key as PEM, for both server and
// client use.
func (ca *CA) Issue(l Leaf) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("devca: key: %w", err)
	}
	if l.ValidFor <= 0 {
		l.ValidFor = 24 * time.Hour
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: l.Service},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(l.ValidFor),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if l.Service != "" {
		tmpl.URIs = append(tmpl.URIs, tlsconfig.ServiceURI(l.Service))
	}
	for _, h := range l.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("devca: sign %q: %w", l.Service, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("devca: marshal key: %w", err)
	}
	return pemBlock("CERTIFICATE", der), pemBlock("PRIVATE KEY", keyDER), nil
}

// Paths are where WriteLeaf put a certificate and its key.
type Paths struct{ Cert, Key string }

// WriteCA writes the CA bundle to dir/ca.pem and returns its path.
func (ca *CA) WriteCA(dir string) (string, error) {
	path := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(path, ca.PEM, 0o644); err != nil {
		return "", fmt.Errorf("devca: %w", err)
	}
	return path, nil
}

// WriteLeaf issues l and writes dir/<name>.pem and dir/<name>-key.pem (0600).
func (ca *CA) WriteLeaf(dir, name string, l Leaf) (Paths, error) {
	certPEM, keyPEM, err := ca.Issue(l)
	if err != nil {
		return Paths{}, err
	}
	p := Paths{Cert: filepath.Join(dir, name+".pem"), Key: filepath.Join(dir, name+"-key.pem")}
	if err := os.WriteFile(p.Key, keyPEM, 0o600); err != nil {
		return Paths{}, fmt.Errorf("devca: %w", err)
	}
	if err := os.WriteFile(p.Cert, certPEM, 0o644); err != nil {
		return Paths{}, fmt.Errorf("devca: %w", err)
	}
	return p, nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		panic(fmt.Sprintf("devca: crypto/rand failed: %v", err)) // crypto/rand does not fail on supported platforms
	}
	return n
}
