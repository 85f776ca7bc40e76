package hmacsig_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/hmacsig"
)

// FuzzVerify: any header and body give a header or one of the package's
// errors, never a panic; what Parse accepts is within the documented limits
// and parses again the same once rewritten canonically; a header Sign built
// within the tolerance always verifies, and never over another body or
// with another secret.
func FuzzVerify(f *testing.F) {
	f.Add(hmacsig.Sign(secret, now, body), body, int64(0))
	f.Add("t=1717171300,v1=zz", []byte{}, int64(-300))
	secrets := [][]byte{oldSecret, secret}
	f.Fuzz(func(t *testing.T, header string, payload []byte, offset int64) {
		h, err := hmacsig.Parse(header)
		if err != nil {
			if !errors.Is(err, hmacsig.ErrMalformed) {
				t.Fatalf("Parse: unexpected error %v", err)
			}
		} else {
			checkParsed(t, header, h)
		}

		got, err := hmacsig.Verify(header, payload, secrets, now, 0)
		switch {
		case err == nil:
			if d := now.Sub(got.Time()); d > hmacsig.DefaultTolerance || d < -hmacsig.DefaultTolerance {
				t.Fatalf("accepted a timestamp %v from now", d)
			}
		case errors.Is(err, hmacsig.ErrMalformed), err == hmacsig.ErrMismatch, err == hmacsig.ErrStale:
		default:
			t.Fatalf("Verify: unexpected error %v", err)
		}

		at := now.Add(time.Duration(offset%301) * time.Second)
		good := hmacsig.Sign(secret, at, payload)
		got, err = hmacsig.Verify(good, payload, secrets, now, 0)
		if err != nil {
			t.Fatalf("Sign output rejected: %v", err)
		}
		if !got.Time().Equal(at) {
			t.Fatalf("signed time %v, want %v", got.Time(), at)
		}
		if _, err := hmacsig.Verify(good, append(payload[:len(payload):len(payload)], 'x'), secrets, now, 0); err != hmacsig.ErrMismatch {
			t.Fatalf("altered payload: %v", err)
		}
		if _, err := hmacsig.Verify(good, payload, [][]byte{other}, now, 0); err != hmacsig.ErrMismatch {
			t.Fatalf("wrong secret: %v", err)
		}
		if _, err := hmacsig.Verify(good, payload, nil, now, 0); err != hmacsig.ErrNoSecret {
			t.Fatalf("no secret: %v", err)
		}
	})
}

// checkParsed holds an accepted header to the documented limits.
func checkParsed(t *testing.T, header string, h hmacsig.Header) {
	t.Helper()
	if len(header) > hmacsig.MaxHeaderLen {
		t.Fatalf("accepted %d bytes", len(header))
	}
	if h.T == "" || len(h.T) > hmacsig.MaxTimestampLen || strings.Trim(h.T, "0123456789") != "" || h.Unix < 0 {
		t.Fatalf("accepted t %q (%d)", h.T, h.Unix)
	}
	if n := len(h.Signatures); n == 0 || n > hmacsig.MaxSignatures {
		t.Fatalf("accepted %d signatures", n)
	}
	canonical := "t=" + h.T
	for _, sig := range h.Signatures {
		if len(sig) != 32 {
			t.Fatalf("accepted a %d-byte signature", len(sig))
		}
		canonical += ",v1=" + hex.EncodeToString(sig)
	}
	again, err := hmacsig.Parse(canonical)
	if err != nil || again.T != h.T || again.Unix != h.Unix || len(again.Signatures) != len(h.Signatures) {
		t.Fatalf("canonical %q: %+v, %v; want %+v", canonical, again, err, h)
	}
	for i := range h.Signatures {
		if !bytes.Equal(again.Signatures[i], h.Signatures[i]) {
			t.Fatalf("canonical %q: signature %d differs", canonical, i)
		}
	}
}
