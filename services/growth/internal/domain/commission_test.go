package domain_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/page"
	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/growth/internal/code"
	"github.com/echopilot/echopilot/services/growth/internal/domain"
	"github.com/echopilot/echopilot/services/growth/internal/store"
)

// commissionService is the service on a fresh database of b with a
// two-week commission hold and a clock the test moves.
func commissionService(t *testing.T, b storetest.Backend, clock *time.Time) *domain.Service {
	t.Helper()
	codes := rand.NewChaCha8([32]byte{9})
	batches := 0
	svc, err := domain.NewService(store.New(b.Open(t, storeMigrations)), domain.Config{
		DefaultRateBPS:    2000,
		DefaultLandingURL: "https://example.com/",
		AttributionWindow: time.Hour,
		Now:               func() time.Time { return *clock },
		NewCode:           func() (string, error) { return code.NewFrom(codes) },
		VisitorKey:        []byte("0123456789abcdef0123456789abcdef"),
		MaxCampaigns:      10,
		CommissionHold:    domain.DefaultCommissionHold,
		NewClickID:        func() string { return "click" },
		NewBatchID:        func() string { batches++; return fmt.Sprintf("batch-%d", batches) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// states lists every commission of tenant in state, through pages of two,
// as "id=state:commission" and checks the SQL's state against StateAt.
func states(t *testing.T, svc *domain.Service, tenant, state string, now time.Time) string {
	t.Helper()
	var out []string
	q := domain.CommissionQuery{State: state, Request: page.Request{PageSize: 2}}
	for {
		p, err := svc.Commissions(t.Context(), domain.Caller{Tenant: tenant}, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range p.Commissions {
			if got := c.State.StateAt(domain.Clock{Now: now, Hold: domain.DefaultCommissionHold}); got != c.StateName {
				t.Errorf("%s: the store says %s, StateAt %s", c.ID, c.StateName, got)
			}
			out = append(out, fmt.Sprintf("%s=%s:%d", c.ID, c.StateName, c.State.Contribution().PayoutCents))
		}
		if p.Next == "" {
			return strings.Join(out, " ")
		}
		q.PageToken = p.Next
	}
}

func exportOf(t *testing.T, svc *domain.Service, tenant string, q domain.PayoutQuery) string {
	t.Helper()
	exp, err := svc.PayoutExport(domain.Caller{Tenant: tenant}, q)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := exp.WriteCSV(t.Context(), &buf); err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(buf.String(), strings.Join(domain.ExportHeader, ",")+"\n")
}

func wantReason(t *testing.T, err error, code codes.Code, reason string) {
	t.Helper()
	if e, ok := apierr.As(err); !ok || e.Code != code || e.Reason != reason {
		t.Fatalf("got %v, want %v %s", err, code, reason)
	}
}

// Commission states over time, refunds, payout batches and the export's
// filters, on both databases.
func TestCommissionLifecycle(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			clock := now
			svc := commissionService(t, b, &clock)
			acme, globex := domain.Caller{Tenant: "acme"}, domain.Caller{Tenant: "globex"}
			ann := create(t, svc, "acme", "ann", "default")
			conv := func(id string, dollars float64, ago time.Duration) domain.EventInput {
				at := clock.Add(-ago)
				return domain.EventInput{Code: ann, Type: "conversion", ID: id, CustomerID: "cust-" + id, Revenue: dollars, OccurredAt: &at}
			}
			refund := func(id, of string, dollars float64) domain.EventInput {
				return domain.EventInput{Type: "refund", ID: id, RefundOf: of, Revenue: dollars}
			}
			record(t, svc, "acme", conv("c1", 100, 0), conv("c2", 50, 0), conv("c3", 80, 20*24*time.Hour),
				domain.EventInput{Code: ann, Type: "conversion", ID: "c4", CustomerID: "ann", Revenue: 70}) // self-referral: no commission
			// A refund before its conversion: no commission yet.
			record(t, svc, "acme", refund("r0", "c9", 1))

			if got, want := states(t, svc, "acme", "", clock), "c1=pending:2000 c2=pending:1000 c3=approved:1600"; got != want {
				t.Fatalf("states = %s, want %s", got, want)
			}
			if got := states(t, svc, "acme", domain.StatePending, clock); got != "c1=pending:2000 c2=pending:1000" {
				t.Errorf("pending = %s", got)
			}
			_, err := svc.Commissions(t.Context(), acme, domain.CommissionQuery{State: "owed"})
			wantReason(t, err, codes.InvalidArgument, domain.ReasonCommissionStateInvalid)
			_, err = svc.PayoutExport(acme, domain.PayoutQuery{State: "Approved"})
			wantReason(t, err, codes.InvalidArgument, domain.ReasonCommissionStateInvalid)

			// The export: approved by default, whatever the period, with
			// the referral's signups; other states on request.
			if got := exportOf(t, svc, "acme", domain.PayoutQuery{}); got != ann+",ann,default,0,1,80.00,16.00\n" {
				t.Errorf("approved export = %q", got)
			}
			if got := exportOf(t, svc, "acme", domain.PayoutQuery{Days: 7}); got != "" {
				t.Errorf("approved export of the last week = %q, want nothing (c3 is 20 days old)", got)
			}
			if got := exportOf(t, svc, "acme", domain.PayoutQuery{State: domain.StatePending}); got != ann+",ann,default,0,2,150.00,30.00\n" {
				t.Errorf("pending export = %q", got)
			}

			// A full refund is final.
			record(t, svc, "acme", refund("r2", "c2", 0))
			if got := states(t, svc, "acme", domain.StateRefunded, clock); got != "c2=refunded:0" {
				t.Errorf("refunded = %s", got)
			}

			// Past the hold c1 is approved: a batch takes c1 and c3, once.
			clock = clock.Add(domain.DefaultCommissionHold + time.Hour)
			if got := states(t, svc, "acme", domain.StateApproved, clock); got != "c1=approved:2000 c3=approved:1600" {
				t.Fatalf("approved after the hold = %s", got)
			}
			batch, err := svc.CreatePayoutBatch(t.Context(), acme)
			if err != nil || batch.ID != "batch-1" || batch.Count != 2 || batch.PayoutCents != 3600 || !batch.PaidAt.IsZero() {
				t.Fatalf("batch = %+v, %v", batch, err)
			}
			_, err = svc.CreatePayoutBatch(t.Context(), acme)
			wantReason(t, err, codes.FailedPrecondition, domain.ReasonPayoutEmpty)
			if got := exportOf(t, svc, "acme", domain.PayoutQuery{BatchID: batch.ID}); got != ann+",ann,default,0,2,180.00,36.00\n" {
				t.Errorf("batch export = %q", got)
			}

			// Another tenant sees none of it and cannot pay it.
			if got := states(t, svc, "globex", "", clock); got != "" {
				t.Errorf("globex sees %s", got)
			}
			_, _, err = svc.MarkPayoutPaid(t.Context(), globex, batch.ID)
			wantReason(t, err, codes.NotFound, domain.ReasonBatchNotFound)
			_, err = svc.CreatePayoutBatch(t.Context(), globex)
			wantReason(t, err, codes.FailedPrecondition, domain.ReasonPayoutEmpty)
			if got := exportOf(t, svc, "globex", domain.PayoutQuery{BatchID: batch.ID}); got != "" {
				t.Errorf("globex's export of acme's batch = %q", got)
			}
			_, _, err = svc.MarkPayoutPaid(t.Context(), acme, "batch-404")
			wantReason(t, err, codes.NotFound, domain.ReasonBatchNotFound)
			_, _, err = svc.MarkPayoutPaid(t.Context(), acme, "")
			wantReason(t, err, codes.InvalidArgument, domain.ReasonBatchIDInvalid)

			// A refund before the batch is paid still counts.
			record(t, svc, "acme", refund("r1", "c1", 50))
			paid, changed, err := svc.MarkPayoutPaid(t.Context(), acme, batch.ID)
			if err != nil || !changed || paid.PaidCount != 2 || paid.PaidCents != 2600 || paid.Count != 2 || paid.PayoutCents != 3600 ||
				!paid.PaidAt.Equal(clock) {
				t.Fatalf("paid = %+v, %v, %v", paid, changed, err)
			}
			// Idempotent: again is fine and changes nothing, later too.
			clock = clock.Add(time.Hour)
			again, changed, err := svc.MarkPayoutPaid(t.Context(), acme, batch.ID)
			if err != nil || changed || again != paid {
				t.Fatalf("paid again = %+v, %v, %v; want %+v unchanged", again, changed, err, paid)
			}
			if got := states(t, svc, "acme", "", clock); got != "c1=paid:1000 c2=refunded:0 c3=paid:1600" {
				t.Errorf("states after payment = %s", got)
			}
			if got := exportOf(t, svc, "acme", domain.PayoutQuery{}); got != "" {
				t.Errorf("approved export after payment = %q", got)
			}
			if got := exportOf(t, svc, "acme", domain.PayoutQuery{State: domain.StatePaid}); got != ann+",ann,default,0,2,130.00,26.00\n" {
				t.Errorf("paid export = %q", got)
			}

			// A paid commission cannot be refunded: the whole batch of
			// events is refused and nothing changes.
			_, err = svc.RecordEvents(t.Context(), acme, []domain.EventInput{
				{Code: ann, Type: "click", ID: "k1"}, refund("r3", "c3", 10)})
			wantReason(t, err, codes.FailedPrecondition, domain.ReasonCommissionPaid)
			if got := states(t, svc, "acme", domain.StatePaid, clock); got != "c1=paid:1000 c3=paid:1600" {
				t.Errorf("paid after a refused refund = %s", got)
			}

			// A commission refunded in full after its batch was made is
			// not paid with it: it stays refunded.
			record(t, svc, "acme", conv("c5", 40, 30*24*time.Hour))
			batch2, err := svc.CreatePayoutBatch(t.Context(), acme)
			if err != nil || batch2.Count != 1 || batch2.PayoutCents != 800 {
				t.Fatalf("batch 2 = %+v, %v", batch2, err)
			}
			record(t, svc, "acme", refund("r5", "c5", 40))
			paid2, changed, err := svc.MarkPayoutPaid(t.Context(), acme, batch2.ID)
			if err != nil || !changed || paid2.PaidCount != 0 || paid2.PaidCents != 0 {
				t.Fatalf("batch 2 paid = %+v, %v, %v", paid2, changed, err)
			}
			if got := states(t, svc, "acme", domain.StateRefunded, clock); got != "c2=refunded:0 c5=refunded:0" {
				t.Errorf("refunded = %s", got)
			}

			// Page tokens are bound to their state.
			p, err := svc.Commissions(t.Context(), acme, domain.CommissionQuery{Request: page.Request{PageSize: 1}})
			if err != nil || p.Next == "" {
				t.Fatalf("page = %+v, %v", p, err)
			}
			_, err = svc.Commissions(t.Context(), acme, domain.CommissionQuery{State: domain.StatePaid, Request: page.Request{PageToken: p.Next}})
			wantReason(t, err, codes.InvalidArgument, page.ReasonPageTokenInvalid)
		})
	}
}
