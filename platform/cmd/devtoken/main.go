// Command devtoken prints an HS256 token for local runs:
//
//	go run github.com/echopilot/echopilot/platform/cmd/devtoken --tenant acme --roles admin,user --sub alice --ttl 24h
//
// It signs with ECHOPILOT_JWT_HS256_SECRET, or with the contents of
// --secret-file (trailing newlines dropped).
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/echopilot/echopilot/platform/identity"
)

const envSecret = "ECHOPILOT_JWT_HS256_SECRET"

func main() {
	if err := run(os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("devtoken", flag.ContinueOnError)
	var (
		claims     identity.Claims
		roles      string
		audience   string
		ttl        time.Duration
		secretFile string
	)
	fs.StringVar(&claims.TenantID, "tenant", "", "tenant id of the token (required)")
	fs.StringVar(&roles, "roles", "", "comma-separated roles, e.g. admin,user")
	fs.StringVar(&claims.Subject, "sub", "dev", "subject")
	fs.StringVar(&claims.Issuer, "issuer", "", "iss claim, when the services check one")
	fs.StringVar(&audience, "audience", "", "aud claim, when the services check one")
	fs.DurationVar(&ttl, "ttl", 24*time.Hour, "lifetime of the token")
	fs.StringVar(&secretFile, "secret-file", "", "file holding the HS256 secret (default: $"+envSecret+")")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if claims.TenantID == "" {
		return errors.New("--tenant is required")
	}
	for r := range strings.SplitSeq(roles, ",") {
		if r = strings.TrimSpace(r); r != "" {
			claims.Roles = append(claims.Roles, r)
		}
	}
	if audience != "" {
		claims.Audience = []string{audience}
	}

	secret := []byte(getenv(envSecret))
	if secretFile != "" {
		b, err := os.ReadFile(secretFile)
		if err != nil {
			return err
		}
		secret = bytes.TrimRight(b, "\r\n")
	}
	if len(secret) == 0 {
		return fmt.Errorf("no secret: set %s or --secret-file", envSecret)
	}
	tok, err := identity.MintHS256(secret, claims, ttl)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}
