package stripe_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/services/finops/internal/stripe"
)

var (
	now       = time.Unix(1717171300, 0).UTC()
	secret    = []byte("whsec_test_current_0123456789abcdef")
	oldSecret = []byte("whsec_test_previous_fedcba9876543210")
	body      = []byte(`{"id":"evt_1","type":"charge.succeeded","data":{"object":{}}}`)
)

func verifier(secrets ...[]byte) stripe.Verifier {
	return stripe.Verifier{Secrets: secrets, Now: func() time.Time { return now }}
}

// wantErr fails unless err is an *apierr.Error with reason and code.
func wantErr(t *testing.T, err error, reason string, code codes.Code) {
	t.Helper()
	if got := apierr.Reason(err); got != reason {
		t.Fatalf("reason = %q (err %v), want %q", got, err, reason)
	}
	if e, _ := apierr.As(err); e.Code != code {
		t.Fatalf("code = %v, want %v", e.Code, code)
	}
}

func hmacOf(secret []byte, ts string, payload []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts + "."))
	m.Write(payload)
	return m.Sum(nil)
}

// v1 is the hex signature SignatureHeader puts in a header.
func v1(secret []byte, t time.Time, payload []byte) string {
	_, sig, _ := strings.Cut(stripe.SignatureHeader(secret, t, payload), ",v1=")
	return sig
}

func TestVerifyValid(t *testing.T) {
	got, err := verifier(secret).Verify(body, stripe.SignatureHeader(secret, now, body))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(now) {
		t.Fatalf("signed time = %v, want %v", got, now)
	}
}

func TestVerifyDefaults(t *testing.T) {
	// Now nil means the wall clock; zero Tolerance means 300 s.
	v := stripe.Verifier{Secrets: [][]byte{secret}}
	if _, err := v.Verify(body, stripe.SignatureHeader(secret, time.Now(), body)); err != nil {
		t.Fatal(err)
	}
	_, err := v.Verify(body, stripe.SignatureHeader(secret, time.Now().Add(-301*time.Second), body))
	wantErr(t, err, stripe.ReasonSignatureStale, codes.Unauthenticated)
}

func TestVerifyWrongSecret(t *testing.T) {
	_, err := verifier(secret).Verify(body, stripe.SignatureHeader([]byte("whsec_someone_else"), now, body))
	wantErr(t, err, stripe.ReasonSignatureInvalid, codes.Unauthenticated)
}

func TestVerifyTolerance(t *testing.T) {
	for _, tc := range []struct {
		name      string
		signedAt  time.Time
		tolerance time.Duration
		ok        bool
	}{
		{"edge of past", now.Add(-300 * time.Second), 0, true},
		{"edge of future", now.Add(300 * time.Second), 0, true},
		{"stale", now.Add(-301 * time.Second), 0, false},
		{"far future", now.Add(301 * time.Second), 0, false},
		{"a day old", now.Add(-24 * time.Hour), 0, false},
		{"epoch", time.Unix(0, 0), 0, false},
		{"custom tolerance", now.Add(-11 * time.Second), 10 * time.Second, false},
		{"negative tolerance means default", now.Add(-200 * time.Second), -time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := verifier(secret)
			v.Tolerance = tc.tolerance
			_, err := v.Verify(body, stripe.SignatureHeader(secret, tc.signedAt, body))
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantErr(t, err, stripe.ReasonSignatureStale, codes.Unauthenticated)
		})
	}
}

func TestVerifyHugeTimestamp(t *testing.T) {
	// Far beyond any time.Duration: must be stale, not wrap into range.
	for _, ts := range []string{"9223372036854775807", "99999999999"} {
		h := "t=" + ts + ",v1=" + hex.EncodeToString(hmacOf(secret, ts, body))
		_, err := verifier(secret).Verify(body, h)
		wantErr(t, err, stripe.ReasonSignatureStale, codes.Unauthenticated)
	}
	// One past int64 cannot even be a timestamp.
	_, err := verifier(secret).Verify(body, "t=9223372036854775808,v1="+v1(secret, now, body))
	wantErr(t, err, stripe.ReasonSignatureMalformed, codes.InvalidArgument)
}

func TestVerifyRotation(t *testing.T) {
	// Two secrets configured while the endpoint secret rolls; Stripe signs
	// with either.
	both := verifier(oldSecret, secret)
	for _, s := range [][]byte{oldSecret, secret} {
		if _, err := both.Verify(body, stripe.SignatureHeader(s, now, body)); err != nil {
			t.Fatalf("signed with %q: %v", s, err)
		}
	}
	// During Stripe's own roll the header carries one v1 per secret.
	twoSigs := "t=" + strconv.FormatInt(now.Unix(), 10) + ",v1=" + v1(oldSecret, now, body) + ",v1=" + v1(secret, now, body)
	if _, err := verifier(secret).Verify(body, twoSigs); err != nil {
		t.Fatalf("new secret only, two v1: %v", err)
	}
	if _, err := verifier(oldSecret).Verify(body, twoSigs); err != nil {
		t.Fatalf("old secret only, two v1: %v", err)
	}
	// Once the old secret is retired its signatures no longer count.
	_, err := verifier(secret).Verify(body, stripe.SignatureHeader(oldSecret, now, body))
	wantErr(t, err, stripe.ReasonSignatureInvalid, codes.Unauthenticated)
}

func TestVerifyHeaderShape(t *testing.T) {
	ts := strconv.FormatInt(now.Unix(), 10)
	sig := v1(secret, now, body)
	other := v1([]byte("whsec_other"), now, body)
	for _, h := range []string{
		"v1=" + sig + ",t=" + ts,                                    // any order
		"t=" + ts + ",v1=" + sig + ",v0=" + other,                   // v0 ignored
		"t=" + ts + ",foo=bar,v1=" + sig + ",bar=",                  // unknown keys ignored
		"t=" + ts + ", v1=" + sig,                                   // spaces around elements
		"t=" + ts + strings.Repeat(",v1="+other, 15) + ",v1=" + sig, // 16 signatures, last matches
	} {
		if _, err := verifier(secret).Verify(body, h); err != nil {
			t.Errorf("%.60q: %v", h, err)
		}
	}
}

func TestVerifyMissing(t *testing.T) {
	for _, h := range []string{"", "   "} {
		_, err := verifier(secret).Verify(body, h)
		wantErr(t, err, stripe.ReasonSignatureMissing, codes.Unauthenticated)
	}
}

func TestVerifyMalformed(t *testing.T) {
	ts := strconv.FormatInt(now.Unix(), 10)
	sig := v1(secret, now, body)
	for _, tc := range []struct{ name, header string }{
		{"empty t", "t="},
		{"empty t with v1", "t=,v1=" + sig},
		{"no t", "v1=abc"},
		{"no t, good v1", "v1=" + sig},
		{"t not a number", "t=abc,v1=" + sig},
		{"t negative", "t=-" + ts + ",v1=" + sig},
		{"t with sign", "t=+" + ts + ",v1=" + sig},
		{"t fractional", "t=" + ts + ".5,v1=" + sig},
		{"two t", "t=" + ts + ",t=" + ts + ",v1=" + sig},
		{"odd hex", "t=" + ts + ",v1=" + sig[:63]},
		{"not hex", "t=" + ts + ",v1=" + strings.Repeat("zz", 32)},
		{"short signature", "t=" + ts + ",v1=abcd"},
		{"long signature", "t=" + ts + ",v1=" + sig + "00"},
		{"empty v1", "t=" + ts + ",v1="},
		{"one bad v1 among good", "t=" + ts + ",v1=" + sig + ",v1=xyz"},
		{"no v1", "t=" + ts},
		{"only v0", "t=" + ts + ",v0=" + sig},
		{"element without =", "t=" + ts + ",v1=" + sig + ",junk"},
		{"just commas", ",,,"},
		{"17 signatures", "t=" + ts + strings.Repeat(",v1="+sig, 17)},
		{"huge", "t=" + ts + ",v1=" + sig + ",x=" + strings.Repeat("a", 4096)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := verifier(secret).Verify(body, tc.header)
			wantErr(t, err, stripe.ReasonSignatureMalformed, codes.InvalidArgument)
			if strings.Contains(err.Error(), sig) {
				t.Fatal("error message quotes the header")
			}
		})
	}
}

func TestVerifyBodyAltered(t *testing.T) {
	h := stripe.SignatureHeader(secret, now, body)
	for _, i := range []int{0, 1, len(body) / 2, len(body) - 2, len(body) - 1} {
		for _, bit := range []byte{0x01, 0x80} {
			altered := append([]byte(nil), body...)
			altered[i] ^= bit
			_, err := verifier(secret).Verify(altered, h)
			wantErr(t, err, stripe.ReasonSignatureInvalid, codes.Unauthenticated)
		}
	}
	for name, altered := range map[string][]byte{
		"truncated": body[:len(body)-1],
		"extended":  append(append([]byte(nil), body...), ' '),
		"empty":     nil,
	} {
		_, err := verifier(secret).Verify(altered, h)
		if apierr.Reason(err) != stripe.ReasonSignatureInvalid {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestVerifyTimestampAltered(t *testing.T) {
	sig := v1(secret, now, body)
	for _, ts := range []time.Time{now.Add(time.Second), now.Add(-time.Second)} {
		h := "t=" + strconv.FormatInt(ts.Unix(), 10) + ",v1=" + sig
		_, err := verifier(secret).Verify(body, h)
		wantErr(t, err, stripe.ReasonSignatureInvalid, codes.Unauthenticated)
	}
	// A leading zero changes the signed string, so it does not match either.
	_, err := verifier(secret).Verify(body, "t=0"+strconv.FormatInt(now.Unix(), 10)+",v1="+sig)
	wantErr(t, err, stripe.ReasonSignatureInvalid, codes.Unauthenticated)
}

// Verify keeps no state: a replayed delivery verifies again while fresh.
// Replays are absorbed downstream by event-id idempotency; the tolerance
// bounds how long a captured delivery stays usable.
func TestVerifyIsPure(t *testing.T) {
	h := stripe.SignatureHeader(secret, now, body)
	v := verifier(secret)
	for i := range 3 {
		if _, err := v.Verify(body, h); err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	v.Now = func() time.Time { return now.Add(299 * time.Second) }
	if _, err := v.Verify(body, h); err != nil {
		t.Fatalf("replay within tolerance: %v", err)
	}
	v.Now = func() time.Time { return now.Add(301 * time.Second) }
	_, err := v.Verify(body, h)
	wantErr(t, err, stripe.ReasonSignatureStale, codes.Unauthenticated)
}

func TestVerifyStaleOnlyWhenSigned(t *testing.T) {
	// A forged header with an old timestamp is reported as invalid, so
	// STALE always means a delivery Stripe really signed.
	_, err := verifier(secret).Verify(body, stripe.SignatureHeader([]byte("whsec_forged"), now.Add(-time.Hour), body))
	wantErr(t, err, stripe.ReasonSignatureInvalid, codes.Unauthenticated)
}

func TestVerifyNoSecret(t *testing.T) {
	// An empty key is skipped: anyone could compute HMAC("", ...).
	emptyKeyHeader := stripe.SignatureHeader(nil, now, body)
	for _, secrets := range [][][]byte{nil, {}, {{}}, {nil, []byte("")}} {
		_, err := verifier(secrets...).Verify(body, emptyKeyHeader)
		if !errors.Is(err, stripe.ErrNoSecret) {
			t.Fatalf("secrets %q: err = %v, want ErrNoSecret", secrets, err)
		}
		if _, ok := apierr.As(err); ok {
			t.Fatal("a configuration fault must not be a client error")
		}
	}
	_, err := verifier(nil, secret).Verify(body, emptyKeyHeader)
	wantErr(t, err, stripe.ReasonSignatureInvalid, codes.Unauthenticated)
}

func TestParseSecrets(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"whsec_a", []string{"whsec_a"}},
		{" whsec_a , whsec_b ", []string{"whsec_a", "whsec_b"}},
		{",whsec_a,,\twhsec_b\t,", []string{"whsec_a", "whsec_b"}},
		{"", nil},
		{" , ,, ", nil},
	} {
		got, err := stripe.ParseSecrets(tc.in)
		if tc.want == nil {
			if err == nil {
				t.Errorf("%q: no error, got %q", tc.in, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		var gotS []string
		for _, s := range got {
			gotS = append(gotS, string(s))
		}
		if strings.Join(gotS, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%q: got %q, want %q", tc.in, gotS, tc.want)
		}
	}
}

func TestSignatureHeaderKnownAnswer(t *testing.T) {
	// Computed outside Go (Python's hmac): HMAC-SHA256 over "<t>.<payload>"
	// keyed by the whole secret string, lower-case hex, as Stripe documents.
	const want = "t=1717171300,v1=62714f9d56ce1837e29afbf87b2938327a4d700726c8c7f26ad6f7f1aa26c933"
	if got := stripe.SignatureHeader(secret, now, body); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}
