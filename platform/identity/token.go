package identity

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// minHS256Secret is the shortest HS256 secret accepted: RFC 7518 section 3.2
// requires a key at least as long as the hash output.
const minHS256Secret = 32

// Claims are the claims of an EchoPilot token.
type Claims struct {
	Subject  string
	TenantID string
	Roles    []string
	Issuer   string
	Audience []string
}

// tokenClaims is the JWT encoding of Claims.
type tokenClaims struct {
	jwt.RegisteredClaims
	TenantID string   `json:"tenant_id"`
	Roles    []string `json:"roles,omitempty"`
}

// MintHS256 signs c with secret, valid for ttl from now. Services use it for
// local service-to-service calls, the devtoken command for humans.
func MintHS256(secret []byte, c Claims, ttl time.Duration) (string, error) {
	if err := checkSecret(secret); err != nil {
		return "", err
	}
	if !ValidTenant(c.TenantID) {
		return "", fmt.Errorf("mint token: tenant id %q is not valid", c.TenantID)
	}
	if ttl <= 0 {
		return "", fmt.Errorf("mint token: ttl %v is not positive", ttl)
	}
	now := time.Now()
	tc := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   c.Subject,
			Issuer:    c.Issuer,
			Audience:  c.Audience,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		TenantID: c.TenantID,
		Roles:    c.Roles,
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, tc).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	return s, nil
}

// SignedClaims are the claims of a token signed with a private key.
type SignedClaims struct {
	Claims
	// ID is the jti claim.
	ID        string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// SignEdDSA signs c with key, naming the key by KeyID in the kid header,
// so that verifiers holding its public key in PublicKeyFiles accept it.
// The queue signs worker tokens this way.
func SignEdDSA(key ed25519.PrivateKey, c SignedClaims) (string, error) {
	if !ValidTenant(c.TenantID) {
		return "", fmt.Errorf("sign token: tenant id %q is not valid", c.TenantID)
	}
	if !c.ExpiresAt.After(c.IssuedAt) {
		return "", fmt.Errorf("sign token: expiry %v is not after issue %v", c.ExpiresAt, c.IssuedAt)
	}
	kid, err := KeyID(key.Public())
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	tc := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			ID:        c.ID,
			Subject:   c.Subject,
			Issuer:    c.Issuer,
			Audience:  c.Audience,
			IssuedAt:  jwt.NewNumericDate(c.IssuedAt),
			ExpiresAt: jwt.NewNumericDate(c.ExpiresAt),
		},
		TenantID: c.TenantID,
		Roles:    c.Roles,
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, tc)
	t.Header["kid"] = kid
	s, err := t.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

func checkSecret(secret []byte) error {
	if len(secret) < minHS256Secret {
		return errors.New("HS256 secret must be at least 32 bytes")
	}
	return nil
}
