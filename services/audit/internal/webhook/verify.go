// Package webhook authenticates inbound webhook deliveries and signs
// outbound ones. It is pure (no I/O, no state) and uses only the standard
// library: both schemes are documented HMACs.
//
// Two inbound schemes are accepted:
//
//   - X-EchoPilot-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>[,v1=...]
//     over "<t>.<raw body>". The HMAC key is the whole secret string as
//     bytes ("whsec_..." included), as the queue worker's data_sync sender
//     and Stripe use it. Parsing, HMAC and comparison are platform/hmacsig's,
//     shared with finops's Stripe-Signature and the data_sync sender.
//   - Standard Webhooks (https://www.standardwebhooks.com/, as sent by
//     Svix): webhook-id, webhook-timestamp and webhook-signature
//     ("v1,<base64>" entries separated by spaces) over
//     "<id>.<timestamp>.<raw body>". The HMAC key is the base64-decoded
//     secret after an optional "whsec_" prefix, exactly as the spec's
//     reference libraries and Svix's derive it, so a secret pasted without
//     its prefix still works. The HMAC, the constant-time comparison and
//     the time check are hmacsig's too; only the header parsing is here.
//
// Verify is stateless: replay protection is the caller's, through
// Verified.ReplayKey (see there).
package webhook

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/hmacsig"
)

// Domain is the ErrorInfo domain of this package's errors: the audit
// service's (domain.Domain, not imported so this package stays a leaf).
const Domain = "audit.echopilot"

// Error reasons, stable for clients and tests (apierr.Reason).
const (
	ReasonSignatureMissing   = "SIGNATURE_MISSING"       // Unauthenticated: neither scheme's headers
	ReasonSignatureMalformed = "SIGNATURE_MALFORMED"     // InvalidArgument: headers do not parse
	ReasonSignatureStale     = "SIGNATURE_STALE"         // Unauthenticated: genuine but outside the tolerance
	ReasonSignatureInvalid   = "SIGNATURE_INVALID"       // Unauthenticated: no match, or no usable secret
	ReasonSecretInvalid      = "WEBHOOK_SECRET_INVALID"  // InvalidArgument, from Sign
	ReasonMessageInvalid     = "WEBHOOK_MESSAGE_INVALID" // InvalidArgument, from Sign: bad id or time
)

// Scheme names reported in Verified.Scheme.
const (
	SchemeEchoPilot = "echopilot"
	SchemeStandard  = "standard-webhooks"
)

// HTTP header names of both schemes.
const (
	HeaderEchoPilot = "X-EchoPilot-Signature"
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// DefaultTolerance is the Standard Webhooks and Svix default: a delivery
// signed more than five minutes away from our clock, either way, is refused.
const DefaultTolerance = hmacsig.DefaultTolerance

// Limits. A real signature header is under 200 bytes with one signature per
// active secret (two during a rotation); the bounds cap the work an
// unauthenticated caller can cause. They are hmacsig's, for both schemes
// (X-EchoPilot-Signature is parsed by hmacsig.Parse, within its documented
// limits). MaxIDLen is the spec's own hint.
const (
	MaxHeaderLen  = hmacsig.MaxHeaderLen
	MaxSignatures = hmacsig.MaxSignatures
	MaxIDLen      = 255
)

// Headers are the signature headers of one delivery; empty when absent.
type Headers struct {
	EchoPilot string // X-EchoPilot-Signature
	ID        string // webhook-id
	Timestamp string // webhook-timestamp
	Signature string // webhook-signature
}

// HeadersFrom reads the four headers from h (first value of each).
func HeadersFrom(h http.Header) Headers {
	return Headers{
		EchoPilot: h.Get(HeaderEchoPilot),
		ID:        h.Get(HeaderID),
		Timestamp: h.Get(HeaderTimestamp),
		Signature: h.Get(HeaderSignature),
	}
}

// Set writes the non-empty fields of h into dst, replacing earlier values.
func (h Headers) Set(dst http.Header) {
	for _, kv := range [...][2]string{
		{HeaderEchoPilot, h.EchoPilot}, {HeaderID, h.ID},
		{HeaderTimestamp, h.Timestamp}, {HeaderSignature, h.Signature},
	} {
		if kv[1] != "" {
			dst.Set(kv[0], kv[1])
		}
	}
}

// Verifier checks inbound signatures. The zero value is ready to use.
type Verifier struct {
	// Tolerance bounds |now - signed time|; DefaultTolerance when <= 0.
	Tolerance time.Duration
	// Now is time.Now when nil.
	Now func() time.Time
}

// Verified describes an authenticated delivery.
type Verified struct {
	Scheme    string    // SchemeEchoPilot or SchemeStandard
	Timestamp time.Time // signed time, UTC
	// ReplayKey identifies the delivery for a replay cache, which the
	// caller keeps per tenant and consults before acting:
	//   - Standard Webhooks: "swh:" + webhook-id. The id is signed and the
	//     sender keeps it across retries, so a re-signed retry of a message
	//     already handled is caught too; record the key with the outcome of
	//     processing (not before), or a retry after a failure is refused.
	//   - EchoPilot: "eps:" + hex SHA-256 of "<t>.<body>" (t in canonical
	//     decimal). The header carries no id; (t, body) is what the
	//     signature covers, so an identical redelivery has the same key
	//     however its v1 list is arranged.
	ReplayKey string
	// KeepUntil is when the replay cache may drop ReplayKey: after it a
	// repeat is refused as SIGNATURE_STALE anyway (add the clock skew
	// between replicas). A sender's retry re-signed later than that is
	// for the store's idempotency to absorb, not the replay cache.
	KeepUntil time.Time
	MessageID string // webhook-id; empty for EchoPilot
}

// Verify authenticates body against the tenant's active secrets. The scheme
// is chosen by which headers are present, X-EchoPilot-Signature first; there
// is no fallback to the other scheme when the chosen one fails, so each
// delivery costs one scheme's work and gets one answer.
//
// Any signature matching any secret is accepted (rotation). The signature
// is checked before the time, so SIGNATURE_STALE is only ever reported for
// a delivery really signed with a tenant secret (a replay or a skewed
// clock); a forgery is SIGNATURE_INVALID whatever its timestamp.
//
// No usable secret (unknown tenant, none configured) is SIGNATURE_INVALID
// too, after the same HMAC work as a wrong secret: a caller probing tenant
// ids must not tell an unknown tenant from a wrong signature, by the answer
// or by its timing.
func (v Verifier) Verify(body []byte, h Headers, secrets []string) (Verified, error) {
	switch {
	case present(h.EchoPilot):
		return v.verifyEchoPilot(body, h.EchoPilot, secrets)
	case present(h.ID), present(h.Timestamp), present(h.Signature):
		return v.verifyStandard(body, h, secrets)
	}
	return Verified{}, apierr.Unauthenticated(ReasonSignatureMissing,
		"no %s or %s header", HeaderEchoPilot, HeaderSignature).InDomain(Domain)
}

func present(s string) bool { return strings.TrimSpace(s) != "" }

func (v Verifier) verifyEchoPilot(body []byte, header string, secrets []string) (Verified, error) {
	keys := make([][]byte, len(secrets))
	for i, s := range secrets {
		keys[i] = []byte(s) // hmacsig skips empty ones: anyone can compute HMAC under ""
	}
	tol := v.tolerance()
	h, err := hmacsig.Verify(header, body, keys, v.now(), tol)
	switch {
	case errors.Is(err, hmacsig.ErrNoSecret), errors.Is(err, hmacsig.ErrMismatch):
		// No usable secret answers as a wrong signature, after the same
		// HMAC work (hmacsig.Match's decoy).
		return Verified{}, invalid()
	case errors.Is(err, hmacsig.ErrStale):
		return Verified{}, stale(h.Unix, tol)
	case err != nil:
		return Verified{}, malformedEchoPilot(err)
	}
	d := sha256.New()
	d.Write([]byte(strconv.FormatInt(h.Unix, 10) + "."))
	d.Write(body)
	signed := h.Time()
	return Verified{
		Scheme:    SchemeEchoPilot,
		Timestamp: signed,
		ReplayKey: "eps:" + hex.EncodeToString(d.Sum(nil)),
		KeepUntil: signed.Add(tol),
	}, nil
}

// malformedEchoPilot translates an hmacsig.Parse error.
func malformedEchoPilot(err error) error {
	switch {
	case errors.Is(err, hmacsig.ErrTooLong):
		return malformed(HeaderEchoPilot, "is longer than %d bytes", MaxHeaderLen)
	case errors.Is(err, hmacsig.ErrElement):
		return malformed(HeaderEchoPilot, "has an element without '='")
	case errors.Is(err, hmacsig.ErrDuplicateT):
		return malformed(HeaderEchoPilot, "has more than one t")
	case errors.Is(err, hmacsig.ErrTimestamp):
		return malformed(HeaderEchoPilot, "t is not a Unix time in seconds")
	case errors.Is(err, hmacsig.ErrTooManySignatures):
		return malformed(HeaderEchoPilot, "has more than %d v1 signatures", MaxSignatures)
	case errors.Is(err, hmacsig.ErrSignature):
		return malformed(HeaderEchoPilot, "v1 is not %d hex digits", 2*sha256.Size)
	case errors.Is(err, hmacsig.ErrNoTimestamp):
		return malformed(HeaderEchoPilot, "has no t")
	case errors.Is(err, hmacsig.ErrNoSignature):
		return malformed(HeaderEchoPilot, "has no v1 signature")
	case errors.Is(err, hmacsig.ErrTimestampRange):
		return malformed(HeaderEchoPilot, "t is out of range")
	}
	return malformed(HeaderEchoPilot, "does not parse") // not reached: every Parse error is above
}

func (v Verifier) verifyStandard(body []byte, h Headers, secrets []string) (Verified, error) {
	if h.ID == "" || h.Timestamp == "" || h.Signature == "" {
		return Verified{}, malformed("Standard Webhooks", "%s, %s and %s are all required", HeaderID, HeaderTimestamp, HeaderSignature)
	}
	if !ValidID(h.ID) {
		return Verified{}, malformed(HeaderID, "must be 1 to %d bytes of UTF-8 without control characters", MaxIDLen)
	}
	t, err := hmacsig.ParseTimestamp(h.Timestamp)
	switch {
	case errors.Is(err, hmacsig.ErrTimestampRange):
		return Verified{}, malformed(HeaderTimestamp, "is out of range")
	case err != nil:
		return Verified{}, malformed(HeaderTimestamp, "is not a Unix time in seconds")
	}
	sigs, err := parseStandard(h.Signature)
	if err != nil {
		return Verified{}, err
	}
	var keys [][]byte
	for _, s := range secrets {
		if key, ok := standardKey(s); ok {
			keys = append(keys, key)
		}
	}
	// No usable key answers as a wrong signature (see Verify).
	if hmacsig.Match(keys, h.ID+"."+h.Timestamp, body, sigs) != nil {
		return Verified{}, invalid()
	}
	tol := v.tolerance()
	signed, err := hmacsig.CheckTime(t, v.now(), tol)
	if err != nil {
		return Verified{}, stale(t, tol)
	}
	return Verified{
		Scheme:    SchemeStandard,
		Timestamp: signed,
		ReplayKey: "swh:" + h.ID,
		KeepUntil: signed.Add(tol),
		MessageID: h.ID,
	}, nil
}

// decoyKey is what the HMAC is computed under for an unknown tenant
// (hmacsig.Match does it); nothing it produces is ever accepted.
const decoyKey = hmacsig.DecoyKey

func (v Verifier) tolerance() time.Duration {
	if v.Tolerance <= 0 {
		return DefaultTolerance
	}
	return v.Tolerance
}

func (v Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

// stale reports a genuine signature made at t outside the tolerance.
func stale(t int64, tol time.Duration) error {
	return apierr.Unauthenticated(ReasonSignatureStale,
		"signature timestamp %d is more than %s away from now", t, tol).InDomain(Domain)
}

// sigEncoding rejects non-canonical base64 (stray padding bits), so one
// signature has exactly one accepted spelling.
var sigEncoding = base64.StdEncoding.Strict()

// parseStandard returns the decoded v1 signatures of a webhook-signature
// header: whitespace-separated "<version>,<signature>" entries, 1 to
// MaxSignatures of version v1; other versions (v1a, asymmetric) are ignored,
// as the spec's libraries do.
func parseStandard(header string) ([][]byte, error) {
	if len(header) > MaxHeaderLen {
		return nil, malformed(HeaderSignature, "is longer than %d bytes", MaxHeaderLen)
	}
	var sigs [][]byte
	for _, entry := range strings.Fields(header) {
		version, val, ok := strings.Cut(entry, ",")
		if !ok {
			return nil, malformed(HeaderSignature, "has an entry without ','")
		}
		if version != "v1" {
			continue
		}
		if len(sigs) == MaxSignatures {
			return nil, malformed(HeaderSignature, "has more than %d v1 signatures", MaxSignatures)
		}
		sig, err := sigEncoding.DecodeString(val)
		if err != nil || len(sig) != sha256.Size {
			return nil, malformed(HeaderSignature, "v1 is not base64 of %d bytes", sha256.Size)
		}
		sigs = append(sigs, sig)
	}
	if len(sigs) == 0 {
		return nil, malformed(HeaderSignature, "has no v1 signature")
	}
	return sigs, nil
}

// standardKey derives the Standard Webhooks HMAC key from a secret: strip an
// optional "whsec_", base64-decode the rest (the spec's libraries and Svix
// do exactly this). A secret that does not decode, or decodes to nothing,
// cannot verify anything and is skipped.
func standardKey(secret string) ([]byte, bool) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, SecretPrefix))
	return key, err == nil && len(key) > 0
}

// ValidID reports whether id is usable as a message id: 1 to MaxIDLen
// bytes of UTF-8, not only spaces, without control characters. The id is
// signed, echoed in ReplayKey and so stored and logged; control characters
// (CR, LF, NUL...) and invalid UTF-8 have no business there. The sender's
// event id in a compliance body is held to the same rule.
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > MaxIDLen || !utf8.ValidString(id) || strings.TrimSpace(id) == "" {
		return false
	}
	for _, r := range id {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

func invalid() error {
	return apierr.Unauthenticated(ReasonSignatureInvalid, "no signature matches the body and an active secret").InDomain(Domain)
}

// malformed never quotes the header: it is attacker-controlled and would
// end up in logs.
func malformed(what, format string, args ...any) error {
	return apierr.InvalidArgument(ReasonSignatureMalformed, "malformed "+what+": "+format, args...).InDomain(Domain)
}
