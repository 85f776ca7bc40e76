package identity

import (
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

func checkSecret(secret []byte) error {
	if len(secret) < minHS256Secret {
		return errors.New("HS256 secret must be at least 32 bytes")
	}
	return nil
}
