package store_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/finops/internal/domain"
	"github.com/echopilot/echopilot/services/finops/internal/store"
)

func heldIDs(t testing.TB, st *store.Store, customer, after string, limit int) []string {
	t.Helper()
	evs, err := st.HeldEvents(t.Context(), customer, after, limit)
	if err != nil {
		t.Fatalf("held events: %v", err)
	}
	var ids []string
	for _, e := range evs {
		if e.ReceivedAt.IsZero() || e.At.IsZero() || e.CustomerID == "" {
			t.Errorf("held event %+v lacks its times or customer", e)
		}
		ids = append(ids, e.EventID)
	}
	return ids
}

// An admin's assignment releases a customer's held events once; again
// to the same tenant it does nothing, to another it is refused.
func TestAssignCustomer(t *testing.T) {
	eachBackend(t, func(t *testing.T, f fixture) {
		f.wantOutcome(t, charge("evt_b", "charge.succeeded", "ch_1", "", "cus_h", 1000, 0, t0), domain.OutcomeHeld, "")
		f.wantOutcome(t, charge("evt_a", "charge.refunded", "ch_1", "", "cus_h", 1000, 250, t0), domain.OutcomeHeld, "")
		f.wantOutcome(t, charge("evt_c", "charge.succeeded", "ch_2", "", "cus_o", 700, 0, t0), domain.OutcomeHeld, "")

		if got := heldIDs(t, f.st, "", "", 10); !slices.Equal(got, []string{"evt_a", "evt_b", "evt_c"}) {
			t.Errorf("held = %v", got)
		}
		if got := heldIDs(t, f.st, "", "evt_a", 1); !slices.Equal(got, []string{"evt_b"}) {
			t.Errorf("held after evt_a, 1 = %v", got)
		}
		if got := heldIDs(t, f.st, "cus_h", "", 10); !slices.Equal(got, []string{"evt_a", "evt_b"}) {
			t.Errorf("cus_h's held = %v", got)
		}

		n, err := f.st.AssignCustomer(t.Context(), "cus_h", "acme")
		if err != nil || n != 2 {
			t.Fatalf("assign = %d, %v; want 2 released", n, err)
		}
		want := payment(750, 250, 1)
		if got := withoutAlloc(f.totals(t, scope("acme"), around)); got != want {
			t.Errorf("acme = %+v, want %+v", got, want)
		}
		if got := heldIDs(t, f.st, "", "", 10); !slices.Equal(got, []string{"evt_c"}) {
			t.Errorf("held after assigning cus_h = %v", got)
		}
		// Again: nothing more.
		if n, err := f.st.AssignCustomer(t.Context(), "cus_h", "acme"); err != nil || n != 0 {
			t.Errorf("assign again = %d, %v; want 0", n, err)
		}
		var ae *domain.AssignedError
		if _, err := f.st.AssignCustomer(t.Context(), "cus_h", "globex"); !errors.As(err, &ae) || ae.Tenant != "acme" {
			t.Errorf("assign to another tenant: %v", err)
		}
		if got := withoutAlloc(f.totals(t, scope("acme"), around)); got != want {
			t.Errorf("acme after repeats = %+v, want %+v", got, want)
		}
		if got := f.totals(t, scope("globex"), around); got != (domain.Totals{}) {
			t.Errorf("globex = %+v", got)
		}
		// The customer's later events go to its tenant; a replay stays a
		// duplicate.
		f.wantOutcome(t, charge("evt_d", "charge.succeeded", "ch_3", "", "cus_h", 100, 0, t0), domain.OutcomeApplied, "acme")
		f.wantOutcome(t, charge("evt_b", "charge.succeeded", "ch_1", "", "cus_h", 1000, 0, t0), domain.OutcomeDuplicate, "acme")
		// A customer without events may be assigned ahead of them.
		if n, err := f.st.AssignCustomer(t.Context(), "cus_new", "globex"); err != nil || n != 0 {
			t.Errorf("assign a new customer = %d, %v", n, err)
		}
		f.wantOutcome(t, charge("evt_e", "charge.succeeded", "ch_4", "", "cus_new", 5, 0, t0), domain.OutcomeApplied, "globex")
		f.checkConsistent(t, all, around)
	})
}

// Assignments racing each other, on two replicas, and a webhook naming the
// customer's tenant: the held events are applied exactly once.
func TestAssignCustomerConcurrent(t *testing.T) {
	eachBackend(t, func(t *testing.T, f fixture) {
		f.wantOutcome(t, charge("evt_1", "charge.succeeded", "ch_1", "", "cus_r", 1000, 0, t0), domain.OutcomeHeld, "")
		f.wantOutcome(t, charge("evt_2", "charge.succeeded", "ch_2", "", "cus_r", 2000, 0, t0), domain.OutcomeHeld, "")
		other := store.New(storetest.Open(t, f.appURL))
		released := make([]int64, 6)
		var fns []func() error
		for i := range released {
			st := f.st
			if i%2 == 1 {
				st = other
			}
			fns = append(fns, func() (err error) {
				released[i], err = st.AssignCustomer(t.Context(), "cus_r", "acme")
				return err
			})
		}
		fns = append(fns, func() error {
			_, err := other.ApplyPaymentEvent(t.Context(), charge("evt_3", "charge.succeeded", "ch_3", "acme", "cus_r", 5, 0, t0))
			return err
		})
		parallel(t, fns)
		var sum int64
		for _, n := range released {
			sum += n
		}
		if got := withoutAlloc(f.totals(t, scope("acme"), around)); got != payment(3005, 0, 3) || sum > 2 {
			t.Errorf("acme = %+v, released %v", got, released)
		}
		if got := heldIDs(t, f.st, "", "", 10); len(got) != 0 {
			t.Errorf("still held: %v", got)
		}
		f.checkConsistent(t, all, around)
	})
}
