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
package stripe

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/echopilot/echopilot/platform/apierr"
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
const DefaultTolerance = 300 * time.Second

// Header limits: a real header is about 150 bytes with one v1 per active
// secret (two during a rotation). The bounds cap the work an
// unauthenticated caller can cause.
const (
	MaxHeaderLen  = 4096
	MaxSignatures = 16
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
// with secret at t (tests, the e2e test and local tools).
func SignatureHeader(secret []byte, t time.Time, payload []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(sign(secret, ts, payload))
}

// sign is HMAC-SHA256(secret, "<t>.<payload>") with t as it appears in the
// header.
func sign(secret []byte, ts string, payload []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(payload)
	return m.Sum(nil)
}

// Verify checks header, a Stripe-Signature value, over the raw payload and
// returns the signed timestamp.
//
// The header is comma-separated key=value pairs: exactly one t (Unix
// seconds), one to MaxSignatures v1 (hex HMAC-SHA256), other keys (v0, the
// test-mode scheme) ignored. It is valid when any v1 matches any secret,
// which lets secrets rotate, and t is within Tolerance of now either way.
//
// The signature is checked before the time so that STALE is only ever
// reported for a delivery Stripe really signed (a replay or a skewed clock)
// and stays a meaningful signal; a forgery is INVALID whatever its t.
func (v Verifier) Verify(payload []byte, header string) (time.Time, error) {
	if strings.TrimSpace(header) == "" {
		return time.Time{}, apierr.Unauthenticated(ReasonSignatureMissing, "Stripe-Signature header is missing").InDomain(Domain)
	}
	ts, sigs, err := parseHeader(header)
	if err != nil {
		return time.Time{}, err
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil { // only overflow is left: parseHeader checked the digits
		return time.Time{}, malformed("timestamp out of range")
	}

	secrets, matched := 0, false
	for _, secret := range v.Secrets {
		if len(secret) == 0 {
			continue // an empty key would let anyone sign
		}
		secrets++
		want := sign(secret, ts, payload)
		for _, sig := range sigs {
			// Constant time per comparison; no early exit, so the time
			// taken does not tell which secret or signature matched.
			if hmac.Equal(want, sig) {
				matched = true
			}
		}
	}
	if secrets == 0 {
		return time.Time{}, ErrNoSecret
	}
	if !matched {
		return time.Time{}, apierr.Unauthenticated(ReasonSignatureInvalid, "no Stripe-Signature v1 signature matches the payload").InDomain(Domain)
	}

	signed := time.Unix(t, 0).UTC()
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	tol := v.Tolerance
	if tol <= 0 {
		tol = DefaultTolerance
	}
	// Time.Sub saturates, so a huge t cannot wrap around into range.
	if d := now().Sub(signed); d > tol || d < -tol {
		return time.Time{}, apierr.Unauthenticated(ReasonSignatureStale,
			"Stripe-Signature timestamp %d is more than %s away from now", t, tol).InDomain(Domain)
	}
	return signed, nil
}

// parseHeader returns the t value (decimal digits, as signed) and the
// decoded v1 signatures.
func parseHeader(header string) (ts string, sigs [][]byte, err error) {
	if len(header) > MaxHeaderLen {
		return "", nil, malformed("header is longer than %d bytes", MaxHeaderLen)
	}
	haveT := false
	for pair := range strings.SplitSeq(header, ",") {
		key, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok {
			return "", nil, malformed("element without '='")
		}
		switch key {
		case "t":
			if haveT {
				return "", nil, malformed("more than one t")
			}
			if !isDigits(val) {
				return "", nil, malformed("t is not a Unix time in seconds")
			}
			haveT, ts = true, val
		case "v1":
			if len(sigs) == MaxSignatures {
				return "", nil, malformed("more than %d v1 signatures", MaxSignatures)
			}
			// A v1 is an HMAC-SHA256: anything but 32 bytes of hex is not one.
			sig, err := hex.DecodeString(val)
			if err != nil || len(sig) != sha256.Size {
				return "", nil, malformed("v1 is not %d hex digits", 2*sha256.Size)
			}
			sigs = append(sigs, sig)
		}
	}
	if !haveT {
		return "", nil, malformed("no t element")
	}
	if len(sigs) == 0 {
		return "", nil, malformed("no v1 signature")
	}
	return ts, sigs, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// malformed never quotes the header: it is attacker-controlled and would
// end up in logs.
func malformed(format string, args ...any) error {
	return apierr.InvalidArgument(ReasonSignatureMalformed, "malformed Stripe-Signature header: "+format, args...).InDomain(Domain)
}
