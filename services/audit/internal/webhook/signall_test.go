package webhook_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/echopilot/echopilot/services/audit/internal/webhook"
)

// SignAll signs under each secret, one "v1,…" entry each, so a receiver
// holding either secret accepts the delivery (a rotation's grace period),
// and one holding neither does not.
func TestSignAll(t *testing.T) {
	oldS, _ := webhook.NewSecret()
	newS, _ := webhook.NewSecret()
	other, _ := webhook.NewSecret()
	now := time.Now()
	body := []byte(`{"type":"audit.entry"}`)
	h, err := webhook.SignAll([]string{newS, oldS}, msgID, now, body)
	if err != nil {
		t.Fatal(err)
	}
	entries := strings.Fields(h.Signature)
	if len(entries) != 2 || !strings.HasPrefix(entries[0], "v1,") || !strings.HasPrefix(entries[1], "v1,") {
		t.Fatalf("webhook-signature = %q, want two v1 entries", h.Signature)
	}
	single := swHeaders(t, newS, msgID, now, body)
	if entries[0] != single.Signature {
		t.Errorf("first entry %q is not Sign's under the first secret (%q)", entries[0], single.Signature)
	}
	for _, s := range []string{newS, oldS} {
		if _, err := (webhook.Verifier{}).Verify(body, h, []string{s}); err != nil {
			t.Errorf("a receiver with one of the secrets refused the delivery: %v", err)
		}
	}
	if _, err := (webhook.Verifier{}).Verify(body, h, []string{other}); err == nil {
		t.Error("a receiver with neither secret accepted the delivery")
	}
	_, err = webhook.SignAll(nil, msgID, now, body)
	wantErr(t, err, webhook.ReasonSecretInvalid, codes.InvalidArgument)
	_, err = webhook.SignAll([]string{newS, "whsec_short"}, msgID, now, body)
	wantErr(t, err, webhook.ReasonSecretInvalid, codes.InvalidArgument)
}
