package main

import (
	"crypto/tls"
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/echopilot/echopilot/platform/netguard"
	"github.com/echopilot/echopilot/platform/tlsconfig"
)

// tlsMode is --queue-tls: auto (TLS unless the target is on loopback),
// true or false. Alone, --queue-tls means true, as when it was a bool.
type tlsMode string

const (
	tlsAuto tlsMode = "auto"
	tlsOn   tlsMode = "true"
	tlsOff  tlsMode = "false"
)

func (m *tlsMode) String() string   { return string(*m) }
func (m *tlsMode) IsBoolFlag() bool { return true }

func (m *tlsMode) Set(s string) error {
	if s == string(tlsAuto) {
		*m = tlsAuto
		return nil
	}
	on, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("want auto, true or false")
	}
	*m = tlsOff
	if on {
		*m = tlsOn
	}
	return nil
}

// useTLS decides how to reach target, before anything is dialed: TLS
// unless the target is on this machine, and plaintext beyond it only with
// --insecure (a worker's token must not cross a network in the clear).
func useTLS(target string, mode tlsMode, allowInsecure, haveCA bool) (bool, error) {
	local := isLoopbackTarget(target)
	switch {
	case mode == tlsOn:
		if allowInsecure {
			return false, fmt.Errorf("--queue-tls and --insecure contradict each other")
		}
		return true, nil
	case mode == tlsOff || allowInsecure:
		if !local && !allowInsecure {
			return false, fmt.Errorf("%s is not a loopback address: plaintext would send the token in the clear; "+
				"use TLS (the default) or pass --insecure", target)
		}
		return false, nil
	}
	// auto: a CA bundle given for the purpose means TLS even on loopback.
	return !local || haveCA, nil
}

// isLoopbackTarget reports whether a gRPC target ("host:port",
// "dns:///host:port", "unix:…") stays on this machine. Names other than
// localhost are not resolved: they count as remote.
func isLoopbackTarget(target string) bool {
	if strings.HasPrefix(target, "unix:") || strings.HasPrefix(target, "unix-abstract:") {
		return true
	}
	for _, scheme := range []string{"dns:///", "passthrough:///"} {
		target = strings.TrimPrefix(target, scheme)
	}
	return netguard.IsLoopbackHostPort(target)
}

// transportFor returns the transport credentials for target, and whether
// they are TLS.
func transportFor(cfg Config, target string) (credentials.TransportCredentials, bool, error) {
	on, err := useTLS(target, cfg.QueueTLS, cfg.Insecure, cfg.CAFile != "")
	if err != nil {
		return nil, false, err
	}
	if !on {
		return insecure.NewCredentials(), false, nil
	}
	if cfg.CAFile == "" && cfg.CertFile == "" {
		return credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12}), true, nil // the system roots
	}
	r, err := tlsconfig.New(tlsconfig.Files{CertFile: cfg.CertFile, KeyFile: cfg.KeyFile, CAFile: cfg.CAFile}, tlsconfig.Options{})
	if err != nil {
		return nil, false, err
	}
	return r.ClientCredentials(), true, nil
}
