package app_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	"github.com/echopilot/echopilot/services/audit/internal/webhook"
)

const event = `{"event_type":"gdpr.request","severity":"critical","user":"dpo@acme.test","action":"erase","resource":"customer/42","details":{"ticket":"T-1"}}`

func deliver(s stack, tenant string, body string, h webhook.Headers) (*auditv1.HandleComplianceWebhookResponse, error) {
	return s.c.HandleComplianceWebhook(context.Background(), &auditv1.HandleComplianceWebhookRequest{
		Payload: []byte(body), TenantId: tenant, EchopilotSignature: h.EchoPilot,
		WebhookId: h.ID, WebhookTimestamp: h.Timestamp, WebhookSignature: h.Signature,
	})
}

func signed(secret string, at time.Time, body string) webhook.Headers {
	return webhook.Headers{EchoPilot: webhook.EchoPilotHeader(secret, at, []byte(body))}
}

func TestComplianceWebhookSignatures(t *testing.T) {
	backends(t, func(t *testing.T, s stack) {
		acme := as(t, "acme", "user")
		sec, err := s.c.CreateWebhookSecret(acme, &auditv1.CreateWebhookSecretRequest{})
		if err != nil || !webhook.ValidSecret(sec.GetValue()) || sec.GetSecret().GetHint() == "" {
			t.Fatalf("create secret = %v, %v", sec, err)
		}
		first := sec.GetValue()
		now := time.Now()

		// Valid; then the same delivery again is a duplicate, not a second entry.
		h := signed(first, now, event)
		res, err := deliver(s, "acme", event, h)
		if err != nil || res.GetDuplicate() || res.GetEntry().GetSeverity() != auditv1.Severity_SEVERITY_CRITICAL || res.GetEntry().GetSeq() != 1 ||
			res.GetEntry().GetDetails().GetFields()["ticket"].GetStringValue() != "T-1" {
			t.Fatalf("valid delivery = %v, %v", res, err)
		}
		if res, err := deliver(s, "acme", event, h); err != nil || !res.GetDuplicate() {
			t.Fatalf("replayed delivery = %v, %v", res, err)
		}

		_, err = deliver(s, "acme", event, signed("whsec_"+"d3JvbmctMDEyMzQ1Njc4OWFiY2RlZg==", now, event))
		wantErr(t, err, codes.Unauthenticated, webhook.ReasonSignatureInvalid)
		_, err = deliver(s, "acme", event, signed(first, now.Add(-6*time.Minute), event))
		wantErr(t, err, codes.Unauthenticated, webhook.ReasonSignatureStale)
		_, err = deliver(s, "acme", event, webhook.Headers{EchoPilot: "t=abc,v1=zz"})
		wantErr(t, err, codes.InvalidArgument, webhook.ReasonSignatureMalformed)
		_, err = deliver(s, "acme", event, webhook.Headers{})
		wantErr(t, err, codes.Unauthenticated, webhook.ReasonSignatureMissing)
		for _, i := range []int{0, len(event) / 2, len(event) - 1} {
			altered := []byte(event)
			altered[i] ^= 1
			_, err = deliver(s, "acme", string(altered), signed(first, now, event))
			wantErr(t, err, codes.Unauthenticated, webhook.ReasonSignatureInvalid)
		}
		// Another tenant's secrets do not verify acme's bodies, and an
		// unknown tenant looks like a wrong signature.
		_, err = deliver(s, "globex", event, signed(first, now, event))
		wantErr(t, err, codes.Unauthenticated, webhook.ReasonSignatureInvalid)
		_, err = deliver(s, "initech", event, signed(first, now, event))
		wantErr(t, err, codes.Unauthenticated, webhook.ReasonSignatureInvalid)
		_, err = deliver(s, "no such tenant!", event, signed(first, now, event))
		wantErr(t, err, codes.InvalidArgument, "TENANT_INVALID")

		// Rotation: a second secret verifies alongside the first, and a
		// revoked one no longer does.
		second, err := s.c.CreateWebhookSecret(acme, &auditv1.CreateWebhookSecretRequest{})
		if err != nil {
			t.Fatal(err)
		}
		body2 := `{"event_type":"login.failed","severity":"low"}`
		if _, err := deliver(s, "acme", body2, signed(second.GetValue(), now, body2)); err != nil {
			t.Fatalf("second secret: %v", err)
		}
		if _, err := s.c.RevokeWebhookSecret(acme, &auditv1.RevokeWebhookSecretRequest{SecretId: sec.GetSecret().GetSecretId()}); err != nil {
			t.Fatal(err)
		}
		body3 := `{"event_type":"login.failed","severity":"medium"}`
		_, err = deliver(s, "acme", body3, signed(first, now, body3))
		wantErr(t, err, codes.Unauthenticated, webhook.ReasonSignatureInvalid)
		_, err = s.c.RevokeWebhookSecret(acme, &auditv1.RevokeWebhookSecretRequest{SecretId: sec.GetSecret().GetSecretId()})
		wantErr(t, err, codes.NotFound, "SECRET_NOT_FOUND")
		list, err := s.c.ListWebhookSecrets(acme, &auditv1.ListWebhookSecretsRequest{})
		if err != nil || len(list.GetSecrets()) != 2 || list.GetSecrets()[0].GetRevokeTime() == nil || list.GetSecrets()[1].GetRevokeTime() != nil {
			t.Fatalf("secrets = %v, %v", list, err)
		}
		if other, err := s.c.ListWebhookSecrets(as(t, "globex", "user"), &auditv1.ListWebhookSecretsRequest{}); err != nil || len(other.GetSecrets()) != 0 {
			t.Fatalf("globex sees secrets: %v, %v", other, err)
		}

		// Standard Webhooks headers, and a redelivery of the same id.
		std, err := webhook.Sign(second.GetValue(), "msg_0001", now, []byte(body3))
		if err != nil {
			t.Fatal(err)
		}
		if res, err := deliver(s, "acme", body3, std); err != nil || res.GetDuplicate() {
			t.Fatalf("standard webhooks delivery = %v, %v", res, err)
		}
		again, _ := webhook.Sign(second.GetValue(), "msg_0001", now.Add(time.Second), []byte(body3))
		if res, err := deliver(s, "acme", body3, again); err != nil || !res.GetDuplicate() {
			t.Fatalf("re-signed retry of msg_0001 = %v, %v", res, err)
		}

		bad := `{"event_type":"x"}`
		_, err = deliver(s, "acme", bad, signed(second.GetValue(), now, bad))
		wantErr(t, err, codes.InvalidArgument, "COMPLIANCE_EVENT_INVALID")

		res2 := chain(t, s.c, acme)
		if res2.GetTotal() != 3 || !res2.GetVerification().GetValid() {
			t.Fatalf("acme's log after the deliveries: total %d, %v", res2.GetTotal(), res2.GetVerification())
		}
	})
}
