package devstack

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// workerTokenKey returns the queue's worker token signing key and its
// public key under dir, creating the pair on first use: the queue signs
// worker tokens with the first, queue and finops trust the second
// (ECHOPILOT_JWT_PUBLIC_KEYS).
func workerTokenKey(dir string) (keyFile, pubFile string, err error) {
	keyFile, pubFile = filepath.Join(dir, "worker-token.key"), filepath.Join(dir, "worker-token.pub")
	_, kerr := os.Stat(keyFile)
	_, perr := os.Stat(pubFile)
	if kerr == nil && perr == nil {
		return keyFile, pubFile, nil
	}
	if !errors.Is(kerr, os.ErrNotExist) && kerr != nil {
		return "", "", fmt.Errorf("worker token key: %w", kerr)
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("worker token key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", fmt.Errorf("worker token key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", "", fmt.Errorf("worker token key: %w", err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return "", "", fmt.Errorf("worker token key: %w", err)
	}
	if err := os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		return "", "", fmt.Errorf("worker token key: %w", err)
	}
	return keyFile, pubFile, nil
}
