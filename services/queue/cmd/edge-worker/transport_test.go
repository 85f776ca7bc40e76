package main

import (
	"io"
	"strings"
	"testing"
)

// The targets are data for the decision only: useTLS never dials, and no
// test here hands a non-loopback address to anything that would.
func TestUseTLS(t *testing.T) {
	const remote = "queue.example.com:443"
	for _, tc := range []struct {
		target   string
		mode     tlsMode
		insecure bool
		haveCA   bool
		want     bool
		refused  bool
	}{
		{target: "127.0.0.1:9104", mode: tlsAuto, want: false},
		{target: "localhost:9104", mode: tlsAuto, want: false},
		{target: "[::1]:9104", mode: tlsAuto, want: false},
		{target: "127.0.0.1:9104", mode: tlsAuto, haveCA: true, want: true},
		{target: "127.0.0.1:9104", mode: tlsOn, want: true},
		{target: remote, mode: tlsAuto, want: true},
		{target: "dns:///queue-headless:9104", mode: tlsAuto, want: true},
		{target: "10.0.0.7:9104", mode: tlsAuto, want: true},
		// A name that may well resolve to loopback is still remote: nothing is resolved.
		{target: "localhost.example.com:9104", mode: tlsAuto, want: true},
		{target: remote, mode: tlsOff, refused: true},
		{target: "192.168.1.10:9104", mode: tlsOff, refused: true},
		{target: remote, mode: tlsOff, insecure: true, want: false},
		{target: remote, mode: tlsAuto, insecure: true, want: false},
		{target: remote, mode: tlsOn, insecure: true, refused: true},
		{target: "127.0.0.1:9104", mode: tlsOff, want: false},
		{target: "unix:///run/queue.sock", mode: tlsOff, want: false},
	} {
		got, err := useTLS(tc.target, tc.mode, tc.insecure, tc.haveCA)
		if tc.refused {
			if err == nil {
				t.Errorf("useTLS(%q, %s, insecure=%v) = %v, want a refusal", tc.target, tc.mode, tc.insecure, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("useTLS(%q, %s, insecure=%v, ca=%v) = %v, %v; want %v", tc.target, tc.mode, tc.insecure, tc.haveCA, got, err, tc.want)
		}
	}
}

// run takes both transports from transportFor before it dials anything, so
// plaintext to a non-loopback queue or finops is refused there. The test
// asks transportFor only: it never hands run an address it could dial.
func TestPlaintextBeyondLoopbackRefusedBeforeDialling(t *testing.T) {
	for _, target := range []string{"192.0.2.1:9104", "queue.example.com:443", "dns:///queue-headless:9104"} {
		_, _, err := transportFor(Config{QueueTLS: tlsOff}, target)
		if err == nil || !strings.Contains(err.Error(), "--insecure") {
			t.Errorf("transportFor(%q) = %v, want the plaintext refusal", target, err)
		}
	}
	if _, secure, err := transportFor(Config{QueueTLS: tlsOff}, "127.0.0.1:9104"); err != nil || secure {
		t.Errorf("loopback plaintext: secure=%v, %v; want allowed", secure, err)
	}
}

func TestQueueTLSFlag(t *testing.T) {
	for args, want := range map[string]tlsMode{
		"":                 tlsAuto,
		"--queue-tls":      tlsOn,
		"--queue-tls=true": tlsOn,
		"--queue-tls=0":    tlsOff,
		"--queue-tls=auto": tlsAuto,
	} {
		var argv []string
		if args != "" {
			argv = []string{args}
		}
		cfg, err := parseConfig(argv, io.Discard)
		if err != nil || cfg.QueueTLS != want {
			t.Errorf("parseConfig(%q): QueueTLS = %q, %v; want %q", args, cfg.QueueTLS, err, want)
		}
	}
	if _, err := parseConfig([]string{"--queue-tls=sometimes"}, io.Discard); err == nil {
		t.Error("--queue-tls=sometimes was accepted")
	}
}
