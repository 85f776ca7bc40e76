package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/echopilot/echopilot/platform/outbox"
	"github.com/echopilot/echopilot/platform/store/storetest"
)

// A batch relay hands a whole claim to one publisher call and records each
// event's own outcome: delivered, retried or dead.
func TestBatchRelay(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			db := b.Open(t, outbox.Migrations)
			clk := newClock()
			rec := &recorder{fail: func(e outbox.Event, call int) error {
				switch {
				case e.Key == "bad":
					return fmt.Errorf("rejected: %w", outbox.ErrPermanent)
				case e.Key == "flaky" && call == 1:
					return errors.New("consumer busy")
				}
				return nil
			}}
			var calls []int
			pub := func(ctx context.Context, evs []outbox.Event) []error {
				calls = append(calls, len(evs))
				errs := make([]error, len(evs))
				for i, e := range evs {
					errs[i] = rec.publish(ctx, e)
				}
				return errs
			}
			reg := prometheus.NewRegistry()
			relay := outbox.NewBatchRelay(db, pub, zaptest.NewLogger(t), reg, outbox.Options{Now: clk.Now, Batch: 10})
			evs := mustAdd(t, db,
				eventAt("queue.job.completed", "a", "acme", clk.Now()),
				eventAt("queue.job.completed", "bad", "acme", clk.Now()),
				eventAt("queue.job.completed", "flaky", "globex", clk.Now()),
				eventAt("queue.job.completed", "b", "globex", clk.Now()))

			if n := mustRunOnce(t, relay); n != 2 || len(calls) != 1 || calls[0] != 4 {
				t.Fatalf("delivered %d in calls %v, want 2 in one call of 4", n, calls)
			}
			if r := readRow(t, db, evs[0].ID); !r.deliveredAt.Valid || r.attempts != 1 {
				t.Fatalf("delivered row = %+v", r)
			}
			if r := readRow(t, db, evs[1].ID); !r.deadAt.Valid || !strings.Contains(r.lastError, "rejected") {
				t.Fatalf("permanent failure row = %+v, want dead", r)
			}
			if r := readRow(t, db, evs[2].ID); r.deliveredAt.Valid || r.deadAt.Valid || !r.nextAttemptAt.After(clk.Now()) {
				t.Fatalf("failed row = %+v, want a later retry", r)
			}
			clk.Advance(time.Hour)
			if n := mustRunOnce(t, relay); n != 1 || len(calls) != 2 || calls[1] != 1 {
				t.Fatalf("retry delivered %d in calls %v, want the flaky event alone", n, calls)
			}
			if got := metric(t, reg, "echopilot_outbox_delivered_total", "queue.job.completed"); got != 3 {
				t.Errorf("delivered_total = %v, want 3", got)
			}
			if rec.distinct() != 3 {
				t.Errorf("consumer got %d distinct events, want 3", rec.distinct())
			}
		})
	}
}

// A publisher that panics or answers the wrong number of outcomes fails
// the whole batch, which is retried; nothing is marked delivered.
func TestBatchRelayBrokenPublisher(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			for name, pub := range map[string]outbox.BatchPublisher{
				"panic":        func(context.Context, []outbox.Event) []error { panic("boom") },
				"short answer": func(context.Context, []outbox.Event) []error { return nil },
			} {
				t.Run(name, func(t *testing.T) {
					db := b.Open(t, outbox.Migrations)
					clk := newClock()
					relay := outbox.NewBatchRelay(db, pub, zaptest.NewLogger(t), prometheus.NewRegistry(), outbox.Options{Now: clk.Now})
					evs := mustAdd(t, db, eventAt("t", "a", "acme", clk.Now()), eventAt("t", "b", "acme", clk.Now()))
					if n := mustRunOnce(t, relay); n != 0 {
						t.Fatalf("delivered %d, want 0", n)
					}
					for _, e := range evs {
						if r := readRow(t, db, e.ID); r.deliveredAt.Valid || r.attempts != 1 || r.lastError == "" {
							t.Fatalf("row = %+v, want a failed attempt", r)
						}
					}
				})
			}
		})
	}
}
