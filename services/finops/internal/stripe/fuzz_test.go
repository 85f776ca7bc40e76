package stripe_test

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/services/finops/internal/domain"
	"github.com/echopilot/echopilot/services/finops/internal/stripe"
)

// FuzzVerifyHeader: any header and payload give a result or a client error,
// never a panic; a header SignatureHeader built within the tolerance always
// verifies.
func FuzzVerifyHeader(f *testing.F) {
	f.Add(stripe.SignatureHeader(secret, now, body), body, int64(0))
	f.Add("t=1717171300,v1=zz", []byte{}, int64(-300))
	f.Fuzz(func(t *testing.T, header string, payload []byte, offset int64) {
		v := verifier(oldSecret, secret)
		signed, err := v.Verify(payload, header)
		if err != nil {
			switch apierr.Reason(err) {
			case stripe.ReasonSignatureMissing, stripe.ReasonSignatureMalformed,
				stripe.ReasonSignatureStale, stripe.ReasonSignatureInvalid:
			default:
				t.Fatalf("unexpected error %v", err)
			}
		} else if d := now.Sub(signed); d > stripe.DefaultTolerance || d < -stripe.DefaultTolerance {
			t.Fatalf("accepted a timestamp %v from now", d)
		}

		at := now.Add(time.Duration(offset%301) * time.Second)
		good := stripe.SignatureHeader(secret, at, payload)
		got, err := v.Verify(payload, good)
		if err != nil {
			t.Fatalf("SignatureHeader output rejected: %v", err)
		}
		if !got.Equal(at) {
			t.Fatalf("signed time %v, want %v", got, at)
		}
		// The same signature over another payload must not verify.
		if _, err := v.Verify(append(payload[:len(payload):len(payload)], 'x'), good); apierr.Reason(err) != stripe.ReasonSignatureInvalid {
			t.Fatalf("altered payload: %v", err)
		}
	})
}

var (
	currencyPattern = regexp.MustCompile(`^[a-z]{3}$`)
	tenantPattern   = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
)

// FuzzParseEvent: never panics; a tracked event has sane amounts, a key, a
// currency and a tenant id that passed validation; errors carry the reason.
func FuzzParseEvent(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		ev, tracked, err := stripe.ParseEvent(payload)
		if err != nil {
			if apierr.Reason(err) != stripe.ReasonEventInvalid {
				t.Fatalf("unexpected error %v", err)
			}
			if tracked || ev != (domain.PaymentEvent{}) {
				t.Fatalf("error with a result: %+v", ev)
			}
			return
		}
		if ev.EventID == "" || ev.Type == "" {
			t.Fatalf("no event id or type: %+v", ev)
		}
		if !tracked {
			if ev.Type == stripe.TypeChargeSucceeded || ev.Type == stripe.TypeChargeRefunded || ev.Type == stripe.TypeInvoicePaid {
				t.Fatalf("tracked type reported untracked: %+v", ev)
			}
			return
		}
		switch {
		case ev.PaymentKey == "":
			t.Fatalf("empty payment key: %+v", ev)
		case ev.GrossCents < 0 || ev.RefundedCents < 0 || ev.RefundedCents > ev.GrossCents:
			t.Fatalf("bad amounts: %+v", ev)
		case !currencyPattern.MatchString(ev.Currency):
			t.Fatalf("bad currency: %+v", ev)
		case ev.TenantID != "" && !tenantPattern.MatchString(ev.TenantID):
			t.Fatalf("bad tenant: %+v", ev)
		case ev.At.Unix() <= 0:
			t.Fatalf("bad time: %+v", ev)
		}
	})
}
