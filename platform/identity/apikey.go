package identity

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
)

// API keys are the credentials of tenants' machines that have no identity
// provider to mint JWTs (a billing job, a CI pipeline, an edge device).
//
// Format, fixed so secret scanners can match it:
//
//	ep_live_<key id: 26-character ULID>_<secret: 43 base64url characters>
//
// (regular expression: ep_live_[0-9A-HJKMNP-TV-Z]{26}_[A-Za-z0-9_-]{43}).
// The secret is 32 random bytes, unpadded base64url. The key id is the
// lookup index and appears in logs ("ep_live_<key id>", the prefix); the
// secret is never stored, only its SHA-256.
//
// Why SHA-256 and not a slow password hash: bcrypt, scrypt and Argon2 make
// each guess expensive, which protects low-entropy human passwords from
// offline guessing after a database leak. A 256-bit random secret cannot be
// guessed at any cost per guess (2^256 tries), so a fast hash loses nothing
// and keeps verification in the microseconds.
const (
	// APIKeyPrefix starts every API key.
	APIKeyPrefix = "ep_live_"
	// APIKeySecretBytes is the entropy of a key's secret.
	APIKeySecretBytes = 32
	// apiKeyIDLen is a ULID's length; apiKeySecretLen the base64url
	// length of the secret.
	apiKeyIDLen     = 26
	apiKeySecretLen = 43
	// APIKeyLen is the length of every API key.
	APIKeyLen = len(APIKeyPrefix) + apiKeyIDLen + 1 + apiKeySecretLen
	// apiKeySubjectPrefix starts the subject of a key's principal.
	apiKeySubjectPrefix = "apikey:"
)

// ParsedAPIKey is an API key split into its parts.
type ParsedAPIKey struct {
	ID string
	// Hash is the SHA-256 of the secret bytes.
	Hash [sha256.Size]byte
}

// IsAPIKey reports whether raw claims to be an API key (it may still be
// malformed): such bearer tokens are never parsed as JWTs.
func IsAPIKey(raw string) bool { return strings.HasPrefix(raw, APIKeyPrefix) }

// ParseAPIKey checks raw's format and returns its key id and the hash of
// its secret.
func ParseAPIKey(raw string) (ParsedAPIKey, error) {
	if len(raw) != APIKeyLen {
		return ParsedAPIKey{}, fmt.Errorf("api key is %d bytes, want %d", len(raw), APIKeyLen)
	}
	rest, ok := strings.CutPrefix(raw, APIKeyPrefix)
	if !ok {
		return ParsedAPIKey{}, errors.New("api key does not start with " + APIKeyPrefix)
	}
	id, secret := rest[:apiKeyIDLen], rest[apiKeyIDLen+1:]
	if rest[apiKeyIDLen] != '_' {
		return ParsedAPIKey{}, errors.New("api key has no '_' after its id")
	}
	if !ValidAPIKeyID(id) {
		return ParsedAPIKey{}, errors.New("api key id is not a ULID")
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(secret)
	if err != nil || len(b) != APIKeySecretBytes {
		return ParsedAPIKey{}, errors.New("api key secret is not 32 bytes of base64url")
	}
	return ParsedAPIKey{ID: id, Hash: sha256.Sum256(b)}, nil
}

// ValidAPIKeyID reports whether id is a key id: an upper-case ULID, the
// form NewAPIKey writes.
func ValidAPIKeyID(id string) bool {
	if len(id) != apiKeyIDLen {
		return false
	}
	u, err := ulid.ParseStrict(id)
	return err == nil && u.String() == id
}

// NewAPIKey returns a fresh key of id (a ULID) and its secret's hash.
func NewAPIKey(id string) (raw string, hash [sha256.Size]byte, err error) {
	if !ValidAPIKeyID(id) {
		return "", hash, fmt.Errorf("new api key: id %q is not an upper-case ULID", id)
	}
	secret := make([]byte, APIKeySecretBytes)
	if _, err := rand.Read(secret); err != nil {
		return "", hash, fmt.Errorf("new api key: %w", err)
	}
	return APIKeyPrefix + id + "_" + base64.RawURLEncoding.EncodeToString(secret), sha256.Sum256(secret), nil
}

// APIKeySubject is the subject of the principal a key proves.
func APIKeySubject(id string) string { return apiKeySubjectPrefix + id }

// APIKeyRecord is what the key store says of a key id.
type APIKeyRecord struct {
	Tenant   string
	Roles    []string
	ReadOnly bool
	// ExpireTime is zero when the key does not expire.
	ExpireTime time.Time
	// Secrets are the secrets the key accepts: the current one, and the
	// previous one during a rotation's grace period.
	Secrets []APIKeySecret
}

// APIKeySecret is one accepted secret.
type APIKeySecret struct {
	Hash []byte
	// ExpireTime is zero for the current secret.
	ExpireTime time.Time
}

// match reports whether hash is one of r's secrets, valid at now. Every
// secret is compared, each in constant time, so timing says nothing about
// which or how much of a hash matched.
func (r APIKeyRecord) match(hash [sha256.Size]byte, now time.Time) bool {
	if !r.ExpireTime.IsZero() && !now.Before(r.ExpireTime) {
		return false
	}
	ok := 0
	for _, s := range r.Secrets {
		eq := subtle.ConstantTimeCompare(s.Hash, hash[:])
		if !s.ExpireTime.IsZero() && !now.Before(s.ExpireTime) {
			eq = 0
		}
		ok |= eq
	}
	return ok == 1
}
