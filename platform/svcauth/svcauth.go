// Package svcauth gives a platform service its own identity on calls to its
// peers: a bearer token of subject "service:<name>", tenant "default" and
// role "service" (see identity.Principal.ServiceName), attached to every
// call by one grpc credentials.PerRPCCredentials.
//
// A token comes from one of two sources: minted by the service itself from
// the HS256 secret (local runs), cached and renewed before it expires; or a
// file the deployment mounts and rotates (a token issued by the identity
// provider for this service alone), re-read when it changes.
package svcauth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/echopilot/echopilot/platform/identity"
)

// TokenSource returns the bearer token of the next call.
type TokenSource func(ctx context.Context) (string, error)

// Minted tokens live mintTTL and are renewed renewBefore their expiry, so a
// token in flight never expires on the way.
const (
	mintTTL     = 10 * time.Minute
	renewBefore = 2 * time.Minute
	// fileRecheck bounds how often a token file is stat'ed.
	fileRecheck = 5 * time.Second
)

// Minted mints service's identity from the HS256 secret and reuses the
// token until it nears expiry.
func Minted(secret []byte, service string) TokenSource {
	return MintedClaims(secret, identity.Claims{
		Subject: identity.ServiceSubject(service), TenantID: identity.DefaultTenant, Roles: []string{identity.RoleService},
	})
}

// MintedClaims mints tokens of claims from the HS256 secret, cached like
// Minted's (edge workers mint worker tokens this way).
func MintedClaims(secret []byte, claims identity.Claims) TokenSource {
	return cached(time.Now, func() (string, error) { return identity.MintHS256(secret, claims, mintTTL) })
}

// cached calls mint for a token valid mintTTL and reuses it until it is
// within renewBefore of its expiry.
func cached(clock func() time.Time, mint func() (string, error)) TokenSource {
	var (
		mu      sync.Mutex
		tok     string
		expires time.Time
	)
	return func(context.Context) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		now := clock()
		if tok != "" && now.Before(expires.Add(-renewBefore)) {
			return tok, nil
		}
		t, err := mint()
		if err != nil {
			return "", fmt.Errorf("mint service token: %w", err)
		}
		tok, expires = t, now.Add(mintTTL)
		return tok, nil
	}
}

// File reads the token in path, and again whenever its modification time
// or size changes (a rotated Secret or projected token volume), checking at
// most every few seconds. A file that turns unreadable keeps the last good
// token until it can be read again, so a rotation caught midway does not
// fail calls; the first read must succeed.
func File(path string) TokenSource { return file(path, time.Now) }

func file(path string, clock func() time.Time) TokenSource {
	var (
		mu      sync.Mutex
		tok     string
		mod     time.Time
		size    int64
		checked time.Time
	)
	return func(context.Context) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		now := clock()
		if tok != "" && now.Sub(checked) < fileRecheck {
			return tok, nil
		}
		checked = now
		fi, err := os.Stat(path)
		if err == nil && tok != "" && fi.ModTime().Equal(mod) && fi.Size() == size {
			return tok, nil
		}
		var raw []byte
		if err == nil {
			raw, err = os.ReadFile(path)
		}
		t := string(bytes.TrimSpace(raw))
		if err == nil && t == "" {
			err = errors.New("file is empty")
		}
		if err != nil {
			if tok != "" {
				return tok, nil
			}
			return "", fmt.Errorf("service token file: %w", err)
		}
		tok, mod, size = t, fi.ModTime(), fi.Size()
		return tok, nil
	}
}

// Unavailable is the source of a service that has no credential: every
// call fails with why.
func Unavailable(why string) TokenSource {
	err := errors.New(why)
	return func(context.Context) (string, error) { return "", err }
}

// Credentials attaches src's token to every call. The token is sent over
// plaintext connections too: transport security is the deployment's
// (a service mesh or the cluster network) until the services speak TLS.
func Credentials(src TokenSource) credentials.PerRPCCredentials { return perRPC{src} }

type perRPC struct{ src TokenSource }

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (p perRPC) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	tok, err := p.src(ctx)
	if err != nil {
		return nil, err
	}
	return map[string]string{identity.MDAuthorization: "Bearer " + tok}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (perRPC) RequireTransportSecurity() bool { return false }
