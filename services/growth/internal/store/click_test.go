package store_test

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"golang.org/x/sync/errgroup"

	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/growth/internal/domain"
	"github.com/echopilot/echopilot/services/growth/internal/store"
)

// key is a visitor key as the domain makes them: 64 hex digits.
func key(n int) string { return fmt.Sprintf("%064x", n) }

func (f fixture) linkClick(t testing.TB, tenant string, c domain.LinkClick, since time.Time) bool {
	t.Helper()
	counted, err := f.st.RecordLinkClick(t.Context(), tenant, c, since)
	if err != nil {
		t.Fatal(err)
	}
	return counted
}

// eventRows counts tenant's stored events of one id space.
func (f fixture) eventRows(t *testing.T, tenant, source string) int {
	t.Helper()
	var n int
	err := f.db.InTenantReadTx(t.Context(), tenant, func(tx *sql.Tx) error {
		return tx.QueryRowContext(t.Context(), f.db.Rebind("SELECT count(*) FROM referral_events WHERE tenant_id = ? AND source = ?"),
			tenant, source).Scan(&n)
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// The attack of issue 13: a link click carrying the id of a conversion the
// tenant records later. Link clicks live in their own id space, so the
// conversion is recorded and paid, and a tenant's event recorded first does
// not block a link click of the same id either. The schema itself refuses
// anything but clicks in the link space.
func TestLinkClickIDsApartFromTenantIDs(t *testing.T) {
	eachBackend(t, func(t *testing.T, f fixture) {
		c := f.create(t, "acme", "ann", "default")
		if !f.linkClick(t, "acme", domain.LinkClick{ID: "order-1001", Code: c, OccurredAt: t0, VisitorKeys: []string{key(1)}}, t0.Add(-time.Hour)) {
			t.Fatal("first click not counted")
		}
		out := f.record(t, "acme", conversion("order-1001", c, "cust", 10000))
		if out[0].Duplicate || out[0].Code != c {
			t.Fatalf("conversion after a click of its id = %+v, want recorded", out)
		}
		f.record(t, "acme", click("k-2", c))
		if !f.linkClick(t, "acme", domain.LinkClick{ID: "k-2", Code: c, OccurredAt: t0}, t0) {
			t.Fatal("link click with a tenant event's id not counted")
		}
		_, tot := f.totals(t, "acme")
		if want := (domain.Counts{Clicks: 3, Conversions: 1, RevenueCents: 10000, PayoutCents: 2000}); tot != want {
			t.Fatalf("totals = %+v, want %+v", tot, want)
		}
		if n, m := f.eventRows(t, "acme", "link"), f.eventRows(t, "acme", "tenant"); n != 2 || m != 2 {
			t.Fatalf("%d link and %d tenant events, want 2 and 2", n, m)
		}
		err := f.db.InTenantTx(t.Context(), "acme", func(tx *sql.Tx) error {
			_, err := tx.ExecContext(t.Context(), f.db.Rebind(`INSERT INTO referral_events (tenant_id, source, event_id, type,
				referral_code, customer_id, amount_cents, refund_of, occurred_at) VALUES ('acme', 'link', 'x', 'conversion', ?, '', 100, '', ?)`),
				c, t0)
			return err
		})
		if err == nil {
			t.Fatal("the schema took a conversion in the link id space")
		}
	})
}

// Repeats of one visitor key within the window count once; another key
// counts; once the window has passed the key counts again. The further
// keys of a click mark the click that counted, so a visitor seen first
// by its address and then by its new visitor id is one visitor.
func TestLinkClickDedup(t *testing.T) {
	eachBackend(t, func(t *testing.T, f fixture) {
		c := f.create(t, "acme", "ann", "default")
		window := 30 * time.Minute
		at := func(d time.Duration, id string, keys ...string) bool {
			now := t0.Add(d)
			return f.linkClick(t, "acme", domain.LinkClick{ID: id, Code: c, OccurredAt: now, VisitorKeys: keys}, now.Add(-window))
		}
		for _, step := range []struct {
			d    time.Duration
			keys []string
			want bool
		}{
			{0, []string{key(1), key(2)}, true},                // address A, new visitor id 2
			{time.Minute, []string{key(2)}, false},             // visitor 2 again
			{2 * time.Minute, []string{key(1), key(3)}, false}, // address A again, new visitor id 3
			{3 * time.Minute, []string{key(3)}, false},         // visitor 3: marked with the click that counted
			{4 * time.Minute, []string{key(4), key(5)}, true},  // another address
			{29 * time.Minute, []string{key(2)}, false},
			{30 * time.Minute, []string{key(2)}, true}, // the window has passed
			{31 * time.Minute, []string{key(3)}, true}, // marked at 0: passed too
			{32 * time.Minute, []string{key(2)}, false},
			{33 * time.Minute, nil, true}, // no keys: always counts
		} {
			if got := at(step.d, fmt.Sprint("click-", step.d), step.keys...); got != step.want {
				t.Fatalf("click at +%v with keys %v counted = %v, want %v", step.d, step.keys, got, step.want)
			}
		}
		_, tot := f.totals(t, "acme")
		if tot.Clicks != 5 || f.eventRows(t, "acme", "link") != 5 {
			t.Fatalf("clicks = %d, link events = %d, want 5", tot.Clicks, f.eventRows(t, "acme", "link"))
		}
	})
}

// Sixteen concurrent clicks of one visitor count once, on PostgreSQL too,
// where they really run at the same time.
func TestLinkClickDedupConcurrent(t *testing.T) {
	eachBackend(t, func(t *testing.T, f fixture) {
		c := f.create(t, "acme", "ann", "default")
		counted := make([]bool, 16)
		var g errgroup.Group
		for i := range counted {
			g.Go(func() (err error) {
				// Each click with a fresh visitor id of its own, as a
				// cookieless visitor's clicks have.
				counted[i], err = f.st.RecordLinkClick(t.Context(), "acme", domain.LinkClick{
					ID: fmt.Sprint("click-", i), Code: c, OccurredAt: t0, VisitorKeys: []string{key(1), key(100 + i)},
				}, t0.Add(-30*time.Minute))
				return err
			})
		}
		if err := g.Wait(); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, b := range counted {
			if b {
				n++
			}
		}
		_, tot := f.totals(t, "acme")
		if n != 1 || tot.Clicks != 1 || f.eventRows(t, "acme", "link") != 1 {
			t.Fatalf("%d of 16 concurrent clicks counted, %d in the totals, want 1", n, tot.Clicks)
		}
	})
}

// Marks older than the window are deleted; newer ones stay and still
// decide.
func TestPruneClickMarks(t *testing.T) {
	eachBackend(t, func(t *testing.T, f fixture) {
		c := f.create(t, "acme", "ann", "default")
		g := f.create(t, "globex", "gus", "default")
		f.linkClick(t, "acme", domain.LinkClick{ID: "a", Code: c, OccurredAt: t0, VisitorKeys: []string{key(1), key(2)}}, t0)
		f.linkClick(t, "globex", domain.LinkClick{ID: "b", Code: g, OccurredAt: t0, VisitorKeys: []string{key(3)}}, t0)
		f.linkClick(t, "acme", domain.LinkClick{ID: "c", Code: c, OccurredAt: t0.Add(time.Hour), VisitorKeys: []string{key(4)}}, t0)
		n, err := f.st.PruneClickMarks(t.Context(), t0.Add(time.Minute))
		if err != nil || n != 3 {
			t.Fatalf("pruned %d (%v), want the 3 marks of both tenants' clicks at t0", n, err)
		}
		var left int
		if err := f.db.QueryRowContext(t.Context(), "SELECT count(*) FROM click_dedup").Scan(&left); err != nil || left != 1 {
			t.Fatalf("%d marks left (%v), want 1", left, err)
		}
		now := t0.Add(time.Hour + time.Minute)
		if f.linkClick(t, "acme", domain.LinkClick{ID: "d", Code: c, OccurredAt: now, VisitorKeys: []string{key(4)}}, now.Add(-30*time.Minute)) {
			t.Fatal("a repeat counted after the prune")
		}
	})
}

// A tenant's campaigns are capped: a new one beyond the limit is refused,
// changing an existing one is not; concurrent creates never overshoot; the
// cap is per tenant.
func TestCampaignLimit(t *testing.T) {
	eachBackend(t, func(t *testing.T, f fixture) {
		const limit = 5
		put := func(tenant, name string) error {
			return f.st.PutCampaign(t.Context(), tenant, domain.Campaign{Name: name, UpdatedAt: t0}, limit)
		}
		errs := make([]error, 16)
		var g errgroup.Group
		for i := range errs {
			g.Go(func() error { errs[i] = put("acme", fmt.Sprintf("c%02d", i)); return nil })
		}
		_ = g.Wait()
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, domain.ErrCampaignLimit):
				t.Fatalf("put = %v", err)
			}
		}
		all, err := f.st.Campaigns(t.Context(), "acme", "", 100)
		if err != nil || ok != limit || len(all) != limit {
			t.Fatalf("%d concurrent puts succeeded, %d campaigns stored (%v), want %d", ok, len(all), err, limit)
		}
		if err := put("acme", all[0].Name); err != nil {
			t.Fatalf("changing an existing campaign at the limit: %v", err)
		}
		if err := put("acme", "another"); !errors.Is(err, domain.ErrCampaignLimit) {
			t.Fatalf("a new campaign at the limit: %v", err)
		}
		if err := put("globex", "another"); err != nil {
			t.Fatalf("another tenant's first campaign: %v", err)
		}
		// Pages by name.
		first, err := f.st.Campaigns(t.Context(), "acme", "", 2)
		if err != nil || len(first) != 2 {
			t.Fatal(first, err)
		}
		rest, err := f.st.Campaigns(t.Context(), "acme", first[1].Name, 10)
		if err != nil || len(rest) != 3 || rest[0].Name <= first[1].Name {
			t.Fatalf("second page %v (%v)", rest, err)
		}
	})
}

// One key per name per deployment: every caller gets the same, on every
// connection.
func TestDeploymentKey(t *testing.T) {
	eachBackend(t, func(t *testing.T, f fixture) {
		k1, err := f.st.DeploymentKey(t.Context(), "test")
		if err != nil || len(k1) != 32 {
			t.Fatalf("key %x (%v)", k1, err)
		}
		k2, err := f.st.DeploymentKey(t.Context(), "test")
		if err != nil || !bytes.Equal(k1, k2) {
			t.Fatalf("second call gave %x (%v), want %x", k2, err, k1)
		}
		if other, err := f.st.DeploymentKey(t.Context(), "other"); err != nil || bytes.Equal(other, k1) {
			t.Fatalf("another name gave %x (%v)", other, err)
		}
	})
}

// A database that recorded a visitor's click under a conversion's id
// before the fix: the migration moves clicks to the link id space, so the
// tenant's conversion of that id is then recorded and paid.
func TestMigrationFreesPreclaimedIDs(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			migrateURL, appURL := b.NewDB(t)
			owner := storetest.Open(t, migrateURL)
			if err := owner.Migrate(t.Context(), firstMigration(t)); err != nil {
				t.Fatal(err)
			}
			// As the service did: a code, a conversion, and a link click
			// whose id the visitor chose.
			for _, q := range []string{
				"INSERT INTO referral_codes (code, tenant_id) VALUES ('ABCD2345', 'acme')",
				"INSERT INTO referrals (tenant_id, referral_code, referrer_id, campaign, created_at) VALUES ('acme', 'ABCD2345', 'ann', 'default', ?)",
				`INSERT INTO referral_events (tenant_id, event_id, type, referral_code, customer_id, amount_cents, refund_of, occurred_at)
					VALUES ('acme', 'order-1001', 'click', 'ABCD2345', '', 0, '', ?)`,
				`INSERT INTO referral_events (tenant_id, event_id, type, referral_code, customer_id, amount_cents, refund_of, occurred_at)
					VALUES ('acme', 'order-1000', 'conversion', 'ABCD2345', 'cust', 5000, '', ?)`,
			} {
				var args []any
				if strings.Contains(q, "?") {
					args = append(args, t0)
				}
				if _, err := owner.ExecContext(t.Context(), owner.Rebind(q), args...); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			if err := owner.Migrate(t.Context(), store.Migrations); err != nil {
				t.Fatal(err)
			}
			db := storetest.Open(t, appURL)
			f := fixture{st: store.New(db), db: db}
			out := f.record(t, "acme", conversion("order-1001", "ABCD2345", "cust", 10000))
			if out[0].Duplicate {
				t.Fatalf("the pre-claimed conversion id is still taken: %+v", out)
			}
			// Tenant events stay in the tenant's space: a replay is one.
			_, err := f.st.RecordEvents(t.Context(), "acme", []domain.Event{conversion("order-1000", "ABCD2345", "cust", 9999)}, domain.Terms{DefaultBPS: 2000})
			if !errors.Is(err, domain.ErrEventIDReused) {
				t.Fatalf("reusing an old conversion's id = %v, want ErrEventIDReused", err)
			}
			if n, m := f.eventRows(t, "acme", "link"), f.eventRows(t, "acme", "tenant"); n != 1 || m != 2 {
				t.Fatalf("%d link and %d tenant events after the migration, want 1 and 2", n, m)
			}
		})
	}
}

// firstMigration is the schema before the id spaces: version 1 alone.
func firstMigration(t *testing.T) pstore.Migrations {
	t.Helper()
	only := func(fsys fs.FS) fs.FS {
		data, err := fs.ReadFile(fsys, "00001_growth.sql")
		if err != nil {
			t.Fatal(err)
		}
		return fstest.MapFS{"00001_growth.sql": {Data: data}}
	}
	m := store.Migrations
	m.SQLite, m.Postgres = only(m.SQLite), only(m.Postgres)
	return m
}
