package store_test

import (
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/echopilot/echopilot/services/growth/internal/domain"
)

// Concurrent payout batches never share a commission, concurrent payments
// of one batch mark it once, and refunds racing a payment leave each
// commission either paid or refunded, never both, with no deadlock, on
// both databases.
func TestPayoutBatchesConcurrent(t *testing.T) {
	eachBackend(t, func(t *testing.T, f fixture) {
		const n = 60
		c := f.create(t, "acme", "ann", "default")
		var evs []domain.Event
		for i := range n {
			evs = append(evs, conversion(fmt.Sprintf("c%02d", i), c, "cust", 1000))
		}
		f.record(t, "acme", evs...)
		after := t0.Add(time.Hour) // no hold in f.record's terms: all approved

		// Batches made at once take every commission exactly once.
		batches := make([]domain.Batch, 4)
		var g errgroup.Group
		for i := range batches {
			g.Go(func() (err error) {
				batches[i], err = f.st.CreateBatch(t.Context(), "acme", fmt.Sprint("b", i), domain.Clock{Now: after})
				return err
			})
		}
		if err := g.Wait(); err != nil {
			t.Fatal(err)
		}
		var count, cents int64
		var made []string
		for _, b := range batches {
			count, cents = count+b.Count, cents+b.PayoutCents
			if b.Count > 0 {
				made = append(made, b.ID)
			}
		}
		if count != n || cents != n*200 {
			t.Fatalf("batches hold %d commissions worth %d, want %d worth %d: %+v", count, cents, n, n*200, batches)
		}

		// Each batch paid by three callers at once while every third
		// commission is refunded in full.
		changed := make(chan string, 3*len(made))
		for _, id := range made {
			for range 3 {
				g.Go(func() error {
					_, ch, err := f.st.MarkBatchPaid(t.Context(), "acme", id, after.Add(time.Minute))
					if ch {
						changed <- id
					}
					return err
				})
			}
		}
		refused := make(chan error, n)
		for i := 0; i < n; i += 3 {
			g.Go(func() error {
				_, err := f.st.RecordEvents(t.Context(), "acme", []domain.Event{refund(fmt.Sprintf("r%02d", i), fmt.Sprintf("c%02d", i), 0)}, domain.Terms{DefaultBPS: 2000})
				if errors.Is(err, domain.ErrCommissionPaid) {
					refused <- err
					return nil
				}
				return err
			})
		}
		if err := g.Wait(); err != nil {
			t.Fatal(err)
		}
		close(changed)
		close(refused)
		seen := map[string]int{}
		for id := range changed {
			seen[id]++
		}
		for _, id := range made {
			if seen[id] != 1 {
				t.Errorf("batch %s marked paid %d times, want once", id, seen[id])
			}
		}
		rows, err := f.st.Commissions(t.Context(), "acme", domain.CommissionFilter{Clock: domain.Clock{Now: after.Add(time.Hour)}}, "", 2*n)
		if err != nil {
			t.Fatal(err)
		}
		var paid, refunded int
		for _, r := range rows {
			switch {
			case r.State.Paid && r.State.Refunded():
				t.Errorf("%s is paid and refunded", r.ID)
			case r.StateName == domain.StatePaid:
				paid++
			case r.StateName == domain.StateRefunded:
				refunded++
			default:
				t.Errorf("%s is %s after its batch was paid", r.ID, r.StateName)
			}
		}
		if paid+refunded != n || refunded+len(refused) != (n+2)/3 {
			t.Errorf("%d paid, %d refunded, %d refunds refused; want %d in all and %d refunds", paid, refunded, len(refused), n, (n+2)/3)
		}
	})
}

// A conversion recorded without an end of hold (by a binary before
// commission states, during a rolling upgrade) is held from its day's
// start for the service's hold, then approved and paid like any other.
func TestCommissionWithoutRecordedHold(t *testing.T) {
	eachBackend(t, func(t *testing.T, f fixture) {
		c := f.create(t, "acme", "ann", "default")
		f.record(t, "acme", conversion("old", c, "cust", 1000))
		err := f.db.InWriteTx(t.Context(), func(tx *sql.Tx) error {
			if err := f.db.SetTenant(t.Context(), tx, "acme"); err != nil {
				return err
			}
			_, err := tx.ExecContext(t.Context(), f.db.Rebind("UPDATE conversions SET occurred_at = NULL, hold_until = NULL WHERE tenant_id = ?"), "acme")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		hold := 14 * 24 * time.Hour
		start := time.Unix(day0*86400, 0).UTC()
		for _, tc := range []struct {
			at   time.Time
			want string
		}{
			{t0, domain.StatePending},
			{start.Add(hold - time.Microsecond), domain.StatePending},
			{start.Add(hold), domain.StateApproved},
		} {
			clock := domain.Clock{Now: tc.at, Hold: hold}
			rows, err := f.st.Commissions(t.Context(), "acme", domain.CommissionFilter{Clock: clock}, "", 10)
			if err != nil || len(rows) != 1 || rows[0].StateName != tc.want || rows[0].State.StateAt(clock) != tc.want ||
				!rows[0].State.HoldUntil.IsZero() {
				t.Fatalf("at %v: %+v, %v; want %s", tc.at, rows, err, tc.want)
			}
		}
		if b, err := f.st.CreateBatch(t.Context(), "acme", "early", domain.Clock{Now: t0, Hold: hold}); err != nil || b.Count != 0 {
			t.Fatalf("batch while held = %+v, %v", b, err)
		}
		if b, err := f.st.CreateBatch(t.Context(), "acme", "b", domain.Clock{Now: start.Add(hold), Hold: hold}); err != nil || b.Count != 1 || b.PayoutCents != 200 {
			t.Fatalf("batch after the hold = %+v, %v", b, err)
		}
	})
}
