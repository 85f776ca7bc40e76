package identity

import (
	"context"
	"crypto/sha256"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	authv1 "github.com/echopilot/echopilot/gen/go/echopilot/auth/v1"
	"github.com/echopilot/echopilot/platform/apierr"
)

// scannerPattern is the documented format secret scanners match.
var scannerPattern = regexp.MustCompile(`^ep_live_[0-9A-HJKMNP-TV-Z]{26}_[A-Za-z0-9_-]{43}$`)

func newKey(t testing.TB) (id, raw string, hash [sha256.Size]byte) {
	t.Helper()
	id = ulid.Make().String()
	raw, hash, err := NewAPIKey(id)
	if err != nil {
		t.Fatal(err)
	}
	return id, raw, hash
}

func TestAPIKeyFormat(t *testing.T) {
	id, raw, hash := newKey(t)
	if !scannerPattern.MatchString(raw) || len(raw) != APIKeyLen || !IsAPIKey(raw) {
		t.Fatalf("key %q does not have the documented format", raw)
	}
	k, err := ParseAPIKey(raw)
	if err != nil || k.ID != id || k.Hash != hash {
		t.Fatalf("parse = %+v, %v", k, err)
	}
	_, raw2, _ := newKey(t)
	if raw2[len(APIKeyPrefix)+27:] == raw[len(APIKeyPrefix)+27:] {
		t.Fatal("two keys share a secret")
	}
	for _, bad := range []string{
		"", APIKeyPrefix, raw[:len(raw)-1], raw + "A",
		strings.Replace(raw, "ep_live_", "ep_test_", 1),
		APIKeyPrefix + strings.ToLower(id) + raw[34:], // a lower-case id
		raw[:34] + "-" + raw[35:],                     // no '_' after the id
		raw[:len(raw)-1] + "=",                        // not base64url
		raw[:34] + "_" + strings.Repeat("_", 43),      // non-zero padding bits: not canonical
	} {
		if _, err := ParseAPIKey(bad); err == nil {
			t.Errorf("ParseAPIKey(%q) accepted", bad)
		}
	}
	if _, _, err := NewAPIKey("not-a-ulid"); err == nil {
		t.Fatal("NewAPIKey took a malformed id")
	}
}

// fakeStore is the key store of the cache tests: a lookup counter in
// front of records that the test changes, as tenancy's would be.
type fakeStore struct {
	mu      sync.Mutex
	recs    map[string]APIKeyRecord
	lookups int
	down    bool
}

func (s *fakeStore) lookup(_ context.Context, id string, _ [sha256.Size]byte) (APIKeyRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lookups++
	if s.down {
		return APIKeyRecord{}, errors.New("connection refused")
	}
	r, ok := s.recs[id]
	if !ok {
		return APIKeyRecord{}, ErrAPIKeyNotFound
	}
	return r, nil
}

func (s *fakeStore) set(id string, r *APIKeyRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r == nil {
		delete(s.recs, id)
		return
	}
	s.recs[id] = *r
}

func (s *fakeStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lookups
}

func TestAPIKeyCache(t *testing.T) {
	st := &fakeStore{recs: map[string]APIKeyRecord{}}
	c := newAPIKeyCache(st.lookup)
	now := time.Unix(1_800_000_000, 0)
	c.now = func() time.Time { return now }
	ctx := t.Context()

	id, raw, hash := newKey(t)
	st.set(id, &APIKeyRecord{Tenant: "acme", Roles: []string{"billing"}, Secrets: []APIKeySecret{{Hash: hash[:]}}})
	p, err := c.verify(ctx, raw)
	if err != nil || p.Tenant != "acme" || p.APIKeyID != id || p.Subject != "apikey:"+id || p.Roles[0] != "billing" {
		t.Fatalf("verify = %+v, %v", p, err)
	}
	for range 5 {
		if _, err := c.verify(ctx, raw); err != nil {
			t.Fatal(err)
		}
	}
	if n := st.count(); n != 1 {
		t.Fatalf("%d lookups for six uses within the cache time, want 1", n)
	}

	// A wrong secret with the key's id: refused, and after a burst at
	// most one extra lookup per refetch interval however many guesses come.
	_, other, _ := newKey(t)
	wrong := raw[:len(APIKeyPrefix)+27] + other[len(APIKeyPrefix)+27:]
	for range 50 {
		_, err := c.verify(ctx, wrong)
		wantReason(t, err, ReasonTokenInvalid)
	}
	if n := st.count(); n != 1+apiKeyRefetchBurst {
		t.Fatalf("%d lookups after 50 wrong secrets, want %d", n, 1+apiKeyRefetchBurst)
	}
	if _, err := c.verify(ctx, raw); err != nil {
		t.Fatalf("the right secret is refused after guesses: %v", err)
	}

	// Rotation: the new secret works at once (its mismatch refetches), the
	// old one until its expiry.
	_, rotated, newHash := newKey(t)
	rotated = raw[:len(APIKeyPrefix)+27] + rotated[len(APIKeyPrefix)+27:]
	st.set(id, &APIKeyRecord{Tenant: "acme", Secrets: []APIKeySecret{{Hash: newHash[:]}, {Hash: hash[:], ExpireTime: now.Add(3 * time.Second)}}})
	now = now.Add(apiKeyRefetchEvery)
	if _, err := c.verify(ctx, rotated); err != nil {
		t.Fatalf("rotated secret refused: %v", err)
	}
	if _, err := c.verify(ctx, raw); err != nil {
		t.Fatalf("previous secret refused within its grace: %v", err)
	}
	now = now.Add(3 * time.Second)
	_, err = c.verify(ctx, raw)
	wantReason(t, err, ReasonTokenInvalid)

	// Revocation: refused once the cache time has passed, not before the
	// store says so.
	st.set(id, nil)
	now = now.Add(APIKeyCacheTTL)
	_, err = c.verify(ctx, rotated)
	wantReason(t, err, ReasonTokenInvalid)

	// An outage refuses with UNAVAILABLE, never on stale data.
	id2, raw2, hash2 := newKey(t)
	st.set(id2, &APIKeyRecord{Tenant: "acme", Secrets: []APIKeySecret{{Hash: hash2[:]}}})
	st.down = true
	_, err = c.verify(ctx, raw2)
	wantReason(t, err, ReasonKeyLookupUnavailable)

	// An expired key is refused whatever the store's record says.
	st.down = false
	st.set(id2, &APIKeyRecord{Tenant: "acme", ExpireTime: now, Secrets: []APIKeySecret{{Hash: hash2[:]}}})
	_, err = c.verify(ctx, raw2)
	wantReason(t, err, ReasonTokenInvalid)
}

func wantReason(t *testing.T, err error, reason string) {
	t.Helper()
	if apierr.Reason(err) != reason {
		t.Fatalf("got %v, want reason %s", err, reason)
	}
}

// Through the interceptor an API key is a principal like a JWT's: the same
// tenant rule, the same unverified counting when wrong, and read-only keys
// refused on writes.
func TestInterceptorAPIKeys(t *testing.T) {
	st := &fakeStore{recs: map[string]APIKeyRecord{}}
	k := newTestKeys(t)
	v, err := NewVerifier(VerifierConfig{HS256Secret: k.secret, APIKeys: st.lookup})
	if err != nil {
		t.Fatal(err)
	}
	id, raw, hash := newKey(t)
	st.set(id, &APIKeyRecord{Tenant: "acme", Secrets: []APIKeySecret{{Hash: hash[:]}}})
	roID, roRaw, roHash := newKey(t)
	st.set(roID, &APIKeyRecord{Tenant: "acme", ReadOnly: true, Secrets: []APIKeySecret{{Hash: roHash[:]}}})
	_, unknown, _ := newKey(t)

	rec := &recorder{}
	read := &authv1.Policy{Access: authv1.Access_ACCESS_READ}
	write := &authv1.Policy{Access: authv1.Access_ACCESS_WRITE}
	for _, tc := range []struct {
		name   string
		md     []string
		pol    *authv1.Policy
		code   codes.Code
		reason string
		tenant string // counted under
	}{
		{"bearer", []string{MDAuthorization, "Bearer " + raw}, write, codes.OK, ReasonSameTenant, "acme"},
		{"x-api-key", []string{MDAPIKey, raw}, write, codes.OK, ReasonSameTenant, "acme"},
		{"other tenant", []string{MDAPIKey, raw, MDTenant, "globex"}, read, codes.PermissionDenied, ReasonCrossTenantDenied, "acme"},
		{"read-only reads", []string{MDAPIKey, roRaw}, read, codes.OK, ReasonSameTenant, "acme"},
		{"read-only writes", []string{MDAPIKey, roRaw}, write, codes.PermissionDenied, ReasonReadOnlyKey, "acme"},
		{"unknown key", []string{MDAPIKey, unknown, MDTenant, "acme"}, read, codes.Unauthenticated, ReasonTokenInvalid, UnverifiedBucket},
		{"wrong secret", []string{MDAPIKey, raw[:35] + unknown[35:], MDTenant, "acme"}, read, codes.Unauthenticated, ReasonTokenInvalid, UnverifiedBucket},
		{"both headers", []string{MDAPIKey, raw, MDAuthorization, "Bearer " + raw}, read, codes.Unauthenticated, ReasonTokenInvalid, UnverifiedBucket},
		{"x-api-key not a key", []string{MDAPIKey, "hunter2"}, read, codes.Unauthenticated, ReasonTokenInvalid, UnverifiedBucket},
	} {
		t.Run(tc.name, func(t *testing.T) {
			md := metadata.Pairs(tc.md...)
			var p *Principal
			var tokErr error
			if raw, present, err := bearerToken(md); err != nil {
				tokErr = err
			} else if present {
				got, err := v.Verify(t.Context(), raw)
				if err != nil {
					tokErr = err
				} else {
					p = &got
				}
			}
			c, out := Decide(Input{Method: "/probe/M", Policy: tc.pol, Mode: ModeRequired, Principal: p, TokenErr: tokErr,
				Requested: requestedTenants(md, nil), Now: time.Now()})
			if out.Decision != nil {
				rec.Record(*out.Decision)
			}
			if code := status.Code(out.Err()); code != tc.code {
				t.Fatalf("code %v (%v), want %v", code, out.Err(), tc.code)
			}
			d := rec.take()
			if len(d) != 1 || d[0].Reason != tc.reason || d[0].CallerTenant != tc.tenant {
				t.Fatalf("decisions %+v, want reason %s counted under %s", d, tc.reason, tc.tenant)
			}
			if tc.code == codes.OK && (c.APIKeyID == "" || c.Tenant != "acme" || !c.Verified) {
				t.Fatalf("caller %+v", c)
			}
		})
	}
}

// Without a lookup a verifier refuses API keys, and never parses one as a
// JWT.
func TestVerifierWithoutAPIKeys(t *testing.T) {
	v := newTestKeys(t).verifier(t)
	_, raw, _ := newKey(t)
	_, err := v.Verify(t.Context(), raw)
	wantReason(t, err, ReasonTokenInvalid)
}
