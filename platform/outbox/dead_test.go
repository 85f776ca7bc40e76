package outbox_test

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	outboxv1 "github.com/echopilot/echopilot/gen/go/echopilot/outbox/v1"
	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/outbox"
	"github.com/echopilot/echopilot/platform/page"
	"github.com/echopilot/echopilot/platform/store/storetest"
)

// Dead letters are listed newest dead first, a page at a time, and put
// back for the relay by id or all at once (of a topic, a tenant, a key);
// delivered, pending and unknown events are left alone.
func TestDeadLetters(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := t.Context()
			db := b.Open(t, outbox.Migrations)
			clk := newClock()
			var healed atomic.Bool
			rec := &recorder{fail: func(e outbox.Event, _ int) error {
				switch {
				case healed.Load():
					return nil
				case strings.HasPrefix(e.Key, "bad"):
					return fmt.Errorf("consumer refused %s: %w", e.Key, outbox.ErrPermanent)
				case e.Key == "flaky":
					return fmt.Errorf("consumer busy")
				}
				return nil
			}}
			relay, _ := newRelay(t, db, rec.publish, outbox.Options{Now: clk.Now})
			// Three dead letters, each dead a minute after the one before.
			bad1 := mustAdd(t, db, eventAt("a", "bad1", "acme", clk.Now()))[0]
			mustRunOnce(t, relay)
			clk.Advance(time.Minute)
			bad2 := mustAdd(t, db, eventAt("b", "bad2", "globex", clk.Now()))[0]
			mustRunOnce(t, relay)
			clk.Advance(time.Minute)
			evs := mustAdd(t, db, eventAt("a", "bad3", "acme", clk.Now()), eventAt("a", "good", "acme", clk.Now()),
				eventAt("a", "flaky", "acme", clk.Now()))
			if n := mustRunOnce(t, relay); n != 1 {
				t.Fatalf("delivered %d, want the good one", n)
			}
			bad3, good, flaky := evs[0], evs[1], evs[2]

			ids := func(evs []outbox.DeadEvent) []string {
				out := make([]string, len(evs))
				for i, e := range evs {
					out[i] = e.ID
				}
				return out
			}
			first, next, err := outbox.ListDead(ctx, db, outbox.DeadRequest{Request: page.Request{PageSize: 2}})
			if err != nil || !slices.Equal(ids(first), []string{bad3.ID, bad2.ID}) || next == "" {
				t.Fatalf("first page = %v, %q, %v; want bad3, bad2 and a token", ids(first), next, err)
			}
			e := first[1]
			if e.Topic != "b" || e.Key != "bad2" || e.TenantID != "globex" || e.Attempts != 1 ||
				!e.CreatedAt.Equal(bad2.CreatedAt) || !e.DeadAt.Equal(bad2.CreatedAt) || !strings.Contains(e.LastError, "consumer refused bad2") {
				t.Errorf("dead event = %+v", e)
			}
			rest, next, err := outbox.ListDead(ctx, db, outbox.DeadRequest{Request: page.Request{PageSize: 2, PageToken: next}})
			if err != nil || !slices.Equal(ids(rest), []string{bad1.ID}) || next != "" {
				t.Fatalf("second page = %v, %q, %v; want bad1 alone, last", ids(rest), next, err)
			}
			ofA, _, err := outbox.ListDead(ctx, db, outbox.DeadRequest{Topic: "a"})
			if err != nil || !slices.Equal(ids(ofA), []string{bad3.ID, bad1.ID}) {
				t.Fatalf("topic a = %v, %v", ids(ofA), err)
			}
			_, tok, _ := outbox.ListDead(ctx, db, outbox.DeadRequest{Topic: "a", Request: page.Request{PageSize: 1}})
			for _, bad := range []outbox.DeadRequest{
				{Request: page.Request{PageToken: tok}}, // another query's token
				{Request: page.Request{PageToken: page.Encode("garbage", "outbox.dead|")}},
				{Request: page.Request{PageSize: -1}},
			} {
				if _, _, err := outbox.ListDead(ctx, db, bad); status.Code(err) != codes.InvalidArgument {
					t.Errorf("ListDead(%+v) = %v, want InvalidArgument", bad, err)
				}
			}

			// Refused requests change nothing.
			for _, bad := range []outbox.RequeueRequest{{}, {All: true, IDs: []string{bad1.ID}}, {IDs: make([]string, outbox.MaxRequeueIDs+1)}} {
				if _, err := outbox.Requeue(ctx, db, bad, clk.Now()); apierr.Reason(err) != outbox.ReasonRequeueInvalid {
					t.Errorf("Requeue(%d ids, all %v) = %v, want %s", len(bad.IDs), bad.All, err, outbox.ReasonRequeueInvalid)
				}
			}
			// Delivered, pending (failed, to be retried) and unknown ids,
			// and another tenant's scope, are not requeued.
			for _, req := range []outbox.RequeueRequest{
				{IDs: []string{good.ID, flaky.ID, "no-such-event"}},
				{IDs: []string{bad1.ID}, TenantID: "globex"},
				{IDs: []string{bad1.ID}, Topic: "b"},
				{IDs: []string{bad1.ID}, Key: "bad3"},
			} {
				if n, err := outbox.Requeue(ctx, db, req, clk.Now()); n != 0 || err != nil {
					t.Errorf("Requeue(%+v) = %d, %v; want 0", req, n, err)
				}
			}
			if r := readRow(t, db, good.ID); !r.deliveredAt.Valid || r.attempts != 1 {
				t.Errorf("delivered row touched: %+v", r)
			}

			clk.Advance(time.Minute)
			if n, err := outbox.Requeue(ctx, db, outbox.RequeueRequest{IDs: []string{bad1.ID}, TenantID: "acme"}, clk.Now()); n != 1 || err != nil {
				t.Fatalf("requeue one = %d, %v; want 1", n, err)
			}
			r := readRow(t, db, bad1.ID)
			if r.deadAt.Valid || r.attempts != 0 || r.lastError != "" || !r.nextAttemptAt.Equal(clk.Now()) {
				t.Fatalf("requeued row = %+v, want pending now with no attempts", r)
			}
			healed.Store(true)
			if n := mustRunOnce(t, relay); n != 2 || rec.callsOf(bad1.ID) != 2 { // bad1, and flaky's retry
				t.Fatalf("after the requeue: delivered %d, bad1 published %d times", n, rec.callsOf(bad1.ID))
			}
			if r := readRow(t, db, bad1.ID); !r.deliveredAt.Valid || r.attempts != 1 {
				t.Errorf("redelivered row = %+v", r)
			}

			if n, err := outbox.Requeue(ctx, db, outbox.RequeueRequest{All: true, Topic: "b"}, clk.Now()); n != 1 || err != nil {
				t.Fatalf("requeue all of topic b = %d, %v; want 1", n, err)
			}
			if n, err := outbox.Requeue(ctx, db, outbox.RequeueRequest{All: true}, clk.Now()); n != 1 || err != nil {
				t.Fatalf("requeue all = %d, %v; want bad3 alone", n, err)
			}
			if dead, _, err := outbox.ListDead(ctx, db, outbox.DeadRequest{}); len(dead) != 0 || err != nil {
				t.Fatalf("dead after requeueing all = %v, %v", ids(dead), err)
			}
			if n := mustRunOnce(t, relay); n != 2 {
				t.Fatalf("delivered %d after requeueing all, want 2", n)
			}
		})
	}
}

// Pending also takes an event waiting for a retry: its next attempt is now.
func TestRequeuePending(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			db := b.Open(t, outbox.Migrations)
			clk := newClock()
			rec := &recorder{fail: func(outbox.Event, int) error { return fmt.Errorf("consumer busy") }}
			relay, _ := newRelay(t, db, rec.publish, outbox.Options{Now: clk.Now})
			ev := mustAdd(t, db, eventAt("a", "flaky", "acme", clk.Now()))[0]
			mustRunOnce(t, relay)
			if r := readRow(t, db, ev.ID); !r.nextAttemptAt.After(clk.Now()) || r.attempts != 1 {
				t.Fatalf("row = %+v, want a later retry", r)
			}
			req := outbox.RequeueRequest{IDs: []string{ev.ID}, TenantID: "acme"}
			if n, err := outbox.Requeue(t.Context(), db, req, clk.Now()); n != 0 || err != nil {
				t.Fatalf("requeue of a pending event without Pending = %d, %v", n, err)
			}
			req.Pending = true
			if n, err := outbox.Requeue(t.Context(), db, req, clk.Now()); n != 1 || err != nil {
				t.Fatalf("requeue of a pending event = %d, %v", n, err)
			}
			if r := readRow(t, db, ev.ID); !r.nextAttemptAt.Equal(clk.Now()) || r.attempts != 0 || r.lastError != "" {
				t.Fatalf("row = %+v, want due now", r)
			}
		})
	}
}

// The RPCs every service declares: a page of dead events, and a requeue
// that kicks the relay and answers NOT_FOUND for ids none of which is dead.
func TestAdminServer(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := t.Context()
			db := b.Open(t, outbox.Migrations)
			clk := newClock()
			rec := &recorder{fail: func(e outbox.Event, _ int) error {
				if e.Key == "bad" {
					return fmt.Errorf("no: %w", outbox.ErrPermanent)
				}
				return nil
			}}
			relay, _ := newRelay(t, db, rec.publish, outbox.Options{Now: clk.Now})
			evs := mustAdd(t, db, eventAt("t", "bad", "acme", clk.Now()), eventAt("t", "good", "acme", clk.Now()))
			mustRunOnce(t, relay)
			kicks := 0
			srv := &outbox.AdminServer{DB: db, Kick: func() { kicks++ }, Now: clk.Now}
			list, err := srv.ListDeadEvents(ctx, &outboxv1.ListDeadEventsRequest{})
			if err != nil || len(list.GetEvents()) != 1 || list.GetEvents()[0].GetId() != evs[0].ID ||
				list.GetEvents()[0].GetDeadTime().AsTime() != clk.Now() || list.GetEvents()[0].GetAttempts() != 1 {
				t.Fatalf("ListDeadEvents = %v, %v", list, err)
			}
			// The backlog: one dead, none waiting; then one waiting since an
			// hour ago (the lag), of topic t only.
			if list.GetDeadCount() != 1 || list.GetPendingCount() != 0 || list.GetOldestPendingTime() != nil {
				t.Fatalf("backlog = %d dead, %d pending since %v; want 1, 0, none", list.GetDeadCount(),
					list.GetPendingCount(), list.GetOldestPendingTime())
			}
			waiting := clk.Now().Add(-time.Hour)
			mustAdd(t, db, eventAt("t", "later", "acme", waiting), eventAt("u", "other", "acme", clk.Now()))
			list, err = srv.ListDeadEvents(ctx, &outboxv1.ListDeadEventsRequest{Topic: "t"})
			if err != nil || list.GetPendingCount() != 1 || !list.GetOldestPendingTime().AsTime().Equal(waiting) || list.GetDeadCount() != 1 {
				t.Fatalf("backlog of t = %v, %v; want 1 waiting since %v", list, err, waiting)
			}
			mustRunOnce(t, relay)
			_, err = srv.RequeueDeadEvents(ctx, &outboxv1.RequeueDeadEventsRequest{Ids: []string{evs[1].ID, "unknown"}})
			if status.Code(err) != codes.NotFound || apierr.Reason(err) != outbox.ReasonEventNotFound || kicks != 0 {
				t.Fatalf("requeue of a delivered and an unknown id = %v (kicks %d), want NotFound", err, kicks)
			}
			_, err = srv.RequeueDeadEvents(ctx, &outboxv1.RequeueDeadEventsRequest{})
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("requeue of nothing = %v, want InvalidArgument", err)
			}
			res, err := srv.RequeueDeadEvents(ctx, &outboxv1.RequeueDeadEventsRequest{All: true, Topic: "t"})
			if err != nil || res.GetRequeued() != 1 || kicks != 1 {
				t.Fatalf("requeue all = %v, %v (kicks %d)", res, err, kicks)
			}
			res, err = srv.RequeueDeadEvents(ctx, &outboxv1.RequeueDeadEventsRequest{All: true})
			if err != nil || res.GetRequeued() != 0 || kicks != 1 {
				t.Fatalf("requeue all again = %v, %v (kicks %d); want 0 and no kick", res, err, kicks)
			}
		})
	}
}
