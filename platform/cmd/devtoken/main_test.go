package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/echopilot/echopilot/platform/identity"
)

const secret = "0123456789abcdef0123456789abcdef"

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestRunPrintsAVerifiableToken(t *testing.T) {
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		args []string
		env  map[string]string
	}{
		"secret from env":  {[]string{"--tenant", "acme", "--roles", "admin, user", "--sub", "alice"}, map[string]string{envSecret: secret}},
		"secret from file": {[]string{"--tenant", "acme", "--roles", "admin,user,", "--sub", "alice", "--secret-file", file}, nil},
	}
	v, err := identity.NewVerifier(identity.VerifierConfig{HS256Secret: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			if err := run(tc.args, env(tc.env), &out); err != nil {
				t.Fatal(err)
			}
			p, err := v.Verify(context.Background(), strings.TrimSpace(out.String()))
			want := identity.Principal{Subject: "alice", Tenant: "acme", Roles: []string{"admin", "user"}}
			if err != nil || !reflect.DeepEqual(p, want) {
				t.Fatalf("token verifies as %+v, %v; want %+v", p, err, want)
			}
		})
	}
}

func TestRunRefuses(t *testing.T) {
	withSecret := env(map[string]string{envSecret: secret})
	cases := map[string]struct {
		args   []string
		getenv func(string) string
	}{
		"no tenant":      {[]string{"--roles", "admin"}, withSecret},
		"bad tenant":     {[]string{"--tenant", "Acme"}, withSecret},
		"no secret":      {[]string{"--tenant", "acme"}, env(nil)},
		"short secret":   {[]string{"--tenant", "acme"}, env(map[string]string{envSecret: "dev"})},
		"negative ttl":   {[]string{"--tenant", "acme", "--ttl", "-1h"}, withSecret},
		"stray argument": {[]string{"--tenant", "acme", "extra"}, withSecret},
		"missing file":   {[]string{"--tenant", "acme", "--secret-file", filepath.Join(t.TempDir(), "absent")}, withSecret},
	}
	for name, tc := range cases {
		var out bytes.Buffer
		if err := run(tc.args, tc.getenv, &out); err == nil {
			t.Errorf("%s: run succeeded, printed %q", name, out.String())
		}
	}
}
