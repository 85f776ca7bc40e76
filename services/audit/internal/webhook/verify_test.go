package webhook_test

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/services/audit/internal/domain"
	"github.com/echopilot/echopilot/services/audit/internal/webhook"
)

var (
	now = time.Unix(1717171300, 0).UTC()
	// Base64 of "audit-webhook-test-current-key!!" and "...-retired-key!!".
	secret    = "whsec_YXVkaXQtd2ViaG9vay10ZXN0LWN1cnJlbnQta2V5ISE="
	oldSecret = "whsec_YXVkaXQtd2ViaG9vay10ZXN0LXJldGlyZWQta2V5ISE="
	other     = "whsec_b3RoZXItdGVuYW50LXNlY3JldC1rZXktMDAwMDAw"
	body      = []byte(`{"type":"audit.export.completed","data":{"id":"exp_1"}}`)
	msgID     = "msg_2hXq7Lw0aUdit"
)

func verifier() webhook.Verifier {
	return webhook.Verifier{Now: func() time.Time { return now }}
}

// wantErr fails unless err is an *apierr.Error with reason, code and our
// domain.
func wantErr(t *testing.T, err error, reason string, code codes.Code) {
	t.Helper()
	if got := apierr.Reason(err); got != reason {
		t.Fatalf("reason = %q (err %v), want %q", got, err, reason)
	}
	e, _ := apierr.As(err)
	if e.Code != code || e.Domain != webhook.Domain {
		t.Fatalf("code, domain = %v, %q; want %v, %q", e.Code, e.Domain, code, webhook.Domain)
	}
}

func epHeaders(secret string, at time.Time, body []byte) webhook.Headers {
	return webhook.Headers{EchoPilot: webhook.EchoPilotHeader(secret, at, body)}
}

func swHeaders(t *testing.T, secret, id string, at time.Time, body []byte) webhook.Headers {
	t.Helper()
	h, err := webhook.Sign(secret, id, at, body)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// scheme runs a test once per scheme with a header builder.
type scheme struct {
	name string
	sign func(t *testing.T, secret string, at time.Time, body []byte) webhook.Headers
}

var schemes = []scheme{
	{webhook.SchemeEchoPilot, func(_ *testing.T, s string, at time.Time, b []byte) webhook.Headers { return epHeaders(s, at, b) }},
	{webhook.SchemeStandard, func(t *testing.T, s string, at time.Time, b []byte) webhook.Headers {
		return swHeaders(t, s, msgID, at, b)
	}},
}

// webhook does not import domain (it stays a leaf anyone can use), so the
// shared error domain is pinned here.
func TestDomain(t *testing.T) {
	if webhook.Domain != domain.Domain {
		t.Fatalf("Domain = %q, want %q", webhook.Domain, domain.Domain)
	}
}

func TestKnownAnswers(t *testing.T) {
	// Computed outside Go (Python's hmac and base64).
	const wantEP = "t=1717171300,v1=5066a3ad3385c83daa84341ffd25e305b947653cf09bf7d3004c814b6b2e3af9"
	if got := webhook.EchoPilotHeader(secret, now, body); got != wantEP {
		t.Errorf("EchoPilotHeader = %s, want %s", got, wantEP)
	}
	h := swHeaders(t, secret, msgID, now, body)
	want := webhook.Headers{ID: msgID, Timestamp: "1717171300", Signature: "v1,EiE0I0ecQ0c0TRapxdyxJkJZ1uCXYIPB1eZu8kDqghM="}
	if h != want {
		t.Errorf("Sign = %+v, want %+v", h, want)
	}
}

// The example of the Standard Webhooks spec and Svix's documentation.
func TestStandardInteropVector(t *testing.T) {
	const (
		svixSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		id         = "msg_p5jXN8AQM9LWM0D4loKWxJek"
		ts         = 1614265330
		payload    = `{"test": 2432232314}`
		wantSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	)
	h, err := webhook.Sign(svixSecret, id, time.Unix(ts, 0), []byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	if h.Signature != wantSig || h.Timestamp != "1614265330" || h.ID != id {
		t.Fatalf("Sign = %+v, want signature %s", h, wantSig)
	}
	v := webhook.Verifier{Now: func() time.Time { return time.Unix(ts+10, 0) }}
	hdr := webhook.Headers{ID: id, Timestamp: "1614265330", Signature: wantSig}
	got, err := v.Verify([]byte(payload), hdr, []string{svixSecret})
	if err != nil {
		t.Fatal(err)
	}
	if got.MessageID != id || got.ReplayKey != "swh:"+id || got.Timestamp.Unix() != ts {
		t.Fatalf("Verified = %+v", got)
	}
	// The spec's libraries strip an optional prefix: the bare base64 works.
	if _, err := v.Verify([]byte(payload), hdr, []string{strings.TrimPrefix(svixSecret, "whsec_")}); err != nil {
		t.Fatalf("secret without prefix: %v", err)
	}
}

func TestValid(t *testing.T) {
	got, err := verifier().Verify(body, epHeaders(secret, now, body), []string{secret})
	if err != nil {
		t.Fatal(err)
	}
	want := webhook.Verified{
		Scheme:    webhook.SchemeEchoPilot,
		Timestamp: now,
		ReplayKey: "eps:3dbeee39d9cef038e6178b5d2d4d13f60697ad71930a9c1f17616520389a2cf5", // sha256("<t>.<body>"), Python
		KeepUntil: now.Add(5 * time.Minute),
	}
	if got != want {
		t.Fatalf("EchoPilot: got %+v, want %+v", got, want)
	}

	got, err = verifier().Verify(body, swHeaders(t, secret, msgID, now, body), []string{secret})
	if err != nil {
		t.Fatal(err)
	}
	want = webhook.Verified{
		Scheme:    webhook.SchemeStandard,
		Timestamp: now,
		ReplayKey: "swh:" + msgID,
		KeepUntil: now.Add(5 * time.Minute),
		MessageID: msgID,
	}
	if got != want {
		t.Fatalf("Standard: got %+v, want %+v", got, want)
	}
}

func TestWrongSecret(t *testing.T) {
	for _, s := range schemes {
		t.Run(s.name, func(t *testing.T) {
			_, err := verifier().Verify(body, s.sign(t, other, now, body), []string{secret, oldSecret})
			wantErr(t, err, webhook.ReasonSignatureInvalid, codes.Unauthenticated)
		})
	}
}

// No usable secret answers exactly as a wrong signature does, so a caller
// cannot probe which tenants exist.
func TestNoUsableSecret(t *testing.T) {
	for _, s := range schemes {
		for _, secrets := range [][]string{nil, {}, {""}} {
			_, err := verifier().Verify(body, s.sign(t, secret, now, body), secrets)
			wantErr(t, err, webhook.ReasonSignatureInvalid, codes.Unauthenticated)
		}
	}
	// An empty key is never used: anyone could compute HMAC("", ...).
	_, err := verifier().Verify(body, epHeaders("", now, body), []string{""})
	wantErr(t, err, webhook.ReasonSignatureInvalid, codes.Unauthenticated)
	// Standard Webhooks: a secret that is not base64, or is empty after the
	// prefix, cannot verify anything.
	for _, bad := range []string{"whsec_", "whsec_***", "not base64!"} {
		_, err := verifier().Verify(body, swHeaders(t, secret, msgID, now, body), []string{bad})
		wantErr(t, err, webhook.ReasonSignatureInvalid, codes.Unauthenticated)
	}
	// An unusable secret next to the right one does not get in the way.
	if _, err := verifier().Verify(body, swHeaders(t, secret, msgID, now, body), []string{"whsec_***", "", secret}); err != nil {
		t.Fatal(err)
	}
}

// The decoy key that stands in for an unknown tenant's secrets is in the
// source for anyone to read: what it signs must still be refused.
func TestDecoyNeverAccepted(t *testing.T) {
	decoy := webhook.EchoPilotHeader(webhook.DecoyKey, now, body)
	for _, secrets := range [][]string{nil, {""}} {
		_, err := verifier().Verify(body, webhook.Headers{EchoPilot: decoy}, secrets)
		wantErr(t, err, webhook.ReasonSignatureInvalid, codes.Unauthenticated)
		h := swHeaders(t, "whsec_"+base64.StdEncoding.EncodeToString([]byte(webhook.DecoyKey)), msgID, now, body)
		_, err = verifier().Verify(body, h, secrets)
		wantErr(t, err, webhook.ReasonSignatureInvalid, codes.Unauthenticated)
	}
}

func TestTolerance(t *testing.T) {
	for _, s := range schemes {
		for _, tc := range []struct {
			name      string
			signedAt  time.Time
			tolerance time.Duration
			ok        bool
		}{
			{"edge of past", now.Add(-5 * time.Minute), 0, true},
			{"edge of future", now.Add(5 * time.Minute), 0, true},
			{"stale", now.Add(-5*time.Minute - time.Second), 0, false},
			{"future beyond tolerance", now.Add(5*time.Minute + time.Second), 0, false},
			{"a day old", now.Add(-24 * time.Hour), 0, false},
			{"epoch", time.Unix(0, 0), 0, false},
			{"custom tolerance", now.Add(-11 * time.Second), 10 * time.Second, false},
			{"custom tolerance edge", now.Add(10 * time.Second), 10 * time.Second, true},
			{"negative tolerance means default", now.Add(-299 * time.Second), -time.Second, true},
		} {
			t.Run(s.name+"/"+tc.name, func(t *testing.T) {
				v := verifier()
				v.Tolerance = tc.tolerance
				got, err := v.Verify(body, s.sign(t, secret, tc.signedAt, body), []string{secret})
				if !tc.ok {
					wantErr(t, err, webhook.ReasonSignatureStale, codes.Unauthenticated)
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if !got.Timestamp.Equal(tc.signedAt) {
					t.Fatalf("timestamp %v, want %v", got.Timestamp, tc.signedAt)
				}
			})
		}
	}
}

func TestDefaultClock(t *testing.T) {
	// Now nil means the wall clock, Tolerance zero means five minutes.
	for _, s := range schemes {
		var v webhook.Verifier
		if _, err := v.Verify(body, s.sign(t, secret, time.Now(), body), []string{secret}); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		_, err := v.Verify(body, s.sign(t, secret, time.Now().Add(-301*time.Second), body), []string{secret})
		wantErr(t, err, webhook.ReasonSignatureStale, codes.Unauthenticated)
	}
}

func TestHugeTimestamp(t *testing.T) {
	// Far beyond any time.Duration: stale, not wrapped into range.
	for _, at := range []time.Time{time.Unix(1<<62, 0), time.Unix(99999999999, 0)} {
		for _, s := range schemes {
			_, err := verifier().Verify(body, s.sign(t, secret, at, body), []string{secret})
			wantErr(t, err, webhook.ReasonSignatureStale, codes.Unauthenticated)
		}
	}
	// One past int64 cannot be a timestamp at all.
	const over = "9223372036854775808"
	_, err := verifier().Verify(body, webhook.Headers{EchoPilot: "t=" + over + ",v1=" + strings.Repeat("00", 32)}, []string{secret})
	wantErr(t, err, webhook.ReasonSignatureMalformed, codes.InvalidArgument)
	h := swHeaders(t, secret, msgID, now, body)
	h.Timestamp = over
	_, err = verifier().Verify(body, h, []string{secret})
	wantErr(t, err, webhook.ReasonSignatureMalformed, codes.InvalidArgument)
}

func TestStaleOnlyWhenSigned(t *testing.T) {
	// A forgery with an old timestamp is INVALID, so STALE always means a
	// delivery signed with a tenant secret.
	for _, s := range schemes {
		_, err := verifier().Verify(body, s.sign(t, other, now.Add(-time.Hour), body), []string{secret})
		wantErr(t, err, webhook.ReasonSignatureInvalid, codes.Unauthenticated)
	}
}

func TestRotation(t *testing.T) {
	both := []string{oldSecret, secret}
	for _, s := range schemes {
		// Two active secrets; the sender signs with either.
		for _, signer := range both {
			if _, err := verifier().Verify(body, s.sign(t, signer, now, body), both); err != nil {
				t.Fatalf("%s signed with %s: %v", s.name, signer, err)
			}
		}
		// Once the old secret is retired its signatures no longer count.
		_, err := verifier().Verify(body, s.sign(t, oldSecret, now, body), []string{secret})
		wantErr(t, err, webhook.ReasonSignatureInvalid, codes.Unauthenticated)
	}

	// A header with two signatures, one from a retired secret, in either order.
	ts := strconv.FormatInt(now.Unix(), 10)
	epOld, epNew := v1Hex(oldSecret, now, body), v1Hex(secret, now, body)
	for _, h := range []string{
		"t=" + ts + ",v1=" + epOld + ",v1=" + epNew,
		"t=" + ts + ",v1=" + epNew + ",v1=" + epOld,
	} {
		if _, err := verifier().Verify(body, webhook.Headers{EchoPilot: h}, []string{secret}); err != nil {
			t.Fatalf("EchoPilot two signatures: %v", err)
		}
	}
	swOld, swNew := swHeaders(t, oldSecret, msgID, now, body), swHeaders(t, secret, msgID, now, body)
	for _, sig := range []string{swOld.Signature + " " + swNew.Signature, swNew.Signature + " " + swOld.Signature} {
		h := swNew
		h.Signature = sig
		if _, err := verifier().Verify(body, h, []string{secret}); err != nil {
			t.Fatalf("Standard two signatures: %v", err)
		}
	}
}

// v1Hex is the v1 value EchoPilotHeader puts in a header.
func v1Hex(secret string, at time.Time, body []byte) string {
	_, sig, _ := strings.Cut(webhook.EchoPilotHeader(secret, at, body), ",v1=")
	return sig
}

func TestEchoPilotHeaderShape(t *testing.T) {
	ts := strconv.FormatInt(now.Unix(), 10)
	sig := v1Hex(secret, now, body)
	wrong := v1Hex(other, now, body)
	for _, h := range []string{
		"v1=" + sig + ",t=" + ts,                                    // any order
		"t=" + ts + ",v1=" + strings.ToUpper(sig),                   // hex case
		"t=" + ts + ",v0=zz,v2=" + wrong + ",v1=" + sig,             // unknown keys ignored
		"t=" + ts + ",foo=,v1=" + sig,                               // even empty ones
		" t=" + ts + " , v1=" + sig + " ",                           // spaces around elements
		"t=" + ts + strings.Repeat(",v1="+wrong, 15) + ",v1=" + sig, // 16 signatures, last matches
	} {
		if _, err := verifier().Verify(body, webhook.Headers{EchoPilot: h}, []string{secret}); err != nil {
			t.Errorf("%.60q: %v", h, err)
		}
	}
}

func TestStandardHeaderShape(t *testing.T) {
	good := swHeaders(t, secret, msgID, now, body)
	wrong := swHeaders(t, other, msgID, now, body).Signature
	asym := "v1a," + base64.StdEncoding.EncodeToString(make([]byte, 64)) // an ed25519 signature
	for _, sig := range []string{
		asym + " " + good.Signature,                       // other versions ignored
		"v2,????? " + good.Signature,                      // even unparsable ones
		"  " + good.Signature + "  ",                      // surrounding space
		wrong + "   " + good.Signature,                    // several spaces
		wrong + "\t" + good.Signature,                     // any whitespace
		strings.Repeat(wrong+" ", 15) + good.Signature,    // 16 signatures, last matches
		strings.Repeat(asym+" ", 20) + good.Signature,     // only v1 entries count
		"v1," + strings.TrimPrefix(good.Signature, "v1,"), // sanity
	} {
		h := good
		h.Signature = sig
		if _, err := verifier().Verify(body, h, []string{secret}); err != nil {
			t.Errorf("%.60q: %v", sig, err)
		}
	}
}

func TestMissing(t *testing.T) {
	for _, h := range []webhook.Headers{{}, {EchoPilot: "  ", ID: " ", Timestamp: "\t", Signature: " "}} {
		_, err := verifier().Verify(body, h, []string{secret})
		wantErr(t, err, webhook.ReasonSignatureMissing, codes.Unauthenticated)
	}
}

func TestMalformedEchoPilot(t *testing.T) {
	ts := strconv.FormatInt(now.Unix(), 10)
	sig := v1Hex(secret, now, body)
	for _, tc := range []struct{ name, header string }{
		{"empty t", "t="},
		{"empty t with v1", "t=,v1=" + sig},
		{"no t", "v1=" + sig},
		{"t not a number", "t=abc,v1=" + sig},
		{"t negative", "t=-" + ts + ",v1=" + sig},
		{"t with plus", "t=+" + ts + ",v1=" + sig},
		{"t fractional", "t=" + ts + ".5,v1=" + sig},
		{"t with space inside", "t=17 17,v1=" + sig},
		{"two t", "t=" + ts + ",t=" + ts + ",v1=" + sig},
		{"odd hex", "t=" + ts + ",v1=" + sig[:63]},
		{"not hex", "t=" + ts + ",v1=" + strings.Repeat("zz", 32)},
		{"short signature", "t=" + ts + ",v1=abcd"},
		{"long signature", "t=" + ts + ",v1=" + sig + "00"},
		{"base64 signature", "t=" + ts + ",v1=" + base64.StdEncoding.EncodeToString(make([]byte, 32))},
		{"empty v1", "t=" + ts + ",v1="},
		{"one bad v1 among good", "t=" + ts + ",v1=" + sig + ",v1=xyz"},
		{"no v1", "t=" + ts},
		{"only v0", "t=" + ts + ",v0=" + sig},
		{"element without =", "t=" + ts + ",v1=" + sig + ",junk"},
		{"semicolons", "t=" + ts + ";v1=" + sig},
		{"just commas", ",,,"},
		{"17 signatures", "t=" + ts + strings.Repeat(",v1="+sig, 17)},
		{"over 4 KiB", "t=" + ts + ",v1=" + sig + ",x=" + strings.Repeat("a", 4096)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := verifier().Verify(body, webhook.Headers{EchoPilot: tc.header}, []string{secret})
			wantErr(t, err, webhook.ReasonSignatureMalformed, codes.InvalidArgument)
			if strings.Contains(err.Error(), sig) {
				t.Fatal("error message quotes the header")
			}
		})
	}
}

func TestMalformedStandard(t *testing.T) {
	good := swHeaders(t, secret, msgID, now, body)
	sig := good.Signature
	raw := strings.TrimPrefix(sig, "v1,")
	for _, tc := range []struct {
		name string
		edit func(h *webhook.Headers)
	}{
		{"no id", func(h *webhook.Headers) { h.ID = "" }},
		{"no timestamp", func(h *webhook.Headers) { h.Timestamp = "" }},
		{"no signature", func(h *webhook.Headers) { h.Signature = "" }},
		{"only an id", func(h *webhook.Headers) { h.Timestamp, h.Signature = "", "" }},
		{"blank id", func(h *webhook.Headers) { h.ID = "   " }},
		{"id of 256 bytes", func(h *webhook.Headers) { h.ID = strings.Repeat("m", 256) }},
		{"id with NUL", func(h *webhook.Headers) { h.ID = "msg_\x00" }},
		{"id with newline", func(h *webhook.Headers) { h.ID = "msg_1\nmsg_2" }},
		{"id with DEL", func(h *webhook.Headers) { h.ID = "msg_\x7f" }},
		{"id with C1 control", func(h *webhook.Headers) { h.ID = "msg_\u0085" }},
		{"id not UTF-8", func(h *webhook.Headers) { h.ID = "msg_\xff" }},
		{"timestamp not a number", func(h *webhook.Headers) { h.Timestamp = "soon" }},
		{"timestamp negative", func(h *webhook.Headers) { h.Timestamp = "-" + h.Timestamp }},
		{"timestamp with plus", func(h *webhook.Headers) { h.Timestamp = "+" + h.Timestamp }},
		{"timestamp fractional", func(h *webhook.Headers) { h.Timestamp += ".0" }},
		{"timestamp with space", func(h *webhook.Headers) { h.Timestamp += " " }},
		{"timestamp in milliseconds overflowing", func(h *webhook.Headers) { h.Timestamp = strings.Repeat("9", 25) }},
		{"entry without comma", func(h *webhook.Headers) { h.Signature = raw }},
		{"entry without comma beside a good one", func(h *webhook.Headers) { h.Signature = sig + " junk" }},
		{"comma-separated list", func(h *webhook.Headers) { h.Signature = sig + "," + sig }},
		{"bad base64", func(h *webhook.Headers) { h.Signature = "v1,!!!!" + raw[4:] }},
		{"URL-safe base64", func(h *webhook.Headers) { h.Signature = "v1,-_" + raw[2:] }},
		{"unpadded base64", func(h *webhook.Headers) { h.Signature = "v1," + strings.TrimRight(raw, "=") }},
		{"non-canonical padding bits", func(h *webhook.Headers) { h.Signature = "v1," + raw[:42] + "N=" }},
		{"hex signature", func(h *webhook.Headers) { h.Signature = "v1," + strings.Repeat("ab", 32) }},
		{"short signature", func(h *webhook.Headers) { h.Signature = "v1,AAAA" }},
		{"empty v1", func(h *webhook.Headers) { h.Signature = "v1," }},
		{"only v1a", func(h *webhook.Headers) { h.Signature = "v1a," + raw }},
		{"17 signatures", func(h *webhook.Headers) { h.Signature = strings.Repeat(sig+" ", 17) }},
		{"signature over 4 KiB", func(h *webhook.Headers) { h.Signature = sig + " v9," + strings.Repeat("a", 4096) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := good
			tc.edit(&h)
			_, err := verifier().Verify(body, h, []string{secret})
			wantErr(t, err, webhook.ReasonSignatureMalformed, codes.InvalidArgument)
			if strings.Contains(err.Error(), raw) || strings.Contains(err.Error(), "msg_") {
				t.Fatal("error message quotes a header")
			}
		})
	}
	// Sanity: the unedited headers verify, so each case fails for its edit.
	if _, err := verifier().Verify(body, good, []string{secret}); err != nil {
		t.Fatal(err)
	}
	// The padding-bits case must be one only strict decoding refuses.
	if _, err := base64.StdEncoding.DecodeString(raw[:42] + "N="); err != nil || raw[42] == 'N' {
		t.Fatal("the padding-bits case does not test strictness")
	}
}

func TestEchoPilotTakesPrecedence(t *testing.T) {
	ep := epHeaders(secret, now, body)
	sw := swHeaders(t, secret, msgID, now, body)
	both := webhook.Headers{EchoPilot: ep.EchoPilot, ID: sw.ID, Timestamp: sw.Timestamp, Signature: sw.Signature}
	got, err := verifier().Verify(body, both, []string{secret})
	if err != nil || got.Scheme != webhook.SchemeEchoPilot {
		t.Fatalf("got %+v, %v; want the EchoPilot scheme", got, err)
	}
	// No fallback: a bad EchoPilot header fails even beside valid Standard ones.
	both.EchoPilot = "t=1"
	_, err = verifier().Verify(body, both, []string{secret})
	wantErr(t, err, webhook.ReasonSignatureMalformed, codes.InvalidArgument)
	both.EchoPilot = webhook.EchoPilotHeader(other, now, body)
	_, err = verifier().Verify(body, both, []string{secret})
	wantErr(t, err, webhook.ReasonSignatureInvalid, codes.Unauthenticated)
}

func TestBodyAltered(t *testing.T) {
	for _, s := range schemes {
		h := s.sign(t, secret, now, body)
		for _, i := range []int{0, 1, len(body) / 2, len(body) - 2, len(body) - 1} {
			for _, bit := range []byte{0x01, 0x80} {
				altered := append([]byte(nil), body...)
				altered[i] ^= bit
				_, err := verifier().Verify(altered, h, []string{secret})
				wantErr(t, err, webhook.ReasonSignatureInvalid, codes.Unauthenticated)
			}
		}
		for name, altered := range map[string][]byte{
			"truncated": body[:len(body)-1],
			"extended":  append(append([]byte(nil), body...), ' '),
			"prefixed":  append([]byte{' '}, body...),
			"empty":     nil,
		} {
			_, err := verifier().Verify(altered, h, []string{secret})
			if apierr.Reason(err) != webhook.ReasonSignatureInvalid {
				t.Errorf("%s %s: %v", s.name, name, err)
			}
		}
	}
}

func TestTimestampAltered(t *testing.T) {
	sig := v1Hex(secret, now, body)
	for _, ts := range []string{
		strconv.FormatInt(now.Unix()+1, 10),
		strconv.FormatInt(now.Unix()-1, 10),
		"0" + strconv.FormatInt(now.Unix(), 10), // same instant, other signed string
	} {
		_, err := verifier().Verify(body, webhook.Headers{EchoPilot: "t=" + ts + ",v1=" + sig}, []string{secret})
		wantErr(t, err, webhook.ReasonSignatureInvalid, codes.Unauthenticated)

		h := swHeaders(t, secret, msgID, now, body)
		h.Timestamp = ts
		_, err = verifier().Verify(body, h, []string{secret})
		wantErr(t, err, webhook.ReasonSignatureInvalid, codes.Unauthenticated)
	}
}

func TestIDAltered(t *testing.T) {
	for _, id := range []string{msgID + "x", msgID[:len(msgID)-1], strings.ToUpper(msgID), msgID + "." + "1717171300"} {
		h := swHeaders(t, secret, msgID, now, body)
		h.ID = id
		_, err := verifier().Verify(body, h, []string{secret})
		wantErr(t, err, webhook.ReasonSignatureInvalid, codes.Unauthenticated)
	}
}

func TestReplayKey(t *testing.T) {
	key := func(h webhook.Headers, b []byte) string {
		t.Helper()
		got, err := verifier().Verify(b, h, []string{oldSecret, secret})
		if err != nil {
			t.Fatal(err)
		}
		return got.ReplayKey
	}
	otherBody := []byte(`{"type":"audit.export.completed","data":{"id":"exp_2"}}`)

	// EchoPilot: an identical redelivery has the same key, even re-signed
	// with the other active secret or with its v1 list rearranged, since
	// the key covers what is signed and nothing else.
	ep := key(epHeaders(secret, now, body), body)
	if !strings.HasPrefix(ep, "eps:") {
		t.Fatalf("key %q", ep)
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	for _, h := range []string{
		webhook.EchoPilotHeader(secret, now, body),
		webhook.EchoPilotHeader(oldSecret, now, body),
		"v1=" + v1Hex(oldSecret, now, body) + ",t=" + ts + ",v1=" + v1Hex(secret, now, body),
	} {
		if got := key(webhook.Headers{EchoPilot: h}, body); got != ep {
			t.Fatalf("redelivery key %q, want %q", got, ep)
		}
	}
	if got := key(epHeaders(secret, now, otherBody), otherBody); got == ep {
		t.Fatal("different body, same key")
	}
	if got := key(epHeaders(secret, now.Add(time.Second), body), body); got == ep {
		t.Fatal("different t, same key")
	}

	// Standard Webhooks: the key is the signed id, so the sender's retry of
	// a message (same id, new timestamp) is a repeat too.
	sw := key(swHeaders(t, secret, msgID, now, body), body)
	if sw != "swh:"+msgID {
		t.Fatalf("key %q", sw)
	}
	if got := key(swHeaders(t, secret, msgID, now.Add(time.Minute), body), body); got != sw {
		t.Fatalf("retry key %q, want %q", got, sw)
	}
	if got := key(swHeaders(t, secret, "msg_other", now, body), body); got == sw {
		t.Fatal("different id, same key")
	}
	if got := key(swHeaders(t, secret, "msg_other", now, otherBody), otherBody); got == sw {
		t.Fatal("different id and body, same key")
	}
}

// Verify keeps no state: the replay cache is the caller's.
func TestVerifyIsPure(t *testing.T) {
	for _, s := range schemes {
		h := s.sign(t, secret, now, body)
		v := verifier()
		for i := range 3 {
			if _, err := v.Verify(body, h, []string{secret}); err != nil {
				t.Fatalf("attempt %d: %v", i, err)
			}
		}
		got, _ := v.Verify(body, h, []string{secret})
		v.Now = func() time.Time { return got.KeepUntil }
		if _, err := v.Verify(body, h, []string{secret}); err != nil {
			t.Fatalf("at KeepUntil: %v", err)
		}
		v.Now = func() time.Time { return got.KeepUntil.Add(time.Second) }
		_, err := v.Verify(body, h, []string{secret})
		wantErr(t, err, webhook.ReasonSignatureStale, codes.Unauthenticated)
	}
}

func TestSignErrors(t *testing.T) {
	for _, s := range []string{
		"",
		"whsec_",
		strings.TrimPrefix(secret, "whsec_"), // bare base64 verifies, but we do not issue it
		"WHSEC_" + strings.TrimPrefix(secret, "whsec_"),
		"whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 23)),
		"whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 65)),
		"whsec_***",
		secret + "\n",
	} {
		_, err := webhook.Sign(s, msgID, now, body)
		wantErr(t, err, webhook.ReasonSecretInvalid, codes.InvalidArgument)
		if len(s) > len("whsec_") && strings.Contains(err.Error(), s) {
			t.Fatal("error quotes the secret")
		}
	}
	for _, id := range []string{"", " ", strings.Repeat("m", 256), "msg\r\n", "msg_\xff"} {
		_, err := webhook.Sign(secret, id, now, body)
		wantErr(t, err, webhook.ReasonMessageInvalid, codes.InvalidArgument)
	}
	_, err := webhook.Sign(secret, msgID, time.Unix(-1, 0), body)
	wantErr(t, err, webhook.ReasonMessageInvalid, codes.InvalidArgument)
	// Bounds are inclusive.
	h := swHeaders(t, secret, strings.Repeat("m", 255), now, body)
	if _, err := verifier().Verify(body, h, []string{secret}); err != nil {
		t.Fatal(err)
	}
}

func TestSecrets(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		s, err := webhook.NewSecret()
		if err != nil {
			t.Fatal(err)
		}
		if !webhook.ValidSecret(s) || len(s) != len("whsec_")+32 || seen[s] {
			t.Fatalf("NewSecret = %q (valid %v, seen %v)", s, webhook.ValidSecret(s), seen[s])
		}
		seen[s] = true
		// A fresh secret signs in both schemes.
		if _, err := verifier().Verify(body, swHeaders(t, s, msgID, now, body), []string{s}); err != nil {
			t.Fatal(err)
		}
		if _, err := verifier().Verify(body, epHeaders(s, now, body), []string{s}); err != nil {
			t.Fatal(err)
		}
	}
	b64 := base64.StdEncoding.EncodeToString
	for s, want := range map[string]bool{
		secret:                                     true,
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw":   true,
		"whsec_" + b64(make([]byte, 24)):           true,
		"whsec_" + b64(make([]byte, 64)):           true,
		"whsec_" + b64(make([]byte, 23)):           false,
		"whsec_" + b64(make([]byte, 65)):           false,
		"":                                         false,
		"whsec_":                                   false,
		"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw":         false, // prefix required
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n": false,
		"whsec_MfKQ9r8GKYqrTwjUPD8I\nLPZIo2LaLaSw": false, // the lenient decoder skips newlines
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS":    false, // truncated
		"whsec_" + strings.TrimRight(b64(make([]byte, 25)), "="): false, // unpadded
		"whsec_" + b64(make([]byte, 25))[:33] + "B==":            false, // padding bits set
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS_":                 false, // URL alphabet
		" whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw":                false,
	} {
		if got := webhook.ValidSecret(s); got != want {
			t.Errorf("ValidSecret(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestHTTPHeaders(t *testing.T) {
	sw := swHeaders(t, secret, msgID, now, body)
	sw.EchoPilot = webhook.EchoPilotHeader(secret, now, body)
	hdr := http.Header{}
	hdr.Set("webhook-id", "stale value, replaced")
	sw.Set(hdr)
	if got := webhook.HeadersFrom(hdr); got != sw {
		t.Fatalf("round trip: %+v, want %+v", got, sw)
	}
	// Header names are case-insensitive on the wire.
	for name, want := range map[string]string{
		"Webhook-Id":            msgID,
		"WEBHOOK-TIMESTAMP":     sw.Timestamp,
		"webhook-signature":     sw.Signature,
		"x-echopilot-signature": sw.EchoPilot,
	} {
		if got := hdr.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	// Empty fields are not written.
	hdr = http.Header{}
	webhook.Headers{ID: msgID}.Set(hdr)
	if len(hdr) != 1 {
		t.Fatalf("wrote %v", hdr)
	}
}
