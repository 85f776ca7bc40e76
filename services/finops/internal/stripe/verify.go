// Package stripe authenticates Stripe webhook deliveries (the
// Stripe-Signature header) and turns the events finops tracks into
// domain.PaymentEvent values. It uses only the standard library: the
// signature scheme is a documented HMAC, and the few event fields needed do
// not justify Stripe's SDK.
//
// Replay protection is split in two: Verify rejects a signature whose
// timestamp is outside the tolerance, and within it the store applies each
// event id once (domain.Store.ApplyPaymentEvent). Verify itself is pure: the
// same header verifies again as long as it is fresh.
//
// Parsing, HMAC, comparison and the time check are platform/hmacsig's,
// shared with the audit service's X-EchoPilot-Signature (the same scheme);
// this package keeps its own reasons and messages.
package stripe

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/hmacsig"
	"github.com/echopilot/echopilot/services/finops/internal/domain"
)

// Domain is the ErrorInfo domain of this package's errors.
const Domain = domain.Domain

// Error reasons, stable for clients and tests (apierr.Reason).
const (
	ReasonSignatureMissing   = "STRIPE_SIGNATURE_MISSING"   // Unauthenticated
	ReasonSignatureMalformed = "STRIPE_SIGNATURE_MALFORMED" // InvalidArgument
	ReasonSignatureStale     = "STRIPE_SIGNATURE_STALE"     // Unauthenticated
	ReasonSignatureInvalid   = "STRIPE_SIGNATURE_INVALID"   // Unauthenticated
	ReasonEventInvalid       = "STRIPE_EVENT_INVALID"       // InvalidArgument
)

// DefaultTolerance is Stripe's own default: a delivery signed more than five
// minutes away from our clock is refused.
const DefaultTolerance = hmacsig.DefaultTolerance

// Header limits: a real header is about 150 bytes with one v1 per active
// secret (two during a rotation). The bounds cap the work an
// unauthenticated caller can cause. They are hmacsig's (see its package
// documentation for the rest: t is 1 to hmacsig.MaxTimestampLen digits).
const (
	MaxHeaderLen  = hmacsig.MaxHeaderLen
	MaxSignatures = hmacsig.MaxSignatures
)

// SecretEnv names the variable ParseSecrets reads.
const SecretEnv = "ECHOPILOT_STRIPE_WEBHOOK_SECRET"

// Verifier checks Stripe-Signature headers.
type Verifier struct {
	// Secrets are the active endpoint secrets. The HMAC key is the whole
	// "whsec_..." string as bytes, as Stripe uses it. Several during a
	// rotation; empty ones are ignored.
	Secrets [][]byte
	// Tolerance bounds |now - t|; DefaultTolerance when zero or negative.
	Tolerance time.Duration
	// Now is time.Now when nil.
	Now func() time.Time
}

// ErrNoSecret is returned by Verify when no non-empty secret is configured:
// a deployment fault, deliberately not an *apierr.Error so the edge masks it
// as internal instead of blaming the caller.
var ErrNoSecret = errors.New("stripe: no webhook secret configured")

// ParseSecrets splits the value of ECHOPILOT_STRIPE_WEBHOOK_SECRET: secrets
// separated by commas, spaces trimmed, empty entries dropped. It fails when
// none is left, so a service never starts unable to verify anything.
func ParseSecrets(s string) ([][]byte, error) {
	var out [][]byte
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, []byte(part))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("stripe: %s holds no secret", SecretEnv)
	}
	return out, nil
}

// SignatureHeader builds the header Stripe would send for payload signed
// with secret at t (tests, the e2e test and local tools): hmacsig.Sign.
func SignatureHeader(secret []byte, t time.Time, payload []byte) string {
	return hmacsig.Sign(secret, t, payload)
}

// Verify checks header, a Stripe-Signature value, over the raw payload and
// returns the signed timestamp.
//
// The header is comma-separated key=value pairs: exactly one t (Unix
// seconds, 1 to hmacsig.MaxTimestampLen digits), one to MaxSignatures v1
// (hex HMAC-SHA256), other keys (v0, the test-mode scheme) ignored. It is valid when any v1 matches any secret,
// which lets secrets rotate, and t is within Tolerance of now either way.
//
// The signature is checked before the time so that STALE is only ever
// reported for a delivery Stripe really signed (a replay or a skewed clock)
// and stays a meaningful signal; a forgery is INVALID whatever its t.
func (v Verifier) Verify(payload []byte, header string) (time.Time, error) {
	if strings.TrimSpace(header) == "" {
		return time.Time{}, apierr.Unauthenticated(ReasonSignatureMissing, "Stripe-Signature header is missing").InDomain(Domain)
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	tol := v.Tolerance
	if tol <= 0 {
		tol = DefaultTolerance
	}
	h, err := hmacsig.Verify(header, payload, v.Secrets, now(), tol)
	switch {
	case err == nil:
		return h.Time(), nil
	case errors.Is(err, hmacsig.ErrNoSecret):
		return time.Time{}, ErrNoSecret
	case errors.Is(err, hmacsig.ErrMismatch):
		return time.Time{}, apierr.Unauthenticated(ReasonSignatureInvalid, "no Stripe-Signature v1 signature matches the payload").InDomain(Domain)
	case errors.Is(err, hmacsig.ErrStale):
		return time.Time{}, apierr.Unauthenticated(ReasonSignatureStale,
			"Stripe-Signature timestamp %d is more than %s away from now", h.Unix, tol).InDomain(Domain)
	}
	return time.Time{}, malformedHeader(err)
}

// malformedHeader translates an hmacsig.Parse error.
func malformedHeader(err error) error {
	switch {
	case errors.Is(err, hmacsig.ErrTooLong):
		return malformed("header is longer than %d bytes", MaxHeaderLen)
	case errors.Is(err, hmacsig.ErrElement):
		return malformed("element without '='")
	case errors.Is(err, hmacsig.ErrDuplicateT):
		return malformed("more than one t")
	case errors.Is(err, hmacsig.ErrTimestamp):
		return malformed("t is not a Unix time in seconds")
	case errors.Is(err, hmacsig.ErrTooManySignatures):
		return malformed("more than %d v1 signatures", MaxSignatures)
	case errors.Is(err, hmacsig.ErrSignature):
		return malformed("v1 is not %d hex digits", 2*sha256.Size)
	case errors.Is(err, hmacsig.ErrNoTimestamp):
		return malformed("no t element")
	case errors.Is(err, hmacsig.ErrNoSignature):
		return malformed("no v1 signature")
	case errors.Is(err, hmacsig.ErrTimestampRange):
		return malformed("timestamp out of range")
	}
	return malformed("does not parse") // not reached: every Parse error is above
}

// malformed never quotes the header: it is attacker-controlled and would
// end up in logs.
func malformed(format string, args ...any) error {
	return apierr.InvalidArgument(ReasonSignatureMalformed, "malformed Stripe-Signature header: "+format, args...).InDomain(Domain)
}
