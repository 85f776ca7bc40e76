package service

import (
	"strings"
	"testing"

	"github.com/echopilot/echopilot/platform/identity"
)

func TestIsLoopbackAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:9101": true, "127.8.9.10:1": true, "[::1]:9101": true, "localhost:9101": true,
		":9101": false, "0.0.0.0:9101": false, "[::]:9101": false, "10.0.0.5:9101": false,
		"192.168.1.2:80": false, "example.com:9101": false, "[::ffff:10.0.0.1]:1": false, "127.0.0.1": false, "": false,
	} {
		if got := IsLoopbackAddr(addr); got != want {
			t.Errorf("IsLoopbackAddr(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestCheckAuthExposure(t *testing.T) {
	bound := Config{Issuer: "https://idp.example", Audience: "echopilot"}
	with := func(c Config, f func(*Config)) Config { f(&c); return c }
	cases := []struct {
		name      string
		cfg       Config
		mode      identity.Mode
		inProcess bool
		refused   string // part of the error, "" when allowed
	}{
		{"optional on loopback", Config{GRPCAddr: "127.0.0.1:9101"}, identity.ModeOptional, false, ""},
		{"optional on every interface", Config{GRPCAddr: ":9101"}, identity.ModeOptional, false, "not a loopback address"},
		{"optional on a private address", Config{GRPCAddr: "10.1.2.3:9101"}, identity.ModeOptional, false, "not a loopback address"},
		{"optional on the network, allowed explicitly", Config{GRPCAddr: ":9101", AllowOptionalAuthOnNetwork: true}, identity.ModeOptional, false, ""},
		{"optional in process", Config{GRPCAddr: ":9101"}, identity.ModeOptional, true, ""},
		{"required with issuer and audience", with(bound, func(c *Config) { c.GRPCAddr = ":9101" }), identity.ModeRequired, false, ""},
		{"required without either", Config{GRPCAddr: ":9101"}, identity.ModeRequired, false, "ECHOPILOT_JWT_AUDIENCE"},
		{"required without an audience", Config{Issuer: "https://idp.example"}, identity.ModeRequired, false, "--allow-unbound-tokens"},
		{"required without an issuer", Config{Audience: "echopilot"}, identity.ModeRequired, true, "--allow-unbound-tokens"},
		{"required unbound, allowed explicitly", Config{AllowUnboundTokens: true}, identity.ModeRequired, false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := checkAuthExposure(tc.cfg, tc.mode, tc.inProcess)
			switch {
			case tc.refused == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.refused != "" && (err == nil || !strings.Contains(err.Error(), tc.refused)):
				t.Fatalf("err = %v, want a refusal mentioning %q", err, tc.refused)
			}
		})
	}
}
