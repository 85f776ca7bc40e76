// Package hmacsig signs and verifies timestamped HMAC-SHA256 signature
// headers of the form
//
//	t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">[,v1=...]
//
// the scheme of Stripe's Stripe-Signature and of EchoPilot's own
// X-EchoPilot-Signature (the queue worker's data_sync requests, the audit
// service's compliance intake). The HMAC key is the secret as given, bytes
// for bytes ("whsec_..." included, as Stripe uses it).
//
// The package is pure (no I/O, no state) and uses only the standard library.
// Its errors are plain sentinels, not client errors: each service maps them
// to its own reasons and messages, once.
//
// # Header format and limits
//
// Parse accepts exactly this and nothing else:
//
//   - at most MaxHeaderLen bytes;
//   - comma-separated elements, spaces and tabs around each one ignored,
//     each of the form key=value (an element without '=' is an error,
//     an empty one included);
//   - exactly one t: 1 to MaxTimestampLen ASCII digits, no sign (not even
//     '+'), no fraction, no inner space, fitting an int64; leading zeros are
//     allowed and part of what is signed ("<t>" exactly as sent);
//   - 1 to MaxSignatures v1: exactly 64 hex digits (either case), the 32
//     bytes of an HMAC-SHA256;
//   - any other key (v0, Stripe's test-mode scheme, future versions) is
//     ignored, its value unchecked, so the format can grow.
//
// The bounds cap the work an unauthenticated caller can cause: a real
// header is under 200 bytes, with one v1 per active secret (two during a
// rotation).
package hmacsig

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Limits of Parse (see the package documentation).
const (
	// MaxHeaderLen bounds the whole header, in bytes.
	MaxHeaderLen = 4096
	// MaxSignatures bounds the v1 elements of one header.
	MaxSignatures = 16
	// MaxTimestampLen bounds the digits of t: an int64 has 19, one more
	// leaves room for a leading zero.
	MaxTimestampLen = 20
)

// DefaultTolerance is what Verify and CheckTime use for a tolerance <= 0:
// Stripe's and Standard Webhooks' default, a signature made more than five
// minutes away from our clock, either way, is refused.
const DefaultTolerance = 5 * time.Minute

// DecoyKey is the key Match computes the HMAC under when it has no usable
// key, so that no secret costs what a wrong signature does. It is public
// (it is in the source for anyone to read); nothing it signs is ever
// accepted.
const DecoyKey = "hmacsig decoy key: what it signs is never accepted"

// ErrMalformed matches (errors.Is) every error of Parse and ParseTimestamp.
var ErrMalformed = errors.New("hmacsig: malformed signature header")

// Errors of Parse and ParseTimestamp; each also matches ErrMalformed. They
// never quote the header: it is attacker-controlled and ends up in logs.
var (
	ErrTooLong           = malformed("header is longer than " + strconv.Itoa(MaxHeaderLen) + " bytes")
	ErrElement           = malformed("element without '='")
	ErrDuplicateT        = malformed("more than one t")
	ErrTimestamp         = malformed("t is not a Unix time in seconds")
	ErrTimestampRange    = malformed("t is out of range")
	ErrTooManySignatures = malformed("more than " + strconv.Itoa(MaxSignatures) + " v1 signatures")
	ErrSignature         = malformed("v1 is not " + strconv.Itoa(2*sha256.Size) + " hex digits")
	ErrNoTimestamp       = malformed("no t")
	ErrNoSignature       = malformed("no v1 signature")
)

// Errors of Match, CheckTime and Verify.
var (
	// ErrNoSecret: no non-empty secret to verify with (an empty key is never
	// used: anyone can compute an HMAC under it). The HMAC work was done
	// under DecoyKey all the same, so a caller may answer it exactly as
	// ErrMismatch without the timing telling them apart.
	ErrNoSecret = errors.New("hmacsig: no usable secret")
	// ErrMismatch: no signature matches the body under any secret.
	ErrMismatch = errors.New("hmacsig: no signature matches")
	// ErrStale: a genuine signature made outside the tolerance.
	ErrStale = errors.New("hmacsig: signature timestamp outside the tolerance")
)

type malformedError struct{ msg string }

func malformed(msg string) error { return &malformedError{msg} }

func (e *malformedError) Error() string        { return "hmacsig: malformed signature header: " + e.msg }
func (e *malformedError) Is(target error) bool { return target == ErrMalformed }

// Header is a parsed signature header.
type Header struct {
	// T is the t value exactly as sent: what the signatures cover.
	T string
	// Unix is T's value, in seconds since 1970.
	Unix int64
	// Signatures are the decoded v1 values, sha256.Size bytes each, in
	// header order.
	Signatures [][]byte
}

// Time is the signed time, UTC.
func (h Header) Time() time.Time { return time.Unix(h.Unix, 0).UTC() }

// Sign returns the header value for body signed with secret at t (whole
// seconds): "t=<unix>,v1=<lower-case hex HMAC-SHA256 of "<t>.<body>">".
// Parse refuses a time before 1970 and Verify an empty secret; Sign does
// not check either, callers that could get them do.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(MAC(secret, ts, body))
}

// MAC is HMAC-SHA256(key, signed + "." + body). signed is "<t>" in this
// scheme, "<id>.<timestamp>" in Standard Webhooks, exactly as sent.
func MAC(key []byte, signed string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(signed))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Parse parses a signature header within the limits of the package
// documentation. Elements are checked in order and the first fault is
// reported; a missing t or v1, then a t out of the int64 range, are
// reported after the whole header has been read.
func Parse(header string) (Header, error) {
	if len(header) > MaxHeaderLen {
		return Header{}, ErrTooLong
	}
	var h Header
	haveT := false
	for elem := range strings.SplitSeq(header, ",") {
		key, val, ok := strings.Cut(strings.TrimSpace(elem), "=")
		if !ok {
			return Header{}, ErrElement
		}
		switch key {
		case "t":
			if haveT {
				return Header{}, ErrDuplicateT
			}
			if !isDigits(val) {
				return Header{}, ErrTimestamp
			}
			haveT, h.T = true, val
		case "v1":
			if len(h.Signatures) == MaxSignatures {
				return Header{}, ErrTooManySignatures
			}
			sig, err := hex.DecodeString(val)
			if err != nil || len(sig) != sha256.Size {
				return Header{}, ErrSignature
			}
			h.Signatures = append(h.Signatures, sig)
		}
	}
	if !haveT {
		return Header{}, ErrNoTimestamp
	}
	if len(h.Signatures) == 0 {
		return Header{}, ErrNoSignature
	}
	t, err := strconv.ParseInt(h.T, 10, 64)
	if err != nil { // only overflow is left: the digits were checked
		return Header{}, ErrTimestampRange
	}
	h.Unix = t
	return h, nil
}

// ParseTimestamp parses a Unix time in seconds under the rule of t: 1 to
// MaxTimestampLen digits and nothing else (ErrTimestamp), within int64
// (ErrTimestampRange).
func ParseTimestamp(s string) (int64, error) {
	if !isDigits(s) {
		return 0, ErrTimestamp
	}
	t, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, ErrTimestampRange
	}
	return t, nil
}

func isDigits(s string) bool {
	if s == "" || len(s) > MaxTimestampLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Match reports whether any of sigs equals MAC(key, signed, body) under any
// non-empty key: nil, ErrMismatch, or ErrNoSecret when no key is non-empty.
// Every pair is compared in constant time (hmac.Equal) with no early exit,
// so the time taken does not tell which key or signature matched; with no
// usable key the MAC is still computed, under DecoyKey, and never accepted.
func Match(keys [][]byte, signed string, body []byte, sigs [][]byte) error {
	usable, matched := false, false
	check := func(key []byte) {
		want := MAC(key, signed, body)
		for _, sig := range sigs {
			if hmac.Equal(want, sig) {
				matched = true
			}
		}
	}
	for _, key := range keys {
		if len(key) > 0 {
			usable = true
			check(key)
		}
	}
	if !usable {
		check([]byte(DecoyKey))
		return ErrNoSecret
	}
	if !matched {
		return ErrMismatch
	}
	return nil
}

// CheckTime returns the signed time t (Unix seconds) in UTC, or ErrStale
// when it is more than tolerance away from now either way (DefaultTolerance
// when tolerance <= 0). The bounds are inclusive. Time.Sub saturates, so a
// huge t cannot wrap around into range.
func CheckTime(t int64, now time.Time, tolerance time.Duration) (time.Time, error) {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	signed := time.Unix(t, 0).UTC()
	if d := now.Sub(signed); d > tolerance || d < -tolerance {
		return time.Time{}, ErrStale
	}
	return signed, nil
}

// Verify authenticates body against header with any of secrets (several
// during a rotation; empty ones are skipped) at now, within tolerance
// (DefaultTolerance when <= 0), and returns the parsed header.
//
// The error is a Parse error (ErrMalformed), then ErrNoSecret, ErrMismatch,
// or ErrStale, in that order: the signature is checked before the time, so
// ErrStale is only ever reported for a header really signed with one of
// secrets (a replay or a skewed clock). With ErrStale the parsed header is
// returned too, for the caller's message.
func Verify(header string, body []byte, secrets [][]byte, now time.Time, tolerance time.Duration) (Header, error) {
	h, err := Parse(header)
	if err != nil {
		return Header{}, err
	}
	if err := Match(secrets, h.T, body, h.Signatures); err != nil {
		return Header{}, err
	}
	if _, err := CheckTime(h.Unix, now, tolerance); err != nil {
		return h, err
	}
	return h, nil
}
