package e2e

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/echopilot/echopilot/e2e/internal/apiclient"
)

// The seed's eleven REST calls through the client oapi-codegen generates
// from /openapi.json, against the real gateway (and through the contract
// check): a client built from the document works as it says.
func TestGeneratedClientMakesTheSeedCalls(t *testing.T) {
	s := startSuite(t, "optional")
	c, err := apiclient.NewClientWithResponses(s.GatewayURL, apiclient.WithHTTPClient(s.http))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	acme := ptr(apiclient.TenantID("acme"))
	check := func(what string, resp *http.Response, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", what, resp.StatusCode)
		}
	}

	info, err := c.TenancyServiceGetTenantInfoWithResponse(ctx, &apiclient.TenancyServiceGetTenantInfoParams{XTenantID: acme})
	check("tenant info", info.HTTPResponse, err)
	if info.JSON200 == nil || info.JSON200.TenantId != "acme" || info.JSON200.TenantVerified {
		t.Fatalf("tenant info: %s", info.Body)
	}
	access, err := c.TenancyServiceTestAccessWithResponse(ctx, &apiclient.TenancyServiceTestAccessParams{TargetTenantId: "globex", XTenantID: acme})
	check("test access", access.HTTPResponse, err)
	if access.JSON200 == nil || access.JSON200.Allowed {
		t.Fatalf("test access: %s", access.Body)
	}

	days := int32(7)
	summary, err := c.FinOpsServiceGetSummaryWithResponse(ctx, &apiclient.FinOpsServiceGetSummaryParams{Days: &days, XTenantID: acme})
	check("finops summary", summary.HTTPResponse, err)
	costs, err := c.FinOpsServiceListTenantCostsWithResponse(ctx, &apiclient.FinOpsServiceListTenantCostsParams{Days: &days, XTenantID: acme})
	check("finops tenants", costs.HTTPResponse, err)

	event := []byte(`{"event_type":"dlp.violation","user":"mallory","action":"exfiltrate","resource":"crm","severity":"high"}`)
	sig := complianceSign(event, time.Now())
	hook, err := c.AuditServiceHandleComplianceWebhookWithBodyWithResponse(ctx, &apiclient.AuditServiceHandleComplianceWebhookParams{
		XTenantID: ptr(apiclient.TenantID("default")), XEchoPilotSignature: &sig,
	}, "application/json", bytes.NewReader(event))
	check("compliance webhook", hook.HTTPResponse, err)
	chain, err := c.AuditServiceGetChainWithResponse(ctx, &apiclient.AuditServiceGetChainParams{XTenantID: ptr(apiclient.TenantID("default"))})
	check("audit chain", chain.HTTPResponse, err)
	if chain.JSON200 == nil || len(chain.JSON200.Entries) == 0 {
		t.Fatalf("audit chain: %s", chain.Body)
	}

	high := apiclient.V1Priority("high")
	job, err := c.QueueServiceEnqueueJobWithResponse(ctx, &apiclient.QueueServiceEnqueueJobParams{XTenantID: acme},
		apiclient.V1EnqueueJobRequest{Type: "report_gen", Priority: &high, Payload: &map[string]any{"period_days": 7}})
	check("enqueue", job.HTTPResponse, err)
	if job.JSON200 == nil || job.JSON200.JobId == "" {
		t.Fatalf("enqueue: %s", job.Body)
	}
	status, err := c.QueueServiceGetQueueStatusWithResponse(ctx, &apiclient.QueueServiceGetQueueStatusParams{XTenantID: acme})
	check("queue status", status.HTTPResponse, err)

	ref, err := c.GrowthServiceCreateReferralWithResponse(ctx, &apiclient.GrowthServiceCreateReferralParams{XTenantID: acme},
		apiclient.V1CreateReferralRequest{ReferrerId: "partner-1", Campaign: ptr("launch")})
	check("create referral", ref.HTTPResponse, err)
	if ref.JSON200 == nil || len(ref.JSON200.ReferralCode) != 8 {
		t.Fatalf("create referral: %s", ref.Body)
	}
	refs, err := c.GrowthServiceListReferralsWithResponse(ctx, &apiclient.GrowthServiceListReferralsParams{Days: &days, XTenantID: acme})
	check("referrals", refs.HTTPResponse, err)
	export, err := c.GrowthServiceExportPayoutsWithResponse(ctx, &apiclient.GrowthServiceExportPayoutsParams{Days: &days, XTenantID: acme})
	check("payout export", export.HTTPResponse, err)
	if !strings.HasPrefix(string(export.Body), "referral_code,") {
		t.Fatalf("payout export: %q", export.Body)
	}
}

func ptr[T any](v T) *T { return &v }
