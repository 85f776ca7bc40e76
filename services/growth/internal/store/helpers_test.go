package store_test

import (
	"testing"
	"time"

	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/growth/internal/code"
	"github.com/echopilot/echopilot/services/growth/internal/domain"
	"github.com/echopilot/echopilot/services/growth/internal/store"
)

// fixture is a migrated database of one backend, used as the service uses
// it (the app role on PostgreSQL).
type fixture struct {
	st *store.Store
	db *pstore.DB
}

func newFixture(t testing.TB, b storetest.Backend) fixture {
	t.Helper()
	db := b.Open(t, store.Migrations)
	return fixture{st: store.New(db), db: db}
}

// eachBackend runs fn as one subtest per backend, each on a fresh database.
func eachBackend(t *testing.T, fn func(t *testing.T, f fixture)) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) { fn(t, newFixture(t, b)) })
	}
}

// t0 is the tests' clock origin, noon UTC; day0 its day.
var (
	t0   = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	day0 = domain.DayOf(t0)
	week = domain.Days{From: day0 - 6, To: day0}
)

// create makes tenant's referral of referrer in campaign and returns its code.
func (f fixture) create(t testing.TB, tenant, referrer, campaign string) string {
	t.Helper()
	r, _, err := f.st.CreateReferral(t.Context(), tenant,
		domain.Referral{ReferrerID: referrer, Campaign: campaign, CreatedAt: t0}, code.New)
	if err != nil {
		t.Fatal(err)
	}
	return r.Code
}

func (f fixture) record(t testing.TB, tenant string, evs ...domain.Event) []domain.EventOutcome {
	t.Helper()
	out, err := f.st.RecordEvents(t.Context(), tenant, evs, domain.Terms{DefaultBPS: 2000})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (f fixture) totals(t testing.TB, tenant string) (int64, domain.Counts) {
	t.Helper()
	n, c, err := f.st.Totals(t.Context(), tenant, domain.Filter{}, week)
	if err != nil {
		t.Fatal(err)
	}
	return n, c
}

func conversion(id, c, customer string, cents int64) domain.Event {
	return domain.Event{ID: id, Type: domain.EventConversion, Code: c, CustomerID: customer, AmountCents: cents, OccurredAt: t0}
}

func refund(id, of string, cents int64) domain.Event {
	return domain.Event{ID: id, Type: domain.EventRefund, RefundOf: of, AmountCents: cents, OccurredAt: t0}
}

func click(id, c string) domain.Event {
	return domain.Event{ID: id, Type: domain.EventClick, Code: c, OccurredAt: t0}
}
