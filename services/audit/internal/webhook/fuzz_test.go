package webhook_test

import (
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/services/audit/internal/webhook"
)

// clientReason fails unless err carries one of Verify's reasons.
func clientReason(t *testing.T, err error) {
	t.Helper()
	switch apierr.Reason(err) {
	case webhook.ReasonSignatureMissing, webhook.ReasonSignatureMalformed,
		webhook.ReasonSignatureStale, webhook.ReasonSignatureInvalid:
	default:
		t.Fatalf("unexpected error %v", err)
	}
}

// acceptedFresh fails unless an accepted delivery is within the tolerance.
func acceptedFresh(t *testing.T, got webhook.Verified) {
	t.Helper()
	if d := now.Sub(got.Timestamp); d > webhook.DefaultTolerance || d < -webhook.DefaultTolerance {
		t.Fatalf("accepted a timestamp %v from now", d)
	}
	if !got.KeepUntil.Equal(got.Timestamp.Add(webhook.DefaultTolerance)) {
		t.Fatalf("KeepUntil %v for timestamp %v", got.KeepUntil, got.Timestamp)
	}
}

// FuzzEchoPilotHeader: any header and body give a result or a client error,
// never a panic; a header EchoPilotHeader built within the tolerance always
// verifies, and never over another body.
func FuzzEchoPilotHeader(f *testing.F) {
	f.Add(webhook.EchoPilotHeader(secret, now, body), body, int64(0))
	f.Add("t=1717171300,v1=zz", []byte{}, int64(-300))
	secrets := []string{oldSecret, secret}
	f.Fuzz(func(t *testing.T, header string, payload []byte, offset int64) {
		v := verifier()
		got, err := v.Verify(payload, webhook.Headers{EchoPilot: header}, secrets)
		if err != nil {
			clientReason(t, err)
		} else {
			acceptedFresh(t, got)
			if got.Scheme != webhook.SchemeEchoPilot || len(got.ReplayKey) != len("eps:")+64 || got.MessageID != "" {
				t.Fatalf("Verified = %+v", got)
			}
		}

		at := now.Add(time.Duration(offset%301) * time.Second)
		good := webhook.EchoPilotHeader(secret, at, payload)
		got, err = v.Verify(payload, webhook.Headers{EchoPilot: good}, secrets)
		if err != nil {
			t.Fatalf("EchoPilotHeader output rejected: %v", err)
		}
		if !got.Timestamp.Equal(at) {
			t.Fatalf("timestamp %v, want %v", got.Timestamp, at)
		}
		// Same (t, body) signed with the other secret: same replay key.
		again, err := v.Verify(payload, webhook.Headers{EchoPilot: webhook.EchoPilotHeader(oldSecret, at, payload)}, secrets)
		if err != nil || again.ReplayKey != got.ReplayKey {
			t.Fatalf("redelivery: %+v, %v; want key %s", again, err, got.ReplayKey)
		}
		if _, err := v.Verify(append(payload[:len(payload):len(payload)], 'x'), webhook.Headers{EchoPilot: good}, secrets); apierr.Reason(err) != webhook.ReasonSignatureInvalid {
			t.Fatalf("altered body: %v", err)
		}
		if _, err := v.Verify(payload, webhook.Headers{EchoPilot: good}, []string{other}); apierr.Reason(err) != webhook.ReasonSignatureInvalid {
			t.Fatalf("wrong secret: %v", err)
		}
	})
}

// FuzzStandardHeaders: any Standard Webhooks headers and body give a result
// or a client error, never a panic; headers Sign built within the tolerance
// always verify, and extra signature entries can make them malformed but
// never invalid.
func FuzzStandardHeaders(f *testing.F) {
	f.Add(msgID, "1717171300", "v1,EiE0I0ecQ0c0TRapxdyxJkJZ1uCXYIPB1eZu8kDqghM=", body, int64(0))
	f.Add("", "", "", []byte{}, int64(300))
	secrets := []string{oldSecret, secret}
	f.Fuzz(func(t *testing.T, id, ts, sig string, payload []byte, offset int64) {
		v := verifier()
		got, err := v.Verify(payload, webhook.Headers{ID: id, Timestamp: ts, Signature: sig}, secrets)
		if err != nil {
			clientReason(t, err)
		} else {
			acceptedFresh(t, got)
			if got.Scheme != webhook.SchemeStandard || got.MessageID != id || got.ReplayKey != "swh:"+id {
				t.Fatalf("Verified = %+v", got)
			}
		}

		at := now.Add(time.Duration(offset%301) * time.Second)
		h, err := webhook.Sign(secret, id, at, payload)
		if err != nil {
			if apierr.Reason(err) != webhook.ReasonMessageInvalid {
				t.Fatalf("Sign: %v", err)
			}
			id = "msg_fuzz" // the fuzzed id is not one we would send
			if h, err = webhook.Sign(secret, id, at, payload); err != nil {
				t.Fatal(err)
			}
		}
		got, err = v.Verify(payload, h, secrets)
		if err != nil {
			t.Fatalf("Sign output rejected: %v", err)
		}
		if !got.Timestamp.Equal(at) || got.MessageID != id || got.ReplayKey != "swh:"+id {
			t.Fatalf("Verified = %+v for id %q at %v", got, id, at)
		}
		withExtra := h
		withExtra.Signature = sig + " " + h.Signature
		if _, err := v.Verify(payload, withExtra, secrets); err != nil && apierr.Reason(err) != webhook.ReasonSignatureMalformed {
			t.Fatalf("extra entries: %v", err)
		}
		if _, err := v.Verify(append(payload[:len(payload):len(payload)], 'x'), h, secrets); apierr.Reason(err) != webhook.ReasonSignatureInvalid {
			t.Fatalf("altered body: %v", err)
		}
		if _, err := v.Verify(payload, h, []string{other}); apierr.Reason(err) != webhook.ReasonSignatureInvalid {
			t.Fatalf("wrong secret: %v", err)
		}
	})
}
