package webhook

import (
	"crypto/rand"
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/hmacsig"
)

// Secret format: the Standard Webhooks "whsec_" prefix, then standard
// base64 of 24 to 64 random bytes (the spec's recommended key sizes).
const (
	SecretPrefix   = "whsec_"
	MinSecretBytes = 24
	MaxSecretBytes = 64
)

// NewSecret returns a fresh secret: SecretPrefix + base64 of MinSecretBytes
// random bytes, the size Svix issues. The error is crypto/rand's, which
// since Go 1.24 cannot occur (Read crashes the program instead); it stays
// in the signature so callers handle entropy failure if that ever changes.
func NewSecret() (string, error) {
	b := make([]byte, MinSecretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b), nil
}

// ValidSecret reports whether s is a secret we issue and store: the prefix,
// then canonical standard base64 (padded, no line breaks, zero padding bits)
// of MinSecretBytes to MaxSecretBytes bytes. Verify is more lenient (a bare
// base64 secret works, as in the spec's libraries); storage and Sign are
// strict so every secret has one spelling and a real key size.
func ValidSecret(s string) bool {
	enc, ok := strings.CutPrefix(s, SecretPrefix)
	if !ok {
		return false
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	return err == nil && len(key) >= MinSecretBytes && len(key) <= MaxSecretBytes &&
		base64.StdEncoding.EncodeToString(key) == enc
}

// Sign returns the Standard Webhooks headers of an outbound delivery: id as
// webhook-id (keep it across retries: receivers deduplicate on it),
// at in Unix seconds as webhook-timestamp, and "v1,<base64 HMAC-SHA256>"
// under the decoded secret as webhook-signature. Set them on the request
// with Headers.Set; body must be sent byte for byte as signed.
func Sign(secret, id string, at time.Time, body []byte) (Headers, error) {
	return SignAll([]string{secret}, id, at, body)
}

// SignAll is Sign under several secrets (one at least): webhook-signature
// holds one space-separated "v1,<base64>" entry per secret, in order, as
// Standard Webhooks sends during a secret rotation; a receiver accepts the
// delivery when any entry verifies under its secret.
func SignAll(secrets []string, id string, at time.Time, body []byte) (Headers, error) {
	if len(secrets) == 0 {
		return Headers{}, apierr.InvalidArgument(ReasonSecretInvalid, "no secret to sign with").InDomain(Domain)
	}
	for _, secret := range secrets {
		if !ValidSecret(secret) {
			// Never quote the secret.
			return Headers{}, apierr.InvalidArgument(ReasonSecretInvalid,
				"secret must be %q followed by base64 of %d to %d bytes", SecretPrefix, MinSecretBytes, MaxSecretBytes).InDomain(Domain)
		}
	}
	if !ValidID(id) {
		return Headers{}, apierr.InvalidArgument(ReasonMessageInvalid,
			"message id must be 1 to %d bytes of UTF-8 without control characters", MaxIDLen).InDomain(Domain)
	}
	if at.Unix() < 0 { // receivers, ours included, accept digits only
		return Headers{}, apierr.InvalidArgument(ReasonMessageInvalid, "signing time is before 1970").InDomain(Domain)
	}
	ts := strconv.FormatInt(at.Unix(), 10)
	sigs := make([]string, len(secrets))
	for i, secret := range secrets {
		key, _ := standardKey(secret)
		sigs[i] = "v1," + base64.StdEncoding.EncodeToString(hmacsig.MAC(key, id+"."+ts, body))
	}
	return Headers{ID: id, Timestamp: ts, Signature: strings.Join(sigs, " ")}, nil
}

// EchoPilotHeader returns an X-EchoPilot-Signature value for body signed at
// at (Unix seconds) with secret, the whole string being the HMAC key (tests,
// the e2e test and senders): hmacsig.Sign. at must not be before 1970, and
// secret must not be empty, or Verify refuses the result.
func EchoPilotHeader(secret string, at time.Time, body []byte) string {
	return hmacsig.Sign([]byte(secret), at, body)
}
