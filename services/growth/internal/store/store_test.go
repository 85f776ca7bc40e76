package store_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/echopilot/echopilot/services/growth/internal/code"
	"github.com/echopilot/echopilot/services/growth/internal/domain"
)

// Sixteen concurrent creates of one referrer and campaign make one code:
// the others get it back as existing, and release the codes they claimed.
func TestCreateReferralConcurrent(t *testing.T) {
	eachBackend(t, func(t *testing.T, f fixture) {
		codes := make([]string, 16)
		created := make([]bool, 16)
		var g errgroup.Group
		for i := range codes {
			g.Go(func() (err error) {
				r, isNew, err := f.st.CreateReferral(t.Context(), "acme",
					domain.Referral{ReferrerID: "user123", Campaign: "spring2025", CreatedAt: t0}, code.New)
				codes[i], created[i] = r.Code, isNew
				return err
			})
		}
		if err := g.Wait(); err != nil {
			t.Fatal(err)
		}
		if len(slices.Compact(slices.Sorted(slices.Values(codes)))) != 1 {
			t.Fatalf("concurrent creates gave codes %v", codes)
		}
		if n := len(slices.DeleteFunc(created, func(b bool) bool { return !b })); n != 1 {
			t.Fatalf("%d creates reported a new referral, want 1", n)
		}
		var registered int
		// The registry has no row-level security: the app role counts it all.
		if err := f.db.QueryRowContext(t.Context(), "SELECT count(*) FROM referral_codes").Scan(&registered); err != nil || registered != 1 {
			t.Fatalf("registry holds %d codes (%v), want 1", registered, err)
		}
	})
}

// A drawn code that is taken (by any tenant) is drawn again; a generator
// that only draws taken codes fails after a bounded number of tries.
func TestCreateReferralRetriesTakenCodes(t *testing.T) {
	eachBackend(t, func(t *testing.T, f fixture) {
		taken := f.create(t, "globex", "someone", "default")
		draws := []string{taken, taken, "ABCDEFGH"}
		gen := func() (string, error) { c := draws[0]; draws = draws[1:]; return c, nil }
		r, isNew, err := f.st.CreateReferral(t.Context(), "acme", domain.Referral{ReferrerID: "u", Campaign: "default", CreatedAt: t0}, gen)
		if err != nil || !isNew || r.Code != "ABCDEFGH" {
			t.Fatalf("create = %v %v %v, want the third draw", r, isNew, err)
		}
		always := func() (string, error) { return taken, nil }
		_, _, err = f.st.CreateReferral(t.Context(), "acme", domain.Referral{ReferrerID: "v", Campaign: "default", CreatedAt: t0}, always)
		if !errors.Is(err, code.ErrExhausted) {
			t.Fatalf("create with only taken codes = %v, want ErrExhausted", err)
		}
	})
}

// FindCodes sees only the tenant's codes; FindCodeOwners every tenant's.
func TestFindCodes(t *testing.T) {
	eachBackend(t, func(t *testing.T, f fixture) {
		a := f.create(t, "acme", "ann", "default")
		g := f.create(t, "globex", "gus", "default")
		got, err := f.st.FindCodes(t.Context(), "acme", []string{a, g})
		if err != nil || !slices.Equal(got, []string{a}) {
			t.Fatalf("acme finds %v (%v), want only %s", got, err, a)
		}
		owners, err := f.st.FindCodeOwners(t.Context(), []string{g, a, "ZZZZZZZZ"})
		want := []domain.CodeOwner{{Code: a, Tenant: "acme"}, {Code: g, Tenant: "globex"}}
		slices.SortFunc(want, func(x, y domain.CodeOwner) int { return strings.Compare(x.Code, y.Code) })
		if err != nil || !slices.Equal(owners, want) {
			t.Fatalf("owners = %v (%v), want %v", owners, err, want)
		}
	})
}

// A replayed event changes nothing; an id reused for another event fails
// its whole batch, which then changes nothing either.
func TestRecordEventsReplays(t *testing.T) {
	eachBackend(t, func(t *testing.T, f fixture) {
		c := f.create(t, "acme", "ann", "default")
		out := f.record(t, "acme", click("e1", c), conversion("e2", c, "cust", 10000), click("e1", c))
		if out[0].Duplicate || out[1].Duplicate || !out[2].Duplicate || out[2].Code != c {
			t.Fatalf("outcomes = %+v", out)
		}
		if out := f.record(t, "acme", conversion("e2", c, "cust", 10000)); !out[0].Duplicate {
			t.Fatalf("replayed conversion: %+v", out)
		}
		_, err := f.st.RecordEvents(t.Context(), "acme", []domain.Event{click("e3", c), conversion("e2", c, "cust", 20000)}, domain.Terms{DefaultBPS: 2000})
		if !errors.Is(err, domain.ErrEventIDReused) {
			t.Fatalf("reused id = %v, want ErrEventIDReused", err)
		}
		_, tot := f.totals(t, "acme")
		if want := (domain.Counts{Clicks: 1, Conversions: 1, RevenueCents: 10000, PayoutCents: 2000}); tot != want {
			t.Fatalf("totals = %+v, want %+v", tot, want)
		}
	})
}

// Conversions and their refunds recorded concurrently, refunds racing
// ahead of their conversions: every refund is applied exactly once.
func TestConcurrentConversionsAndRefunds(t *testing.T) {
	eachBackend(t, func(t *testing.T, f fixture) {
		c := f.create(t, "acme", "ann", "default")
		const n = 40
		var g errgroup.Group
		g.SetLimit(8)
		for i := range n {
			conv := fmt.Sprintf("conv-%d", i)
			g.Go(func() error {
				_, err := f.st.RecordEvents(t.Context(), "acme", []domain.Event{refund("r1-"+conv, conv, 1000)}, domain.Terms{DefaultBPS: 2000})
				return err
			})
			g.Go(func() error {
				_, err := f.st.RecordEvents(t.Context(), "acme", []domain.Event{conversion(conv, c, "cust", 10000)}, domain.Terms{DefaultBPS: 2000})
				return err
			})
			g.Go(func() error {
				_, err := f.st.RecordEvents(t.Context(), "acme", []domain.Event{refund("r2-"+conv, conv, 2000), click("k-"+conv, c)}, domain.Terms{DefaultBPS: 2000})
				return err
			})
		}
		if err := g.Wait(); err != nil {
			t.Fatal(err)
		}
		_, tot := f.totals(t, "acme")
		want := domain.Counts{Clicks: n, Conversions: n, RevenueCents: n * 7000, RefundedCents: n * 3000, PayoutCents: n * 1400}
		if tot != want {
			t.Fatalf("totals = %+v, want %+v", tot, want)
		}
	})
}
