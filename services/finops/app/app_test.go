package app_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	finopsv1 "github.com/echopilot/echopilot/gen/go/echopilot/finops/v1"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/finops/app"
	"github.com/echopilot/echopilot/services/finops/internal/stripe"
)

const (
	secretA = "whsec_test_a_0123456789"
	secretB = "whsec_test_b_9876543210"
)

var (
	as      = servicetest.As
	wantErr = servicetest.WantErr
)

// backends runs fn against the service on SQLite and, when configured, on
// PostgreSQL as a non-owner role, with auth required and two Stripe secrets.
func backends(t *testing.T, fn func(t *testing.T, c finopsv1.FinOpsServiceClient)) {
	backendsWith(t, nil, fn)
}

// backendsWith is backends with further flags.
func backendsWith(t *testing.T, extra []string, fn func(t *testing.T, c finopsv1.FinOpsServiceClient)) {
	backendsEach(t, func(*testing.T) []string { return extra }, fn)
}

// backendsEach is backends with further flags of each backend's own, made
// in its subtest.
func backendsEach(t *testing.T, extra func(t *testing.T) []string, fn func(t *testing.T, c finopsv1.FinOpsServiceClient)) {
	flags := func(t *testing.T) []string {
		return append([]string{"--stripe-webhook-secret=" + secretA + "," + secretB}, extra(t)...)
	}
	t.Run("sqlite", func(t *testing.T) {
		args := flags(t)
		conn := servicetest.Start(t, app.Spec(), servicetest.Options{AuthMode: "required", Args: args})
		fn(t, finopsv1.NewFinOpsServiceClient(conn))
	})
	t.Run("postgres", func(t *testing.T) {
		migrateURL, appURL := storetest.Postgres(t)
		args := flags(t)
		conn := servicetest.Start(t, app.Spec(), servicetest.Options{AuthMode: "required", DatabaseURL: appURL, MigrateURL: migrateURL, Args: args})
		fn(t, finopsv1.NewFinOpsServiceClient(conn))
	})
}

func admin(t *testing.T) context.Context { return as(t, "default", "admin") }

func service(t *testing.T, tenant string) context.Context {
	return servicetest.AsService(t, "queue", tenant)
}

// chargeEvent is a Stripe event about a charge of tenant.
func chargeEvent(id, typ, charge string, amount, refunded int64, tenant, customer string, created time.Time) []byte {
	meta := map[string]string{}
	if tenant != "" {
		meta["tenant_id"] = tenant
	}
	var cust any // Stripe sends null for a charge without a customer
	if customer != "" {
		cust = customer
	}
	b, _ := json.Marshal(map[string]any{
		"id": id, "object": "event", "type": typ, "created": created.Unix(), "livemode": false,
		"data": map[string]any{"object": map[string]any{
			"id": charge, "object": "charge", "amount": amount, "amount_refunded": refunded, "currency": "usd",
			"customer": cust, "created": created.Unix(), "metadata": meta, "invoice": nil,
		}},
	})
	return b
}

func send(c finopsv1.FinOpsServiceClient, body []byte, header string) (*finopsv1.HandleStripeWebhookResponse, error) {
	return c.HandleStripeWebhook(context.Background(), &finopsv1.HandleStripeWebhookRequest{Payload: body, StripeSignature: header})
}

func mustSend(t *testing.T, c finopsv1.FinOpsServiceClient, body []byte) *finopsv1.HandleStripeWebhookResponse {
	t.Helper()
	res, err := send(c, body, stripe.SignatureHeader([]byte(secretA), time.Now(), body))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func summary(t *testing.T, c finopsv1.FinOpsServiceClient, ctx context.Context, days int32) *finopsv1.GetSummaryResponse {
	t.Helper()
	s, err := c.GetSummary(ctx, &finopsv1.GetSummaryRequest{Days: days})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// export reads a whole ExportCosts stream: the response header and the CSV.
func export(c finopsv1.FinOpsServiceClient, ctx context.Context, req *finopsv1.ExportCostsRequest) (metadata.MD, string, error) {
	stream, err := c.ExportCosts(ctx, req)
	if err != nil {
		return nil, "", err
	}
	var body strings.Builder
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, "", err
		}
		body.Write(m.GetData())
	}
	md, err := stream.Header()
	return md, body.String(), err
}

func record(t *testing.T, c finopsv1.FinOpsServiceClient, tenant string, recs ...*finopsv1.UsageRecord) *finopsv1.RecordUsageResponse {
	t.Helper()
	res, err := c.RecordUsage(service(t, tenant), &finopsv1.RecordUsageRequest{Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func usage(job, model string, in, out int64) *finopsv1.UsageRecord {
	return &finopsv1.UsageRecord{JobId: job, JobType: "ai_task", Model: model, InputTokens: in, OutputTokens: out, CompletedAt: timestamppb.Now()}
}

// The seed's sample: no data, default rate card, 7 days.
func TestSeedSample(t *testing.T) {
	backends(t, func(t *testing.T, c finopsv1.FinOpsServiceClient) {
		s := summary(t, c, admin(t), 7)
		// The seed's sample less its "ok", which is the gateway's envelope.
		want := `{"period_days":7,` +
			`"revenue":{"total_revenue":0,"payment_count":0},` +
			`"costs":{"ai":{"total_cost":0,"job_count":0},"infrastructure":{"total_cost":4.2,"breakdown":{"compute":3.5,"database":0.7}}},` +
			`"profitability":{"profit":-4.2,"margin_pct":0,"roi":-100,"total_revenue":0,"total_costs":4.2}}`
		got := fmt.Sprintf(`{"period_days":%d,"revenue":{"total_revenue":%v,"payment_count":%d},`+
			`"costs":{"ai":{"total_cost":%v,"job_count":%d},"infrastructure":{"total_cost":%v,"breakdown":{"compute":%v,"database":%v}}},`+
			`"profitability":{"profit":%v,"margin_pct":%v,"roi":%v,"total_revenue":%v,"total_costs":%v}}`,
			s.GetPeriodDays(), s.GetRevenue().GetTotalRevenue(), s.GetRevenue().GetPaymentCount(),
			s.GetCosts().GetAi().GetTotalCost(), s.GetCosts().GetAi().GetJobCount(),
			s.GetCosts().GetInfrastructure().GetTotalCost(), s.GetCosts().GetInfrastructure().GetBreakdown().GetCompute(),
			s.GetCosts().GetInfrastructure().GetBreakdown().GetDatabase(),
			s.GetProfitability().GetProfit(), s.GetProfitability().GetMarginPct(), s.GetProfitability().GetRoi(),
			s.GetProfitability().GetTotalRevenue(), s.GetProfitability().GetTotalCosts())
		if got != want {
			t.Fatalf("summary\n got %s\nwant %s", got, want)
		}
		if s.GetCosts().GetInfrastructure().GetPlatformCost() != 4.2 || s.GetTenantId() != "" {
			t.Errorf("with no jobs all infrastructure is platform cost: %v", s.GetCosts().GetInfrastructure())
		}
		if days := summary(t, c, admin(t), 0).GetPeriodDays(); days != 7 {
			t.Errorf("default period = %d, want 7", days)
		}
	})
}

func TestStripeSignature(t *testing.T) {
	backends(t, func(t *testing.T, c finopsv1.FinOpsServiceClient) {
		now := time.Now()
		body := chargeEvent("evt_sig_1", "charge.succeeded", "ch_sig_1", 5000, 0, "acme", "cus_1", now)
		sign := func(secret string, at time.Time, b []byte) string {
			return stripe.SignatureHeader([]byte(secret), at, b)
		}

		_, err := send(c, body, sign("whsec_wrong", now, body))
		wantErr(t, err, codes.Unauthenticated, stripe.ReasonSignatureInvalid)
		_, err = send(c, body, sign(secretA, now.Add(-301*time.Second), body))
		wantErr(t, err, codes.Unauthenticated, stripe.ReasonSignatureStale)
		_, err = send(c, body, "t=abc,v1=zz")
		wantErr(t, err, codes.InvalidArgument, stripe.ReasonSignatureMalformed)
		_, err = send(c, body, "")
		wantErr(t, err, codes.InvalidArgument, "FIELD_REQUIRED")
		for _, i := range []int{0, len(body) / 2, len(body) - 1} {
			altered := append([]byte(nil), body...)
			altered[i] ^= 1
			_, err = send(c, altered, sign(secretA, now, body))
			wantErr(t, err, codes.Unauthenticated, stripe.ReasonSignatureInvalid)
		}
		if s := summary(t, c, admin(t), 7); s.GetRevenue().GetPaymentCount() != 0 {
			t.Fatalf("refused events changed revenue: %v", s.GetRevenue())
		}

		// Valid, then replayed as is (same signature, within tolerance):
		// applied once.
		hdr := sign(secretA, now, body)
		if res, err := send(c, body, hdr); err != nil || res.GetOutcome() != "applied" || res.GetTenantId() != "acme" || res.GetEventId() != "evt_sig_1" {
			t.Fatalf("valid event: %v %v", res, err)
		}
		if res, err := send(c, body, hdr); err != nil || res.GetOutcome() != "duplicate" {
			t.Fatalf("replay: %v %v", res, err)
		}
		// Rotation: the second secret verifies, and so does a header with
		// an old and a new signature.
		body2 := chargeEvent("evt_sig_2", "charge.succeeded", "ch_sig_2", 2500, 0, "acme", "cus_1", now)
		if res, err := send(c, body2, sign(secretB, now, body2)); err != nil || res.GetOutcome() != "applied" {
			t.Fatalf("rotated secret: %v %v", res, err)
		}
		body3 := chargeEvent("evt_sig_3", "charge.succeeded", "ch_sig_3", 500, 0, "acme", "cus_1", now)
		both := sign(secretB, now, body3) + "," + strings.Split(sign("whsec_retired", now, body3), ",")[1]
		if res, err := send(c, body3, both); err != nil || res.GetOutcome() != "applied" {
			t.Fatalf("header with two signatures: %v %v", res, err)
		}
		s := summary(t, c, as(t, "acme", "user"), 7)
		if s.GetRevenue().GetTotalRevenue() != 80 || s.GetRevenue().GetPaymentCount() != 3 {
			t.Fatalf("revenue = %v, want $80 from 3 payments", s.GetRevenue())
		}
	})
}

// Refunds subtract; events in any order, or replayed, give the same totals.
func TestRefundsAndOrder(t *testing.T) {
	backends(t, func(t *testing.T, c finopsv1.FinOpsServiceClient) {
		now := time.Now()
		paid := chargeEvent("evt_r_1", "charge.succeeded", "ch_r", 10000, 0, "acme", "cus_r", now)
		partial := chargeEvent("evt_r_2", "charge.refunded", "ch_r", 10000, 2500, "acme", "cus_r", now)
		full := chargeEvent("evt_r_3", "charge.refunded", "ch_r", 10000, 10000, "acme", "cus_r", now)
		// The partial refund arrives first, the full one before the charge.
		mustSend(t, c, partial)
		if r := summary(t, c, as(t, "acme", "user"), 7).GetRevenue(); r.GetTotalRevenue() != 75 || r.GetRefunded() != 25 || r.GetPaymentCount() != 1 {
			t.Fatalf("after a partial refund: %v", r)
		}
		mustSend(t, c, full)
		mustSend(t, c, paid)
		mustSend(t, c, partial)
		if r := summary(t, c, as(t, "acme", "user"), 7).GetRevenue(); r.GetTotalRevenue() != 0 || r.GetRefunded() != 100 || r.GetPaymentCount() != 0 {
			t.Fatalf("after a full refund: %v", r)
		}
	})
}

func TestUsagePricing(t *testing.T) {
	backends(t, func(t *testing.T, c finopsv1.FinOpsServiceClient) {
		// echopilot-test costs $1/Mtok in and $2/Mtok out.
		res := record(t, c, "acme",
			usage("j1", "echopilot-test", 1_000_000, 500_000),
			usage("j2", "no-such-model", 40, 2),
			&finopsv1.UsageRecord{JobId: "j3", JobType: "report_gen", CompletedAt: timestamppb.Now()},
		)
		if res.GetRecorded() != 3 || res.GetUnpriced() != 1 || res.GetDuplicates() != 0 {
			t.Fatalf("record = %v", res)
		}
		if res := record(t, c, "acme", usage("j1", "echopilot-test", 1_000_000, 500_000)); res.GetDuplicates() != 1 || res.GetRecorded() != 0 {
			t.Fatalf("redelivery = %v, want a duplicate", res)
		}
		ai := summary(t, c, as(t, "acme", "user"), 1).GetCosts().GetAi()
		if ai.GetTotalCost() != 2 || ai.GetJobCount() != 3 || ai.GetInputTokens() != 1_000_040 {
			t.Fatalf("ai = %v, want $2.00 over 3 jobs", ai)
		}
		if u := ai.GetUnpriced(); u.GetJobCount() != 1 || u.GetInputTokens() != 40 || u.GetOutputTokens() != 2 ||
			len(u.GetModels()) != 1 || u.GetModels()[0] != "no-such-model" {
			t.Fatalf("unpriced = %v", u)
		}

		_, err := c.RecordUsage(as(t, "acme", "user"), &finopsv1.RecordUsageRequest{Records: []*finopsv1.UsageRecord{usage("j9", "x", 1, 1)}})
		wantErr(t, err, codes.PermissionDenied, "ROLE_REQUIRED")
		_, err = c.RecordUsage(service(t, "acme"), &finopsv1.RecordUsageRequest{Records: []*finopsv1.UsageRecord{usage("j9", "x", -1, 1)}})
		wantErr(t, err, codes.InvalidArgument, "USAGE_INVALID")
		_, err = c.RecordUsage(service(t, "acme"), &finopsv1.RecordUsageRequest{Records: []*finopsv1.UsageRecord{{JobId: "j10"}}})
		if err == nil {
			t.Fatal("a record without completed_at was accepted")
		}
	})
}

func TestBadInput(t *testing.T) {
	backends(t, func(t *testing.T, c finopsv1.FinOpsServiceClient) {
		for _, d := range []int32{-1, 367} {
			_, err := c.GetSummary(admin(t), &finopsv1.GetSummaryRequest{Days: d})
			wantErr(t, err, codes.InvalidArgument, "DAYS_OUT_OF_RANGE")
		}
		_, err := c.ListTenantCosts(admin(t), &finopsv1.ListTenantCostsRequest{PageToken: "garbage"})
		wantErr(t, err, codes.InvalidArgument, "PAGE_TOKEN_INVALID")
		_, err = c.GetSummary(context.Background(), &finopsv1.GetSummaryRequest{})
		wantErr(t, err, codes.Unauthenticated, "TOKEN_MISSING")
	})
}

// Every read keeps tenants apart: a tenant sees only its own figures, and
// naming another tenant is refused; only a platform admin reads across.
func TestTenantIsolation(t *testing.T) {
	backends(t, func(t *testing.T, c finopsv1.FinOpsServiceClient) {
		now := time.Now()
		mustSend(t, c, chargeEvent("evt_i_1", "charge.succeeded", "ch_i_1", 10000, 0, "acme", "cus_a", now))
		mustSend(t, c, chargeEvent("evt_i_2", "charge.succeeded", "ch_i_2", 30000, 0, "globex", "cus_g", now))
		record(t, c, "acme", usage("a1", "echopilot-test", 1_000_000, 0))
		record(t, c, "globex", usage("g1", "echopilot-test", 3_000_000, 0), usage("g2", "echopilot-test", 0, 0))

		acme := as(t, "acme", "user")
		s := summary(t, c, acme, 7)
		if s.GetTenantId() != "acme" || s.GetRevenue().GetTotalRevenue() != 100 || s.GetCosts().GetAi().GetJobCount() != 1 ||
			s.GetCosts().GetAi().GetTotalCost() != 1 {
			t.Fatalf("acme's summary = %v", s)
		}
		// One of the three jobs today: a third of today's $0.60, rounded
		// down to the micro-dollar in each part ($0.50 and $0.10).
		if infra := s.GetCosts().GetInfrastructure(); infra.GetTotalCost() != 0.199999 || infra.GetTotalCostMicros() != 199_999 {
			t.Errorf("acme's infrastructure = %v, want 0.199999", infra)
		}
		foreign := metadata.AppendToOutgoingContext(acme, "x-tenant-id", "globex")
		_, err := c.GetSummary(foreign, &finopsv1.GetSummaryRequest{})
		wantErr(t, err, codes.PermissionDenied, "CROSS_TENANT_DENIED")
		_, err = c.ListTenantCosts(foreign, &finopsv1.ListTenantCostsRequest{})
		wantErr(t, err, codes.PermissionDenied, "CROSS_TENANT_DENIED")
		_, _, err = export(c, foreign, &finopsv1.ExportCostsRequest{})
		wantErr(t, err, codes.PermissionDenied, "CROSS_TENANT_DENIED")
		_, err = c.GetSummary(acme, &finopsv1.GetSummaryRequest{TenantId: "globex"})
		wantErr(t, err, codes.PermissionDenied, "CROSS_TENANT_DENIED")

		list, err := c.ListTenantCosts(acme, &finopsv1.ListTenantCostsRequest{})
		if err != nil || len(list.GetTenants()) != 1 || list.GetTenants()[0].GetTenantId() != "acme" || list.GetPlatformCost() != 0 {
			t.Fatalf("acme's list = %v, %v", list, err)
		}
		header, csvBody, err := export(c, acme, &finopsv1.ExportCostsRequest{Days: 1})
		if err != nil {
			t.Fatal(err)
		}
		if got := header.Get("content-disposition"); len(got) != 1 || got[0] != `attachment; filename="finops-costs-acme.csv"` {
			t.Errorf("acme's export: content-disposition %q", got)
		}
		rows, err := csv.NewReader(strings.NewReader(csvBody)).ReadAll()
		if err != nil || len(rows) != 4 {
			t.Fatalf("acme's export: %d rows, %v\n%s", len(rows), err, csvBody)
		}
		for _, r := range rows[1:] {
			if r[3] != "acme" {
				t.Fatalf("acme's export holds a row of %q", r[3])
			}
		}

		// The admin's view of every tenant: parts add up to the whole.
		all := summary(t, c, admin(t), 7)
		if all.GetRevenue().GetTotalRevenue() != 400 || all.GetCosts().GetAi().GetJobCount() != 3 || all.GetCosts().GetInfrastructure().GetTotalCost() != 4.2 {
			t.Fatalf("admin summary = %v", all)
		}
		list, err = c.ListTenantCosts(admin(t), &finopsv1.ListTenantCostsRequest{Days: 7, PageSize: 1})
		if err != nil || len(list.GetTenants()) != 1 || list.GetNextPageToken() == "" {
			t.Fatalf("admin page 1 = %v, %v", list, err)
		}
		infra := list.GetTenants()[0].GetInfrastructureCost()
		next, err := c.ListTenantCosts(admin(t), &finopsv1.ListTenantCostsRequest{Days: 7, PageSize: 1, PageToken: list.GetNextPageToken()})
		if err != nil || len(next.GetTenants()) != 1 || next.GetTenants()[0].GetTenantId() != "globex" || next.GetNextPageToken() != "" {
			t.Fatalf("admin page 2 = %v, %v", next, err)
		}
		infra += next.GetTenants()[0].GetInfrastructureCost()
		if got := infra + list.GetPlatformCost(); fmt.Sprintf("%.2f", got) != "4.20" {
			t.Errorf("allocated %v + platform %v != 4.20", infra, list.GetPlatformCost())
		}
		// The page token is bound to its query.
		_, err = c.ListTenantCosts(admin(t), &finopsv1.ListTenantCostsRequest{Days: 30, PageSize: 1, PageToken: list.GetNextPageToken()})
		wantErr(t, err, codes.InvalidArgument, "PAGE_TOKEN_INVALID")
		// An admin naming a tenant reads that tenant only.
		g := summary(t, c, metadata.AppendToOutgoingContext(admin(t), "x-tenant-id", "globex"), 7)
		if g.GetTenantId() != "globex" || g.GetRevenue().GetTotalRevenue() != 300 {
			t.Fatalf("admin reading globex = %v", g)
		}
	})
}

// A customer's event without a tenant waits until an event names the
// customer's tenant; an event that names neither is ignored; other
// currencies and event types are acknowledged and ignored.
func TestHeldEventsAndIgnored(t *testing.T) {
	backends(t, func(t *testing.T, c finopsv1.FinOpsServiceClient) {
		now := time.Now()
		if res := mustSend(t, c, chargeEvent("evt_h_1", "charge.succeeded", "ch_h_1", 1000, 0, "", "cus_h", now)); res.GetOutcome() != "held" {
			t.Fatalf("event without tenant: %v", res)
		}
		if s := summary(t, c, admin(t), 7); s.GetRevenue().GetPaymentCount() != 0 {
			t.Fatalf("a held event counted: %v", s.GetRevenue())
		}
		if res := mustSend(t, c, chargeEvent("evt_h_2", "charge.succeeded", "ch_h_2", 2000, 0, "acme", "cus_h", now)); res.GetOutcome() != "applied" {
			t.Fatalf("event with tenant: %v", res)
		}
		if r := summary(t, c, as(t, "acme", "user"), 7).GetRevenue(); r.GetTotalRevenue() != 30 || r.GetPaymentCount() != 2 {
			t.Fatalf("acme's revenue = %v, want the held $10 released with the $20", r)
		}
		if res := mustSend(t, c, chargeEvent("evt_h_3", "charge.succeeded", "ch_h_3", 500, 0, "", "", now)); res.GetOutcome() != "ignored" {
			t.Fatalf("event with neither tenant nor customer: %v", res)
		}
		eur := []byte(strings.Replace(string(chargeEvent("evt_h_4", "charge.succeeded", "ch_h_4", 500, 0, "acme", "cus_h", now)), `"usd"`, `"eur"`, 1))
		if res := mustSend(t, c, eur); res.GetOutcome() != "ignored" {
			t.Fatalf("euro event: %v", res)
		}
		other := []byte(strings.Replace(string(chargeEvent("evt_h_5", "charge.succeeded", "ch_h_5", 500, 0, "acme", "cus_h", now)), `"charge.succeeded"`, `"charge.updated"`, 1))
		if res := mustSend(t, c, other); res.GetOutcome() != "ignored" {
			t.Fatalf("untracked type: %v", res)
		}
		if r := summary(t, c, as(t, "acme", "user"), 7).GetRevenue(); r.GetTotalRevenue() != 30 {
			t.Fatalf("ignored events changed revenue: %v", r)
		}
	})
}

// GetTimeseries: a point a day, oldest first, the caller's tenant only
// (another tenant is refused), every tenant or a named one for a platform
// admin, and days checked.
func TestTimeseries(t *testing.T) {
	backends(t, func(t *testing.T, c finopsv1.FinOpsServiceClient) {
		now := time.Now()
		mustSend(t, c, chargeEvent("evt_ts_1", "charge.succeeded", "ch_ts_1", 10000, 0, "acme", "cus_a", now))
		mustSend(t, c, chargeEvent("evt_ts_2", "charge.succeeded", "ch_ts_2", 30000, 0, "globex", "cus_g", now))
		record(t, c, "acme", usage("a1", "echopilot-test", 1_000_000, 0), usage("a2", "no-such-model", 1, 1))
		record(t, c, "globex", usage("g1", "echopilot-test", 3_000_000, 0))

		acme := as(t, "acme", "user")
		ts, err := c.GetTimeseries(acme, &finopsv1.GetTimeseriesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		days := ts.GetDays()
		if ts.GetPeriodDays() != 30 || len(days) != 30 || ts.GetTenantId() != "acme" || ts.GetCurrency() != "USD" {
			t.Fatalf("acme's series: %d days of %d, tenant %q", len(days), ts.GetPeriodDays(), ts.GetTenantId())
		}
		today := days[29]
		if today.GetDate() != now.UTC().Format(time.DateOnly) || today.GetRevenue() != 100 || today.GetAiCost() != 1 ||
			today.GetJobCount() != 2 || today.GetUnpricedJobCount() != 1 || today.GetInfrastructureCost() != 0.399999 ||
			today.GetTotalCosts() != 1.399999 || today.GetProfit() != 98.600001 || today.GetProfitMicros() != 98_600_001 {
			t.Errorf("acme today = %v", today)
		}
		if first := days[0]; first.GetDate() != now.UTC().AddDate(0, 0, -29).Format(time.DateOnly) ||
			first.GetRevenue() != 0 || first.GetJobCount() != 0 || first.GetInfrastructureCost() != 0 || first.GetProfit() != 0 {
			t.Errorf("acme's empty first day = %v", first)
		}
		s := summary(t, c, acme, 30)
		if s.GetRevenue().GetTotalRevenue() != today.GetRevenue() || s.GetProfitability().GetProfit() != today.GetProfit() {
			t.Errorf("acme's summary %v disagrees with its only day %v", s.GetProfitability(), today)
		}

		// Another tenant's series is refused, however it is named.
		_, err = c.GetTimeseries(acme, &finopsv1.GetTimeseriesRequest{TenantId: "globex"})
		wantErr(t, err, codes.PermissionDenied, "CROSS_TENANT_DENIED")
		_, err = c.GetTimeseries(metadata.AppendToOutgoingContext(acme, "x-tenant-id", "globex"), &finopsv1.GetTimeseriesRequest{})
		wantErr(t, err, codes.PermissionDenied, "CROSS_TENANT_DENIED")
		for _, d := range []int32{-1, 367} {
			_, err := c.GetTimeseries(acme, &finopsv1.GetTimeseriesRequest{Days: d})
			wantErr(t, err, codes.InvalidArgument, "DAYS_OUT_OF_RANGE")
		}
		_, err = c.GetTimeseries(context.Background(), &finopsv1.GetTimeseriesRequest{})
		wantErr(t, err, codes.Unauthenticated, "TOKEN_MISSING")

		// The admin: every tenant with the whole rate card a day, or one.
		all, err := c.GetTimeseries(admin(t), &finopsv1.GetTimeseriesRequest{Days: 2})
		if err != nil || len(all.GetDays()) != 2 || all.GetTenantId() != "" {
			t.Fatalf("admin series = %v, %v", all, err)
		}
		if d := all.GetDays()[1]; d.GetRevenue() != 400 || d.GetAiCost() != 4 || d.GetInfrastructureCost() != 0.6 || d.GetJobCount() != 3 {
			t.Errorf("admin today = %v", d)
		}
		if d := all.GetDays()[0]; d.GetRevenue() != 0 || d.GetInfrastructureCost() != 0.6 || d.GetProfit() != -0.6 {
			t.Errorf("admin yesterday = %v, want the rate card alone", d)
		}
		g, err := c.GetTimeseries(admin(t), &finopsv1.GetTimeseriesRequest{Days: 1, TenantId: "globex"})
		if err != nil || g.GetTenantId() != "globex" || len(g.GetDays()) != 1 || g.GetDays()[0].GetRevenue() != 300 {
			t.Fatalf("admin reading globex = %v, %v", g, err)
		}
	})
}
