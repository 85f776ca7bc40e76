package app_test

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/timestamppb"

	growthv1 "github.com/echopilot/echopilot/gen/go/echopilot/growth/v1"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/service"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/growth/app"
)

var (
	as      = servicetest.As
	wantErr = servicetest.WantErr
)

// backends runs fn against the service on SQLite and, when configured, on
// PostgreSQL as a non-owner role, with auth required and the defaults of
// the issue (20%, example.com, 30 days).
func backends(t *testing.T, fn func(t *testing.T, c growthv1.GrowthServiceClient)) {
	backendsWith(t, nil, fn)
}

// backendsWith is backends with flags.
func backendsWith(t *testing.T, args []string, fn func(t *testing.T, c growthv1.GrowthServiceClient)) {
	t.Run("sqlite", func(t *testing.T) {
		conn := servicetest.Start(t, app.Spec(), servicetest.Options{AuthMode: "required", Args: args})
		fn(t, growthv1.NewGrowthServiceClient(conn))
	})
	t.Run("postgres", func(t *testing.T) {
		migrateURL, appURL := storetest.Postgres(t)
		conn := servicetest.Start(t, app.Spec(), servicetest.Options{AuthMode: "required", DatabaseURL: appURL, MigrateURL: migrateURL, Args: args})
		fn(t, growthv1.NewGrowthServiceClient(conn))
	})
}

func create(t *testing.T, c growthv1.GrowthServiceClient, ctx context.Context, referrer, campaign string) *growthv1.CreateReferralResponse {
	t.Helper()
	r, err := c.CreateReferral(ctx, &growthv1.CreateReferralRequest{ReferrerId: referrer, Campaign: campaign})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func event(c growthv1.GrowthServiceClient, ctx context.Context, e *growthv1.Event) (*growthv1.RecordEventResponse, error) {
	return c.RecordEvent(ctx, &growthv1.RecordEventRequest{Event: e})
}

func mustEvent(t *testing.T, c growthv1.GrowthServiceClient, ctx context.Context, e *growthv1.Event) *growthv1.RecordEventResponse {
	t.Helper()
	r, err := event(c, ctx, e)
	if err != nil {
		t.Fatalf("event %s: %v", e.GetEventId(), err)
	}
	return r
}

func stats(t *testing.T, c growthv1.GrowthServiceClient, ctx context.Context, req *growthv1.ListReferralsRequest) *growthv1.ListReferralsResponse {
	t.Helper()
	s, err := c.ListReferrals(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// export reads the whole payout export: its headers and body.
func export(ctx context.Context, c growthv1.GrowthServiceClient, req *growthv1.ExportPayoutsRequest) (metadata.MD, []byte, int, error) {
	stream, err := c.ExportPayouts(ctx, req)
	if err != nil {
		return nil, nil, 0, err
	}
	var (
		body   []byte
		chunks int
	)
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, 0, err
		}
		if m.GetContentType() != "text/csv; charset=utf-8" {
			return nil, nil, 0, fmt.Errorf("chunk of type %q", m.GetContentType())
		}
		body = append(body, m.GetData()...)
		chunks++
	}
	md, err := stream.Header()
	return md, body, chunks, err
}

func conversion(id, code, customer string, revenue float64) *growthv1.Event {
	return &growthv1.Event{EventId: id, Type: "conversion", ReferralCode: code, CustomerId: customer, Revenue: revenue}
}

// Every RPC of the service declares its access policy.
func TestEveryRPCHasPolicy(t *testing.T) {
	if err := identity.CheckPolicies(protoregistry.GlobalFiles); err != nil {
		t.Fatal(err)
	}
	if growthv1.File_echopilot_growth_v1_growth_proto.Services().Len() != 1 {
		t.Fatal("growth proto not registered")
	}
}

// The seed's samples: a new referral, and the stats of a tenant with none.
func TestSeedShapes(t *testing.T) {
	backends(t, func(t *testing.T, c growthv1.GrowthServiceClient) {
		empty := stats(t, c, as(t, "acme", "user"), &growthv1.ListReferralsRequest{Days: 7})
		want := &growthv1.ListReferralsResponse{PeriodDays: 7}
		if !proto.Equal(empty, want) {
			t.Fatalf("empty stats = %v, want %v", empty, want)
		}
		if d := stats(t, c, as(t, "acme", "user"), &growthv1.ListReferralsRequest{}).GetPeriodDays(); d != 7 {
			t.Errorf("default period = %d, want 7", d)
		}
		before := time.Now().Add(-time.Second)
		r := create(t, c, as(t, "acme", "user"), "user123", "spring2025")
		if len(r.GetReferralCode()) != 8 || r.GetReferrerId() != "user123" || r.GetCampaign() != "spring2025" ||
			r.GetClicks() != 0 || r.GetSignups() != 0 || r.GetConversions() != 0 || !r.GetCreated() ||
			r.GetCreatedAt().AsTime().Before(before.Truncate(time.Second)) || r.GetCreatedAt().GetNanos() != 0 {
			t.Fatalf("create = %v", r)
		}
		if d := create(t, c, as(t, "acme", "user"), "user9", ""); d.GetCampaign() != "default" {
			t.Errorf("campaign of a create naming none = %q", d.GetCampaign())
		}
	})
}

// Creating again returns the same code with the counts so far; sixteen
// concurrent creates make one code.
func TestCreateIdempotent(t *testing.T) {
	backends(t, func(t *testing.T, c growthv1.GrowthServiceClient) {
		ctx := as(t, "acme", "user")
		codes := make([]string, 16)
		var g errgroup.Group
		for i := range codes {
			g.Go(func() error {
				r, err := c.CreateReferral(ctx, &growthv1.CreateReferralRequest{ReferrerId: "ann", Campaign: "Spring"})
				codes[i] = r.GetReferralCode()
				return err
			})
		}
		if err := g.Wait(); err != nil {
			t.Fatal(err)
		}
		if len(slices.Compact(slices.Sorted(slices.Values(codes)))) != 1 {
			t.Fatalf("concurrent creates gave %v", codes)
		}
		mustEvent(t, c, ctx, &growthv1.Event{EventId: "k1", Type: "click", ReferralCode: codes[0]})
		mustEvent(t, c, ctx, &growthv1.Event{EventId: "s1", Type: "signup", ReferralCode: codes[0]})
		again := create(t, c, ctx, "ann", "spring")
		if again.GetReferralCode() != codes[0] || again.GetCreated() || again.GetClicks() != 1 || again.GetSignups() != 1 {
			t.Fatalf("create again = %v", again)
		}
		if other := create(t, c, ctx, "ann", "summer"); other.GetReferralCode() == codes[0] {
			t.Fatal("another campaign got the same code")
		}
	})
}

// Commission: 20% by default, floor to the cent; a campaign rate applies to
// conversions recorded after it is set; a self-referral earns nothing and is
// counted apart; refunds claw the commission back, whenever they arrive.
func TestCommissions(t *testing.T) {
	backends(t, func(t *testing.T, c growthv1.GrowthServiceClient) {
		ctx := as(t, "acme", "user")
		code := create(t, c, ctx, "ann", "spring").GetReferralCode()
		mustEvent(t, c, ctx, conversion("c1", code, "cust1", 19.99)) // 20% of 19.99 = 3.998: 3.99
		s := stats(t, c, ctx, &growthv1.ListReferralsRequest{})
		if s.GetTotalConversions() != 1 || s.GetTotalRevenue() != 19.99 || s.GetTotalPayout() != 3.99 {
			t.Fatalf("after one conversion: %v", s)
		}

		rate := 0.1
		camp, err := c.PutCampaign(ctx, &growthv1.PutCampaignRequest{Campaign: "spring", CommissionRate: &rate})
		if err != nil || camp.GetCampaign().GetCommissionRate() != 0.1 || camp.GetCampaign().GetLandingUrl() != "https://example.com/" {
			t.Fatalf("put campaign = %v, %v", camp, err)
		}
		mustEvent(t, c, ctx, conversion("c2", code, "cust2", 100)) // 10%: 10.00
		if s := stats(t, c, ctx, &growthv1.ListReferralsRequest{}); s.GetTotalPayout() != 13.99 || s.GetTotalRevenue() != 119.99 {
			t.Fatalf("after the rate change: %v", s)
		}

		self := mustEvent(t, c, ctx, conversion("c3", code, "ann", 500))
		if !self.GetSelfReferral() || self.GetReferralCode() != code {
			t.Fatalf("self-referral = %v", self)
		}
		s = stats(t, c, ctx, &growthv1.ListReferralsRequest{})
		if s.GetTotalSelfReferrals() != 1 || s.GetTotalConversions() != 2 || s.GetTotalPayout() != 13.99 {
			t.Fatalf("after a self-referral: %v", s)
		}

		// Half of c2 refunded: 10.00 → 5.00. A refund of c4 before c4.
		mustEvent(t, c, ctx, &growthv1.Event{EventId: "r1", Type: "refund", RefundOf: "c2", Revenue: 50})
		mustEvent(t, c, ctx, &growthv1.Event{EventId: "r2", Type: "refund", RefundOf: "c4"}) // all of it
		mustEvent(t, c, ctx, conversion("c4", code, "cust4", 40))
		s = stats(t, c, ctx, &growthv1.ListReferralsRequest{})
		if s.GetTotalPayout() != 8.99 || s.GetTotalRevenue() != 69.99 || s.GetTotalRefunded() != 90 || s.GetTotalConversions() != 3 {
			t.Fatalf("after refunds: %v", s)
		}
		// Over-refunding caps at the conversion's revenue.
		mustEvent(t, c, ctx, &growthv1.Event{EventId: "r3", Type: "refund", RefundOf: "c1", Revenue: 1000})
		if s := stats(t, c, ctx, &growthv1.ListReferralsRequest{}); s.GetTotalPayout() != 5 || s.GetTotalRevenue() != 50 {
			t.Fatalf("after an over-refund: %v", s)
		}
		// A replay changes nothing; a reused id is refused.
		if r := mustEvent(t, c, ctx, &growthv1.Event{EventId: "r1", Type: "refund", RefundOf: "c2", Revenue: 50}); !r.GetDuplicate() {
			t.Fatalf("replayed refund = %v", r)
		}
		_, err = event(c, ctx, &growthv1.Event{EventId: "r1", Type: "refund", RefundOf: "c2", Revenue: 60})
		wantErr(t, err, codes.AlreadyExists, "EVENT_ID_REUSED")
		if s := stats(t, c, ctx, &growthv1.ListReferralsRequest{}); s.GetTotalPayout() != 5 {
			t.Fatalf("replays changed the payout: %v", s)
		}
	})
}

// Clicks: the public RPC resolves a typed code, records the click in the
// code's tenant under an id of its own and says where to go and for how
// long to attribute; a visitor's repeats within the window count once.
func TestTrackClick(t *testing.T) {
	backends(t, func(t *testing.T, c growthv1.GrowthServiceClient) {
		ctx := as(t, "acme", "user")
		code := create(t, c, ctx, "ann", "spring").GetReferralCode()
		anon := context.Background()
		typed := strings.ToLower(code[:4]) + "-" + code[4:]
		visitor := &growthv1.TrackClickRequest{ReferralCode: typed, ClientAddress: "203.0.113.5:4711", UserAgent: "Mozilla/5.0"}
		click, err := c.TrackClick(anon, visitor)
		if err != nil || click.GetReferralCode() != code || click.GetLandingUrl() != "https://example.com/" ||
			click.GetAttributionWindowSeconds() != 30*24*3600 || len(click.GetEventId()) != 26 || click.GetDuplicate() ||
			len(click.GetVisitorId()) != 22 {
			t.Fatalf("click = %v, %v", click, err)
		}
		if _, err := c.PutCampaign(ctx, &growthv1.PutCampaignRequest{Campaign: "spring", LandingUrl: "https://acme.example/spring?x=1"}); err != nil {
			t.Fatal(err)
		}
		// The visitor again, with its cookie and from a new connection: a
		// repeat. The landing page is the campaign's now.
		again, err := c.TrackClick(anon, &growthv1.TrackClickRequest{ReferralCode: code, VisitorId: click.GetVisitorId(),
			ClientAddress: "203.0.113.5:4712", UserAgent: "Mozilla/5.0"})
		if err != nil || again.GetLandingUrl() != "https://acme.example/spring?x=1" || !again.GetDuplicate() ||
			again.GetEventId() != "" || again.GetVisitorId() != click.GetVisitorId() {
			t.Fatalf("repeat = %v, %v", again, err)
		}
		// Another visitor counts.
		other, err := c.TrackClick(anon, &growthv1.TrackClickRequest{ReferralCode: code, ClientAddress: "198.51.100.7:80"})
		if err != nil || other.GetDuplicate() || other.GetVisitorId() == click.GetVisitorId() || other.GetEventId() == click.GetEventId() {
			t.Fatalf("another visitor = %v, %v", other, err)
		}
		if s := stats(t, c, ctx, &growthv1.ListReferralsRequest{}); s.GetTotalClicks() != 2 || s.GetReferrals()[0].GetClicks() != 2 {
			t.Fatalf("clicks = %v", s)
		}
		_, err = c.TrackClick(anon, &growthv1.TrackClickRequest{ReferralCode: "ZZZZZZZZ"})
		wantErr(t, err, codes.NotFound, "REFERRAL_NOT_FOUND")
		_, err = c.TrackClick(anon, &growthv1.TrackClickRequest{ReferralCode: "nope"})
		wantErr(t, err, codes.InvalidArgument, "REFERRAL_CODE_INVALID")
	})
}

// Issue 13, finding 3: a visitor cannot take a tenant's event id. A click
// naming the id of a conversion the tenant records later (the deprecated
// event_id, as the gateway once filled it from X-Request-Id) gets an id
// of the service's, and the conversion is recorded and paid. A tenant's
// own clicks keep the tenant's ids, in the tenant's space.
func TestClickCannotTakeEventIDs(t *testing.T) {
	backends(t, func(t *testing.T, c growthv1.GrowthServiceClient) {
		ctx := as(t, "acme", "user")
		code := create(t, c, ctx, "ann", "").GetReferralCode()
		click, err := c.TrackClick(context.Background(), &growthv1.TrackClickRequest{ReferralCode: code, EventId: "order-1001"})
		if err != nil || click.GetEventId() == "order-1001" || len(click.GetEventId()) != 26 {
			t.Fatalf("click = %v, %v", click, err)
		}
		// Not even the click's own id is the tenant's.
		for _, id := range []string{"order-1001", click.GetEventId()} {
			r := mustEvent(t, c, ctx, conversion(id, code, "cust", 100))
			if r.GetDuplicate() || r.GetReferralCode() != code {
				t.Fatalf("conversion %s = %v", id, r)
			}
		}
		if r := mustEvent(t, c, ctx, &growthv1.Event{EventId: "own-click", Type: "click", ReferralCode: code}); r.GetDuplicate() {
			t.Fatalf("tenant click = %v", r)
		}
		if r := mustEvent(t, c, ctx, &growthv1.Event{EventId: "own-click", Type: "click", ReferralCode: code}); !r.GetDuplicate() {
			t.Fatalf("replayed tenant click = %v", r)
		}
		s := stats(t, c, ctx, &growthv1.ListReferralsRequest{})
		if s.GetTotalClicks() != 2 || s.GetTotalConversions() != 2 || s.GetTotalRevenue() != 200 || s.GetTotalPayout() != 40 {
			t.Fatalf("stats = %v", s)
		}
	})
}

// Sixteen concurrent identical clicks count once.
func TestConcurrentClicksCountOnce(t *testing.T) {
	backends(t, func(t *testing.T, c growthv1.GrowthServiceClient) {
		ctx := as(t, "acme", "user")
		code := create(t, c, ctx, "ann", "").GetReferralCode()
		dup := make([]bool, 16)
		var g errgroup.Group
		for i := range dup {
			g.Go(func() error {
				r, err := c.TrackClick(context.Background(), &growthv1.TrackClickRequest{ReferralCode: code,
					ClientAddress: "203.0.113.5:" + fmt.Sprint(1000+i), UserAgent: "bot/1.0"})
				dup[i] = r.GetDuplicate()
				return err
			})
		}
		if err := g.Wait(); err != nil {
			t.Fatal(err)
		}
		if n := len(slices.DeleteFunc(dup, func(d bool) bool { return d })); n != 1 {
			t.Fatalf("%d of 16 identical clicks counted", n)
		}
		if s := stats(t, c, ctx, &growthv1.ListReferralsRequest{}); s.GetTotalClicks() != 1 {
			t.Fatalf("clicks = %d, want 1", s.GetTotalClicks())
		}
	})
}

// Part of issue 13, finding 5: a tenant's campaigns are capped. Beyond the
// cap a new campaign is refused with RESOURCE_EXHAUSTED, CAMPAIGN_LIMIT
// and the cap in the message, also when the puts race; changing an
// existing campaign still works; other tenants are not affected. The
// listing pages with tokens bound to the tenant.
func TestCampaignLimit(t *testing.T) {
	backendsWith(t, []string{"--max-campaigns=3"}, func(t *testing.T, c growthv1.GrowthServiceClient) {
		ctx := as(t, "acme", "user")
		errs := make([]error, 16)
		var g errgroup.Group
		for i := range errs {
			g.Go(func() error {
				_, errs[i] = c.PutCampaign(ctx, &growthv1.PutCampaignRequest{Campaign: fmt.Sprintf("c%02d", i)})
				return nil
			})
		}
		_ = g.Wait()
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
				continue
			}
			wantErr(t, err, codes.ResourceExhausted, "CAMPAIGN_LIMIT")
			if !strings.Contains(err.Error(), "at most 3 campaigns") {
				t.Fatalf("limit error without the cap: %v", err)
			}
		}
		if ok != 3 {
			t.Fatalf("%d of 16 concurrent new campaigns accepted, want 3", ok)
		}
		p, err := c.ListCampaigns(ctx, &growthv1.ListCampaignsRequest{PageSize: 2})
		if err != nil || len(p.GetCampaigns()) != 2 || p.GetNextPageToken() == "" {
			t.Fatalf("page 1 = %v, %v", p, err)
		}
		_, err = c.ListCampaigns(as(t, "globex", "user"), &growthv1.ListCampaignsRequest{PageSize: 2, PageToken: p.GetNextPageToken()})
		wantErr(t, err, codes.InvalidArgument, "PAGE_TOKEN_INVALID")
		p2, err := c.ListCampaigns(ctx, &growthv1.ListCampaignsRequest{PageSize: 2, PageToken: p.GetNextPageToken()})
		if err != nil || len(p2.GetCampaigns()) != 1 || p2.GetNextPageToken() != "" {
			t.Fatalf("page 2 = %v, %v", p2, err)
		}
		rate := 0.3
		if _, err := c.PutCampaign(ctx, &growthv1.PutCampaignRequest{Campaign: p.GetCampaigns()[0].GetCampaign(), CommissionRate: &rate}); err != nil {
			t.Fatalf("changing a campaign at the cap: %v", err)
		}
		if _, err := c.PutCampaign(as(t, "globex", "user"), &growthv1.PutCampaignRequest{Campaign: "c00"}); err != nil {
			t.Fatalf("another tenant: %v", err)
		}
	})
}

// Bad input is refused with its reason, never a 500.
func TestBadInput(t *testing.T) {
	backends(t, func(t *testing.T, c growthv1.GrowthServiceClient) {
		ctx := as(t, "acme", "user")
		code := create(t, c, ctx, "ann", "").GetReferralCode()
		future := timestamppb.New(time.Now().Add(2 * time.Hour))
		for name, tc := range map[string]struct {
			e      *growthv1.Event
			code   codes.Code
			reason string
		}{
			"three decimals":        {conversion("e", code, "", 1.005), codes.InvalidArgument, "REVENUE_INVALID"},
			"negative revenue":      {conversion("e", code, "", -1), codes.InvalidArgument, "REVENUE_INVALID"},
			"NaN revenue":           {conversion("e", code, "", math.NaN()), codes.InvalidArgument, "REVENUE_INVALID"},
			"huge revenue":          {conversion("e", code, "", 1e7+1), codes.InvalidArgument, "REVENUE_INVALID"},
			"revenue on a click":    {&growthv1.Event{EventId: "e", Type: "click", ReferralCode: code, Revenue: 1}, codes.InvalidArgument, "REVENUE_INVALID"},
			"unknown type":          {&growthv1.Event{EventId: "e", Type: "purchase", ReferralCode: code}, codes.InvalidArgument, "EVENT_TYPE_INVALID"},
			"missing type":          {&growthv1.Event{EventId: "e", ReferralCode: code}, codes.InvalidArgument, "FIELD_REQUIRED"},
			"missing event_id":      {&growthv1.Event{Type: "click", ReferralCode: code}, codes.InvalidArgument, "FIELD_REQUIRED"},
			"long event_id":         {&growthv1.Event{EventId: strings.Repeat("x", 129), Type: "click", ReferralCode: code}, codes.InvalidArgument, "EVENT_ID_INVALID"},
			"control in customer":   {conversion("e", code, "a\x00b", 1), codes.InvalidArgument, "CUSTOMER_INVALID"},
			"refund without target": {&growthv1.Event{EventId: "e", Type: "refund"}, codes.InvalidArgument, "REFUND_OF_INVALID"},
			"refund_of on a click":  {&growthv1.Event{EventId: "e", Type: "click", ReferralCode: code, RefundOf: "x"}, codes.InvalidArgument, "REFUND_OF_INVALID"},
			"future event":          {&growthv1.Event{EventId: "e", Type: "click", ReferralCode: code, OccurredAt: future}, codes.InvalidArgument, "OCCURRED_AT_INVALID"},
			"missing code":          {&growthv1.Event{EventId: "e", Type: "click"}, codes.InvalidArgument, "REFERRAL_CODE_INVALID"},
			"too ambiguous":         {&growthv1.Event{EventId: "e", Type: "click", ReferralCode: "0O1IL234"}, codes.InvalidArgument, "REFERRAL_CODE_TOO_AMBIGUOUS"},
			"unknown code":          {&growthv1.Event{EventId: "e", Type: "click", ReferralCode: "ZZZZZZZZ"}, codes.NotFound, "REFERRAL_NOT_FOUND"},
		} {
			_, err := event(c, ctx, tc.e)
			t.Run(name, func(t *testing.T) { wantErr(t, err, tc.code, tc.reason) })
		}
		_, err := c.RecordEvent(ctx, &growthv1.RecordEventRequest{})
		wantErr(t, err, codes.InvalidArgument, "FIELD_REQUIRED")
		big := make([]*growthv1.Event, 1001)
		for i := range big {
			big[i] = &growthv1.Event{EventId: fmt.Sprint(i), Type: "click", ReferralCode: code}
		}
		_, err = c.RecordEvents(ctx, &growthv1.RecordEventsRequest{Events: big})
		wantErr(t, err, codes.InvalidArgument, "BATCH_TOO_LARGE")
		_, err = c.RecordEvents(ctx, &growthv1.RecordEventsRequest{Events: []*growthv1.Event{
			{EventId: "ok", Type: "click", ReferralCode: code}, conversion("bad", code, "", 0.001)}})
		wantErr(t, err, codes.InvalidArgument, "REVENUE_INVALID")
		if s := stats(t, c, ctx, &growthv1.ListReferralsRequest{}); s.GetTotalClicks() != 0 {
			t.Fatalf("a refused batch recorded clicks: %v", s)
		}

		for _, d := range []int32{-1, 367} {
			_, err = c.ListReferrals(ctx, &growthv1.ListReferralsRequest{Days: d})
			wantErr(t, err, codes.InvalidArgument, "DAYS_OUT_OF_RANGE")
			_, _, _, err = export(ctx, c, &growthv1.ExportPayoutsRequest{Days: d})
			wantErr(t, err, codes.InvalidArgument, "DAYS_OUT_OF_RANGE")
		}
		_, _, _, err = export(ctx, c, &growthv1.ExportPayoutsRequest{MinPayout: 0.001})
		wantErr(t, err, codes.InvalidArgument, "MIN_PAYOUT_INVALID")
		_, _, _, err = export(ctx, c, &growthv1.ExportPayoutsRequest{MinPayout: -5})
		wantErr(t, err, codes.InvalidArgument, "MIN_PAYOUT_INVALID")
		_, err = c.ListReferrals(ctx, &growthv1.ListReferralsRequest{PageSize: -1})
		wantErr(t, err, codes.InvalidArgument, "PAGE_SIZE_INVALID")
		_, err = c.ListReferrals(ctx, &growthv1.ListReferralsRequest{PageToken: "garbage"})
		wantErr(t, err, codes.InvalidArgument, "PAGE_TOKEN_INVALID")
		_, err = c.ListReferrals(ctx, &growthv1.ListReferralsRequest{Campaign: "bad campaign"})
		wantErr(t, err, codes.InvalidArgument, "CAMPAIGN_INVALID")
		// page_size above the maximum is lowered to it (AIP-158), not refused.
		if _, err := c.ListReferrals(ctx, &growthv1.ListReferralsRequest{PageSize: 5000}); err != nil {
			t.Fatalf("page_size 5000: %v", err)
		}

		_, err = c.CreateReferral(ctx, &growthv1.CreateReferralRequest{ReferrerId: "ann", Campaign: "-x"})
		wantErr(t, err, codes.InvalidArgument, "CAMPAIGN_INVALID")
		_, err = c.CreateReferral(ctx, &growthv1.CreateReferralRequest{ReferrerId: strings.Repeat("a", 129)})
		wantErr(t, err, codes.InvalidArgument, "REFERRER_INVALID")
		_, err = c.CreateReferral(ctx, &growthv1.CreateReferralRequest{})
		wantErr(t, err, codes.InvalidArgument, "FIELD_REQUIRED")
		for _, rate := range []float64{1.5, -0.1, 0.12345, math.Inf(1)} {
			_, err = c.PutCampaign(ctx, &growthv1.PutCampaignRequest{Campaign: "x", CommissionRate: &rate})
			wantErr(t, err, codes.InvalidArgument, "COMMISSION_RATE_INVALID")
		}
		for _, u := range []string{"javascript:alert(1)", "/relative", "ftp://example.com/", "https://user@evil.example/", "http://"} {
			_, err = c.PutCampaign(ctx, &growthv1.PutCampaignRequest{Campaign: "x", LandingUrl: u})
			wantErr(t, err, codes.InvalidArgument, "LANDING_URL_INVALID")
		}
		_, err = c.ListReferrals(context.Background(), &growthv1.ListReferralsRequest{})
		wantErr(t, err, codes.Unauthenticated, "TOKEN_MISSING")
	})
}

// Tenants see, export and change only their own referrals; a public click
// lands in the stats of the code's tenant; a platform admin reads another
// tenant but never writes to it.
func TestTenantIsolation(t *testing.T) {
	backends(t, func(t *testing.T, c growthv1.GrowthServiceClient) {
		acme, globex := as(t, "acme", "user"), as(t, "globex", "user")
		code := create(t, c, acme, "ann", "default").GetReferralCode()
		mustEvent(t, c, acme, conversion("c1", code, "cust", 100))

		if s := stats(t, c, globex, &growthv1.ListReferralsRequest{}); s.GetTotalReferrals() != 0 || len(s.GetReferrals()) != 0 {
			t.Fatalf("globex sees %v", s)
		}
		_, body, _, err := export(globex, c, &growthv1.ExportPayoutsRequest{})
		if err != nil || strings.Count(string(body), "\n") != 1 {
			t.Fatalf("globex's export: %q, %v", body, err)
		}
		_, err = event(c, globex, conversion("g1", code, "cust", 1000))
		wantErr(t, err, codes.NotFound, "REFERRAL_NOT_FOUND")
		_, err = event(c, globex, &growthv1.Event{EventId: "g2", Type: "refund", RefundOf: "c1"})
		if err != nil {
			t.Fatal(err) // accepted as globex's own refund of a conversion globex never had
		}
		if g := create(t, c, globex, "ann", "default"); g.GetReferralCode() == code {
			t.Fatal("globex got acme's code")
		}

		foreign := metadata.AppendToOutgoingContext(globex, "x-tenant-id", "acme")
		_, err = c.ListReferrals(foreign, &growthv1.ListReferralsRequest{})
		wantErr(t, err, codes.PermissionDenied, "CROSS_TENANT_DENIED")
		_, err = c.ListReferrals(globex, &growthv1.ListReferralsRequest{TenantId: "acme"})
		wantErr(t, err, codes.PermissionDenied, "CROSS_TENANT_DENIED")
		_, _, _, err = export(foreign, c, &growthv1.ExportPayoutsRequest{})
		wantErr(t, err, codes.PermissionDenied, "CROSS_TENANT_DENIED")
		// A stream is authorized from its metadata when it opens; a request
		// naming another tenant than the stream's is refused on receipt.
		_, _, _, err = export(globex, c, &growthv1.ExportPayoutsRequest{TenantId: "acme"})
		wantErr(t, err, codes.InvalidArgument, "TENANT_CONFLICT")
		_, err = event(c, foreign, conversion("g3", code, "cust", 1000))
		wantErr(t, err, codes.PermissionDenied, "CROSS_TENANT_DENIED")
		_, err = c.CreateReferral(foreign, &growthv1.CreateReferralRequest{ReferrerId: "x"})
		wantErr(t, err, codes.PermissionDenied, "CROSS_TENANT_DENIED")
		_, err = c.PutCampaign(foreign, &growthv1.PutCampaignRequest{Campaign: "default"})
		wantErr(t, err, codes.PermissionDenied, "CROSS_TENANT_DENIED")
		_, err = c.ListCampaigns(foreign, &growthv1.ListCampaignsRequest{})
		wantErr(t, err, codes.PermissionDenied, "CROSS_TENANT_DENIED")

		// The public click resolves the code to acme, whoever clicks.
		if _, err := c.TrackClick(globex, &growthv1.TrackClickRequest{ReferralCode: code}); err != nil {
			t.Fatal(err)
		}
		s := stats(t, c, acme, &growthv1.ListReferralsRequest{})
		if s.GetTotalClicks() != 1 || s.GetTotalRevenue() != 100 || s.GetTotalPayout() != 20 {
			t.Fatalf("acme's stats = %v", s)
		}
		if s := stats(t, c, globex, &growthv1.ListReferralsRequest{}); s.GetTotalClicks() != 0 || s.GetTotalReferrals() != 1 {
			t.Fatalf("globex's stats = %v", s)
		}

		admin := metadata.AppendToOutgoingContext(as(t, "default", "admin"), "x-tenant-id", "acme")
		if s := stats(t, c, admin, &growthv1.ListReferralsRequest{}); s.GetTotalRevenue() != 100 {
			t.Fatalf("admin reading acme = %v", s)
		}
		if _, body, _, err := export(admin, c, &growthv1.ExportPayoutsRequest{State: "all"}); err != nil || !strings.Contains(string(body), code) {
			t.Fatalf("admin's export of acme: %q, %v", body, err)
		}
		_, err = event(c, admin, conversion("a1", code, "cust", 1000))
		wantErr(t, err, codes.PermissionDenied, "CROSS_TENANT_DENIED")
	})
}

// The leaderboard: by revenue, then code, a page at a time, with tokens
// bound to their query; filters narrow totals and rows alike.
func TestLeaderboard(t *testing.T) {
	backends(t, func(t *testing.T, c growthv1.GrowthServiceClient) {
		ctx := as(t, "acme", "user")
		revenue := map[string]float64{"a": 30, "b": 10, "c": 30, "d": 0, "e": 20}
		var evs []*growthv1.Event
		for _, who := range slices.Sorted(func(yield func(string) bool) {
			for k := range revenue {
				if !yield(k) {
					return
				}
			}
		}) {
			campaign := "spring"
			if who == "e" {
				campaign = "fall"
			}
			code := create(t, c, ctx, who, campaign).GetReferralCode()
			if revenue[who] > 0 {
				evs = append(evs, conversion("c-"+who, code, "cust", revenue[who]))
			}
		}
		old := timestamppb.New(time.Now().Add(-10 * 24 * time.Hour))
		evs = append(evs, &growthv1.Event{EventId: "old", Type: "conversion", ReferralCode: evs[1].GetReferralCode(), Revenue: 1000, OccurredAt: old})
		if _, err := c.RecordEvents(ctx, &growthv1.RecordEventsRequest{Events: evs}); err != nil {
			t.Fatal(err)
		}
		var got []string
		req := &growthv1.ListReferralsRequest{Days: 7, PageSize: 2}
		for {
			p := stats(t, c, ctx, req)
			if p.GetTotalReferrals() != 5 || p.GetTotalRevenue() != 90 || p.GetTotalPayout() != 18 {
				t.Fatalf("totals = %v", p)
			}
			for _, r := range p.GetReferrals() {
				got = append(got, fmt.Sprintf("%s:%v", r.GetReferrerId(), r.GetRevenue()))
			}
			if p.GetNextPageToken() == "" {
				break
			}
			req.PageToken = p.GetNextPageToken()
			if _, err := c.ListReferrals(ctx, &growthv1.ListReferralsRequest{Days: 30, PageSize: 2, PageToken: req.PageToken}); err == nil {
				t.Fatal("a token of days=7 was accepted for days=30")
			}
		}
		// a and c tie at 30: by code, so either order is right, but it is
		// the order of their codes.
		if len(got) != 5 || !strings.HasSuffix(got[0], ":30") || !strings.HasSuffix(got[1], ":30") ||
			got[2] != "e:20" || got[3] != "b:10" || got[4] != "d:0" {
			t.Fatalf("leaderboard = %v", got)
		}
		if s := stats(t, c, ctx, &growthv1.ListReferralsRequest{Days: 30}); s.GetTotalRevenue() != 1090 {
			t.Fatalf("30 days = %v", s.GetTotalRevenue())
		}
		f := stats(t, c, ctx, &growthv1.ListReferralsRequest{Campaign: "FALL"})
		if f.GetTotalReferrals() != 1 || f.GetTotalRevenue() != 20 || len(f.GetReferrals()) != 1 {
			t.Fatalf("fall = %v", f)
		}
		f = stats(t, c, ctx, &growthv1.ListReferralsRequest{ReferrerId: "b", Campaign: "spring"})
		if f.GetTotalReferrals() != 1 || f.GetTotalRevenue() != 10 || f.GetReferrals()[0].GetReferrerId() != "b" {
			t.Fatalf("b in spring = %v", f)
		}
	})
}

// The export streams: the attachment header before the first chunk, the
// seed's columns, every row, in chunks of at most 64 KiB.
func TestExportStreams(t *testing.T) {
	backends(t, func(t *testing.T, c growthv1.GrowthServiceClient) {
		ctx := as(t, "acme", "user")
		const n = 2500 // more than two store pages, more than one chunk
		var evs []*growthv1.Event
		for i := range n {
			code := create(t, c, ctx, fmt.Sprintf("referrer-%04d-with-a-longer-name-for-bytes", i), "spring").GetReferralCode()
			evs = append(evs, conversion(fmt.Sprint("c", i), code, "cust", float64(100+i)))
			if len(evs) == 1000 || i == n-1 {
				if _, err := c.RecordEvents(ctx, &growthv1.RecordEventsRequest{Events: evs}); err != nil {
					t.Fatal(err)
				}
				evs = nil
			}
		}
		md, body, chunks, err := export(ctx, c, &growthv1.ExportPayoutsRequest{Days: 1, MinPayout: 20.2, State: "all"})
		if err != nil {
			t.Fatal(err)
		}
		if got := md.Get("content-disposition"); len(got) != 1 || got[0] != `attachment; filename="payouts.csv"` {
			t.Fatalf("content-disposition = %q", got)
		}
		rows, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		// Payout 20% of 100+i ≥ 20.20 for i ≥ 1.
		if len(rows) != n || strings.Join(rows[0], ",") != "referral_code,referrer_id,campaign,signups,conversions,revenue_usd,payout_usd" {
			t.Fatalf("%d rows, header %v", len(rows), rows[0])
		}
		if chunks < 2 || len(body) > chunks*64<<10 {
			t.Fatalf("%d bytes in %d chunks", len(body), chunks)
		}
		if !slices.IsSortedFunc(rows[1:], func(a, b []string) int { return strings.Compare(a[0], b[0]) }) {
			t.Fatal("rows are not ordered by code")
		}
	})
}

func TestCampaigns(t *testing.T) {
	backends(t, func(t *testing.T, c growthv1.GrowthServiceClient) {
		ctx := as(t, "acme", "user")
		rate := 0.125
		for _, name := range []string{"b", "a", "C"} {
			if _, err := c.PutCampaign(ctx, &growthv1.PutCampaignRequest{Campaign: name, CommissionRate: &rate}); err != nil {
				t.Fatal(err)
			}
		}
		// Replacing a campaign without a rate returns it to the default.
		if r, err := c.PutCampaign(ctx, &growthv1.PutCampaignRequest{Campaign: "b"}); err != nil || r.GetCampaign().GetCommissionRate() != 0.2 {
			t.Fatalf("put b = %v, %v", r, err)
		}
		p, err := c.ListCampaigns(ctx, &growthv1.ListCampaignsRequest{PageSize: 2})
		if err != nil || len(p.GetCampaigns()) != 2 || p.GetCampaigns()[0].GetCampaign() != "a" || p.GetCampaigns()[0].GetCommissionRate() != 0.125 ||
			p.GetDefaultCommissionRate() != 0.2 || p.GetDefaultLandingUrl() != "https://example.com/" {
			t.Fatalf("page 1 = %v, %v", p, err)
		}
		p, err = c.ListCampaigns(ctx, &growthv1.ListCampaignsRequest{PageSize: 2, PageToken: p.GetNextPageToken()})
		if err != nil || len(p.GetCampaigns()) != 1 || p.GetCampaigns()[0].GetCampaign() != "c" || p.GetNextPageToken() != "" {
			t.Fatalf("page 2 = %v, %v", p, err)
		}
		if p, err := c.ListCampaigns(as(t, "globex", "user"), &growthv1.ListCampaignsRequest{}); err != nil || len(p.GetCampaigns()) != 0 {
			t.Fatalf("globex's campaigns = %v, %v", p, err)
		}
	})
}

// The flags and their environment variables set the defaults; bad values
// stop the service at start.
func TestConfig(t *testing.T) {
	conn := servicetest.Start(t, app.Spec(), servicetest.Options{Args: []string{
		"--default-commission=0.35", "--landing-url=https://land.example/x", "--attribution-window=48h",
	}})
	c := growthv1.NewGrowthServiceClient(conn)
	ctx := as(t, "acme", "user")
	code := create(t, c, ctx, "ann", "").GetReferralCode()
	click, err := c.TrackClick(ctx, &growthv1.TrackClickRequest{ReferralCode: code})
	if err != nil || click.GetLandingUrl() != "https://land.example/x" || click.GetAttributionWindowSeconds() != 48*3600 {
		t.Fatalf("click = %v, %v", click, err)
	}
	mustEvent(t, c, ctx, conversion("c", code, "", 10))
	if s := stats(t, c, ctx, &growthv1.ListReferralsRequest{}); s.GetTotalPayout() != 3.5 {
		t.Fatalf("payout at 35%% = %v", s.GetTotalPayout())
	}

	for _, bad := range [][]string{
		{"--default-commission=1.5"}, {"--default-commission=0.2%"},
		{"--landing-url=javascript:alert(1)"}, {"--attribution-window=0s"},
		{"--click-dedup-window=-1s"}, {"--max-campaigns=0"},
	} {
		args := append([]string{"--database-url=sqlite://" + filepath.Join(t.TempDir(), "g.db"), "--metrics-addr=",
			"--jwt-hs256-secret=" + servicetest.Secret, "--allow-unbound-tokens"}, bad...)
		err := service.RunContext(t.Context(), args, app.Spec(), service.Overrides{Log: zap.NewNop(),
			Decisions: func(context.Context, []identity.Decision) error { return nil }})
		if err == nil || !strings.Contains(err.Error(), "setup") {
			t.Errorf("%v: start = %v, want a setup error", bad, err)
		}
	}
}
