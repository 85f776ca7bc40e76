package hmacsig_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/hmacsig"
)

var (
	now       = time.Unix(1717171300, 0).UTC()
	secret    = []byte("whsec_test_current_0123456789abcdef")
	oldSecret = []byte("whsec_test_previous_fedcba9876543210")
	other     = []byte("whsec_other")
	body      = []byte(`{"id":"evt_1","type":"charge.succeeded","data":{"object":{}}}`)
	ts        = strconv.FormatInt(now.Unix(), 10)
)

// v1 is the hex signature Sign puts in a header.
func v1(secret []byte, t time.Time, body []byte) string {
	_, sig, _ := strings.Cut(hmacsig.Sign(secret, t, body), ",v1=")
	return sig
}

func TestSignKnownAnswers(t *testing.T) {
	// Computed outside Go (Python's hmac): the finops and audit vectors.
	for _, tc := range []struct {
		secret, body, want string
	}{
		{string(secret), string(body), "t=1717171300,v1=62714f9d56ce1837e29afbf87b2938327a4d700726c8c7f26ad6f7f1aa26c933"},
		{"whsec_YXVkaXQtd2ViaG9vay10ZXN0LWN1cnJlbnQta2V5ISE=", `{"type":"audit.export.completed","data":{"id":"exp_1"}}`,
			"t=1717171300,v1=5066a3ad3385c83daa84341ffd25e305b947653cf09bf7d3004c814b6b2e3af9"},
	} {
		if got := hmacsig.Sign([]byte(tc.secret), now, []byte(tc.body)); got != tc.want {
			t.Errorf("Sign = %s, want %s", got, tc.want)
		}
	}
}

func TestMACStandardWebhooksVector(t *testing.T) {
	// The Standard Webhooks spec's example: signed is "<id>.<timestamp>".
	key, _ := base64.StdEncoding.DecodeString("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	got := hmacsig.MAC(key, "msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330", []byte(`{"test": 2432232314}`))
	if want := "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; base64.StdEncoding.EncodeToString(got) != want {
		t.Fatalf("MAC = %x", got)
	}
}

func TestParseValid(t *testing.T) {
	sig := v1(secret, now, body)
	raw, _ := hex.DecodeString(sig)
	wrong := v1(other, now, body)
	rawWrong, _ := hex.DecodeString(wrong)
	for _, tc := range []struct {
		name, header string
		t            string
		unix         int64
		sigs         [][]byte
	}{
		{"signed", hmacsig.Sign(secret, now, body), ts, now.Unix(), [][]byte{raw}},
		{"any order", "v1=" + sig + ",t=" + ts, ts, now.Unix(), [][]byte{raw}},
		{"upper-case hex", "t=" + ts + ",v1=" + strings.ToUpper(sig), ts, now.Unix(), [][]byte{raw}},
		{"unknown keys ignored", "t=" + ts + ",v0=zz,v2=,foo=bar,v1=" + sig, ts, now.Unix(), [][]byte{raw}},
		{"spaces around elements", " t=" + ts + " ,\tv1=" + sig + " ", ts, now.Unix(), [][]byte{raw}},
		{"two v1 in order", "t=" + ts + ",v1=" + wrong + ",v1=" + sig, ts, now.Unix(), [][]byte{rawWrong, raw}},
		{"16 v1", "t=" + ts + strings.Repeat(",v1="+sig, 16), ts, now.Unix(), repeat(raw, 16)},
		{"leading zeros kept as sent", "t=0" + ts + ",v1=" + sig, "0" + ts, now.Unix(), [][]byte{raw}},
		{"20 digits", "t=00000000001717171300,v1=" + sig, "00000000001717171300", now.Unix(), [][]byte{raw}},
		{"epoch", "t=0,v1=" + sig, "0", 0, [][]byte{raw}},
		{"int64 max", "t=9223372036854775807,v1=" + sig, "9223372036854775807", 1<<63 - 1, [][]byte{raw}},
		{"4096 bytes", padTo("t="+ts+",v1="+sig+",x=", hmacsig.MaxHeaderLen), ts, now.Unix(), [][]byte{raw}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := hmacsig.Parse(tc.header)
			if err != nil {
				t.Fatal(err)
			}
			if h.T != tc.t || h.Unix != tc.unix || len(h.Signatures) != len(tc.sigs) {
				t.Fatalf("Parse = %+v", h)
			}
			for i := range tc.sigs {
				if !bytes.Equal(h.Signatures[i], tc.sigs[i]) {
					t.Fatalf("signature %d = %x, want %x", i, h.Signatures[i], tc.sigs[i])
				}
			}
			if !h.Time().Equal(time.Unix(tc.unix, 0)) || h.Time().Location() != time.UTC {
				t.Fatalf("Time = %v", h.Time())
			}
		})
	}
}

func padTo(s string, n int) string { return s + strings.Repeat("a", n-len(s)) }

func repeat(sig []byte, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = sig
	}
	return out
}

func TestParseMalformed(t *testing.T) {
	sig := v1(secret, now, body)
	for _, tc := range []struct {
		name, header string
		want         error
	}{
		{"empty", "", hmacsig.ErrElement},
		{"empty t", "t=", hmacsig.ErrTimestamp},
		{"empty t with v1", "t=,v1=" + sig, hmacsig.ErrTimestamp},
		{"no t", "v1=" + sig, hmacsig.ErrNoTimestamp},
		{"t not a number", "t=abc,v1=" + sig, hmacsig.ErrTimestamp},
		{"t negative", "t=-" + ts + ",v1=" + sig, hmacsig.ErrTimestamp},
		{"t with plus", "t=+" + ts + ",v1=" + sig, hmacsig.ErrTimestamp},
		{"t fractional", "t=" + ts + ".5,v1=" + sig, hmacsig.ErrTimestamp},
		{"t with space inside", "t=17 17,v1=" + sig, hmacsig.ErrTimestamp},
		{"t in hex", "t=0x66,v1=" + sig, hmacsig.ErrTimestamp},
		{"t non-ASCII digits", "t=١٧١٧,v1=" + sig, hmacsig.ErrTimestamp},
		{"t of 21 digits", "t=000000000001717171300,v1=" + sig, hmacsig.ErrTimestamp},
		{"t one past int64", "t=9223372036854775808,v1=" + sig, hmacsig.ErrTimestampRange},
		{"t of 20 nines", "t=99999999999999999999,v1=" + sig, hmacsig.ErrTimestampRange},
		{"two t", "t=" + ts + ",t=" + ts + ",v1=" + sig, hmacsig.ErrDuplicateT},
		{"odd hex", "t=" + ts + ",v1=" + sig[:63], hmacsig.ErrSignature},
		{"not hex", "t=" + ts + ",v1=" + strings.Repeat("zz", 32), hmacsig.ErrSignature},
		{"short signature", "t=" + ts + ",v1=abcd", hmacsig.ErrSignature},
		{"long signature", "t=" + ts + ",v1=" + sig + "00", hmacsig.ErrSignature},
		{"base64 signature", "t=" + ts + ",v1=" + base64.StdEncoding.EncodeToString(make([]byte, 32)), hmacsig.ErrSignature},
		{"empty v1", "t=" + ts + ",v1=", hmacsig.ErrSignature},
		{"one bad v1 among good", "t=" + ts + ",v1=" + sig + ",v1=xyz", hmacsig.ErrSignature},
		{"no v1", "t=" + ts, hmacsig.ErrNoSignature},
		{"only v0", "t=" + ts + ",v0=" + sig, hmacsig.ErrNoSignature},
		{"element without =", "t=" + ts + ",v1=" + sig + ",junk", hmacsig.ErrElement},
		{"trailing comma", "t=" + ts + ",v1=" + sig + ",", hmacsig.ErrElement},
		{"semicolons", "t=" + ts + ";v1=" + sig, hmacsig.ErrTimestamp},
		{"just commas", ",,,", hmacsig.ErrElement},
		{"17 signatures", "t=" + ts + strings.Repeat(",v1="+sig, 17), hmacsig.ErrTooManySignatures},
		{"over 4 KiB", padTo("t="+ts+",v1="+sig+",x=", hmacsig.MaxHeaderLen+1), hmacsig.ErrTooLong},
		// The first fault in header order is the one reported.
		{"bad t before junk", "t=x,junk", hmacsig.ErrTimestamp},
		{"junk before bad t", "junk,t=x", hmacsig.ErrElement},
		// Range is checked once the header is known complete.
		{"overflow and no v1", "t=9223372036854775808", hmacsig.ErrNoSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := hmacsig.Parse(tc.header)
			if err != tc.want {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !errors.Is(err, hmacsig.ErrMalformed) {
				t.Fatalf("%v is not ErrMalformed", err)
			}
			if h.T != "" || h.Unix != 0 || h.Signatures != nil {
				t.Fatalf("error with a result: %+v", h)
			}
			if strings.Contains(err.Error(), sig) {
				t.Fatal("error message quotes the header")
			}
		})
	}
}

func TestErrorsAreDistinct(t *testing.T) {
	all := []error{
		hmacsig.ErrTooLong, hmacsig.ErrElement, hmacsig.ErrDuplicateT, hmacsig.ErrTimestamp,
		hmacsig.ErrTimestampRange, hmacsig.ErrTooManySignatures, hmacsig.ErrSignature,
		hmacsig.ErrNoTimestamp, hmacsig.ErrNoSignature,
	}
	for i, a := range all {
		for j, b := range all {
			if (i == j) != errors.Is(a, b) {
				t.Errorf("errors.Is(%v, %v) = %v", a, b, !(i == j))
			}
		}
	}
	for _, e := range []error{hmacsig.ErrNoSecret, hmacsig.ErrMismatch, hmacsig.ErrStale} {
		if errors.Is(e, hmacsig.ErrMalformed) {
			t.Errorf("%v is ErrMalformed", e)
		}
	}
}

func TestParseTimestamp(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  error
	}{
		{"1717171300", 1717171300, nil},
		{"0", 0, nil},
		{"01717171300", 1717171300, nil},
		{"9223372036854775807", 1<<63 - 1, nil},
		{"9223372036854775808", 0, hmacsig.ErrTimestampRange},
		{"", 0, hmacsig.ErrTimestamp},
		{"-1", 0, hmacsig.ErrTimestamp},
		{"+1", 0, hmacsig.ErrTimestamp},
		{" 1", 0, hmacsig.ErrTimestamp},
		{"1e9", 0, hmacsig.ErrTimestamp},
		{strings.Repeat("0", 21), 0, hmacsig.ErrTimestamp},
	} {
		got, err := hmacsig.ParseTimestamp(tc.in)
		if got != tc.want || err != tc.err {
			t.Errorf("ParseTimestamp(%q) = %d, %v; want %d, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestVerify(t *testing.T) {
	both := [][]byte{oldSecret, secret}
	twoSigs := "t=" + ts + ",v1=" + v1(oldSecret, now, body) + ",v1=" + v1(secret, now, body)
	for _, tc := range []struct {
		name      string
		header    string
		body      []byte
		secrets   [][]byte
		tolerance time.Duration
		want      error
	}{
		{"valid", hmacsig.Sign(secret, now, body), body, [][]byte{secret}, 0, nil},
		{"rotation: old secret", hmacsig.Sign(oldSecret, now, body), body, both, 0, nil},
		{"rotation: new secret", hmacsig.Sign(secret, now, body), body, both, 0, nil},
		{"two v1, new secret only", twoSigs, body, [][]byte{secret}, 0, nil},
		{"two v1, old secret only", twoSigs, body, [][]byte{oldSecret}, 0, nil},
		{"empty secret skipped", hmacsig.Sign(secret, now, body), body, [][]byte{nil, {}, secret}, 0, nil},
		{"retired secret", hmacsig.Sign(oldSecret, now, body), body, [][]byte{secret}, 0, hmacsig.ErrMismatch},
		{"wrong secret", hmacsig.Sign(other, now, body), body, both, 0, hmacsig.ErrMismatch},
		{"body altered", hmacsig.Sign(secret, now, body), append(body[:len(body):len(body)], ' '), both, 0, hmacsig.ErrMismatch},
		{"body empty", hmacsig.Sign(secret, now, body), nil, both, 0, hmacsig.ErrMismatch},
		{"t altered", "t=" + strconv.FormatInt(now.Unix()+1, 10) + ",v1=" + v1(secret, now, body), body, both, 0, hmacsig.ErrMismatch},
		{"t with a leading zero", "t=0" + ts + ",v1=" + v1(secret, now, body), body, both, 0, hmacsig.ErrMismatch},
		{"no secret", hmacsig.Sign(nil, now, body), body, nil, 0, hmacsig.ErrNoSecret},
		{"only empty secrets", hmacsig.Sign(nil, now, body), body, [][]byte{nil, {}}, 0, hmacsig.ErrNoSecret},
		{"empty key signature with a real secret", hmacsig.Sign(nil, now, body), body, [][]byte{nil, secret}, 0, hmacsig.ErrMismatch},
		{"decoy never accepted", hmacsig.Sign([]byte(hmacsig.DecoyKey), now, body), body, nil, 0, hmacsig.ErrNoSecret},
		{"edge of past", hmacsig.Sign(secret, now.Add(-5*time.Minute), body), body, both, 0, nil},
		{"edge of future", hmacsig.Sign(secret, now.Add(5*time.Minute), body), body, both, 0, nil},
		{"stale", hmacsig.Sign(secret, now.Add(-5*time.Minute-time.Second), body), body, both, 0, hmacsig.ErrStale},
		{"future beyond tolerance", hmacsig.Sign(secret, now.Add(5*time.Minute+time.Second), body), body, both, 0, hmacsig.ErrStale},
		{"epoch", hmacsig.Sign(secret, time.Unix(0, 0), body), body, both, 0, hmacsig.ErrStale},
		{"int64 max", "t=9223372036854775807,v1=" + hex.EncodeToString(hmacsig.MAC(secret, "9223372036854775807", body)), body, both, 0, hmacsig.ErrStale},
		{"custom tolerance", hmacsig.Sign(secret, now.Add(-11*time.Second), body), body, both, 10 * time.Second, hmacsig.ErrStale},
		{"custom tolerance edge", hmacsig.Sign(secret, now.Add(10*time.Second), body), body, both, 10 * time.Second, nil},
		{"negative tolerance means default", hmacsig.Sign(secret, now.Add(-299*time.Second), body), body, both, -time.Second, nil},
		{"forgery with an old t is a mismatch", hmacsig.Sign(other, now.Add(-time.Hour), body), body, both, 0, hmacsig.ErrMismatch},
		{"malformed before anything", "t=" + ts, body, nil, 0, hmacsig.ErrNoSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := hmacsig.Verify(tc.header, tc.body, tc.secrets, now, tc.tolerance)
			if err != tc.want {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			switch err {
			case nil, hmacsig.ErrStale: // the parsed header comes back
				if p, _ := hmacsig.Parse(tc.header); h.T != p.T || h.Unix != p.Unix || len(h.Signatures) != len(p.Signatures) {
					t.Fatalf("Verify = %+v, Parse = %+v", h, p)
				}
			default:
				if h.T != "" || h.Signatures != nil {
					t.Fatalf("error with a result: %+v", h)
				}
			}
		})
	}
}

func TestCheckTime(t *testing.T) {
	for _, tc := range []struct {
		t   int64
		tol time.Duration
		ok  bool
	}{
		{now.Unix(), 0, true},
		{now.Unix() - 300, 0, true},
		{now.Unix() + 300, 0, true},
		{now.Unix() - 301, 0, false},
		{now.Unix() + 301, 0, false},
		{now.Unix() - 10, 10 * time.Second, true},
		{now.Unix() - 11, 10 * time.Second, false},
		{1<<63 - 1, 0, false},
		{1 << 62, 0, false},
		{-1 << 63, 0, false},
	} {
		got, err := hmacsig.CheckTime(tc.t, now, tc.tol)
		if tc.ok != (err == nil) || (err != nil && err != hmacsig.ErrStale) {
			t.Errorf("CheckTime(%d, %v) = %v, %v", tc.t, tc.tol, got, err)
			continue
		}
		if tc.ok && (got.Unix() != tc.t || got.Location() != time.UTC) {
			t.Errorf("CheckTime(%d) = %v", tc.t, got)
		}
	}
}

func TestMatch(t *testing.T) {
	signed := "msg_1.1717171300"
	good := hmacsig.MAC(secret, signed, body)
	bad := hmacsig.MAC(other, signed, body)
	for _, tc := range []struct {
		name string
		keys [][]byte
		sigs [][]byte
		want error
	}{
		{"match", [][]byte{secret}, [][]byte{good}, nil},
		{"match among several", [][]byte{oldSecret, secret}, [][]byte{bad, good}, nil},
		{"no match", [][]byte{secret}, [][]byte{bad}, hmacsig.ErrMismatch},
		{"no signature", [][]byte{secret}, nil, hmacsig.ErrMismatch},
		{"truncated signature", [][]byte{secret}, [][]byte{good[:31]}, hmacsig.ErrMismatch},
		{"no key", nil, [][]byte{good}, hmacsig.ErrNoSecret},
		{"empty keys only", [][]byte{{}, nil}, [][]byte{hmacsig.MAC(nil, signed, body)}, hmacsig.ErrNoSecret},
		{"decoy", nil, [][]byte{hmacsig.MAC([]byte(hmacsig.DecoyKey), signed, body)}, hmacsig.ErrNoSecret},
	} {
		if err := hmacsig.Match(tc.keys, signed, body, tc.sigs); err != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// Sign is the documented construction over MAC, negative times included
// (which Parse then refuses).
func TestSignIsMAC(t *testing.T) {
	for _, at := range []time.Time{now, time.Unix(0, 0), time.Unix(-5, 0), time.Unix(1<<40, 999)} {
		tsAt := strconv.FormatInt(at.Unix(), 10)
		want := "t=" + tsAt + ",v1=" + hex.EncodeToString(hmacsig.MAC(secret, tsAt, body))
		if got := hmacsig.Sign(secret, at, body); got != want {
			t.Errorf("Sign(%v) = %s, want %s", at, got, want)
		}
	}
}
