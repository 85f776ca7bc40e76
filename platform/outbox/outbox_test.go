package outbox_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/echopilot/echopilot/platform/outbox"
	"github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/platform/store/storetest"
)

// TestOutbox runs every case on every backend, each on a fresh database
// migrated by its owner and used as the service's role.
func TestOutbox(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T, b storetest.Backend)
	}{
		{"own version table", testOwnVersionTable},
		{"add validates", testAddValidates},
		{"rollback leaves nothing, commit delivers once", testAddInTransaction},
		{"add many in chunks, each delivered once", testAddMany},
		{"retries with growing delays", testRetryBackoff},
		{"dead after max attempts", testDeadAfterMaxAttempts},
		{"permanent error is dead at once", testPermanent},
		{"deferred is not an attempt", testDeferred},
		{"topics filter", testTopics},
		{"kick wakes the relay", testKick},
		{"two relays race", testTwoRelays},
		{"crashed claim is delivered after the lease", testCrashedClaim},
		{"lease bounds a batch", testLeaseBoundsBatch},
		{"retention", testRetention},
		{"claim uses the due index", testClaimUsesIndex},
		{"an idle pass takes no write lock", testIdleTakesNoWriteLock},
	}
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) { c.run(t, b) })
			}
		})
	}
}

// The outbox migrates next to a service's own migrations, each set with its
// version table, and migrating again changes nothing.
func testOwnVersionTable(t *testing.T, b storetest.Backend) {
	migrateURL, _ := b.NewDB(t)
	owner := storetest.Open(t, migrateURL)
	service := store.Migrations{
		SQLite:   fstest.MapFS{"00001_jobs.sql": {Data: []byte("-- +goose Up\nCREATE TABLE jobs (id TEXT PRIMARY KEY);\n")}},
		Postgres: fstest.MapFS{"00001_jobs.sql": {Data: []byte("-- +goose Up\nCREATE TABLE jobs (id text PRIMARY KEY);\n")}},
	}
	for range 2 {
		for _, m := range []store.Migrations{service, outbox.Migrations} {
			if err := owner.Migrate(t.Context(), m); err != nil {
				t.Fatal(err)
			}
		}
	}
	var version int64
	err := owner.QueryRowContext(t.Context(),
		"SELECT MAX(version_id) FROM outbox_schema_version").Scan(&version)
	if err != nil || version != 1 {
		t.Errorf("outbox_schema_version at %d, %v; want 1", version, err)
	}
}

func testAddValidates(t *testing.T, b storetest.Backend) {
	db := b.Open(t, outbox.Migrations)
	ctx := t.Context()
	for _, e := range []outbox.Event{
		{Topic: "", Payload: []byte(`{}`)},
		{Topic: "t", Payload: []byte(`{"unterminated"`)},
		{Topic: "t"},
	} {
		err := db.InTx(ctx, func(tx *sql.Tx) error {
			_, err := outbox.Add(ctx, tx, db.Dialect, e)
			return err
		})
		if err == nil {
			t.Errorf("Add(topic %q, payload %q) = nil error, want one", e.Topic, e.Payload)
		}
	}
	// A caller's id is kept, and it is unique.
	mine := outbox.Event{ID: "my-id", Topic: "t", Payload: []byte(`{}`)}
	got := mustAdd(t, db, mine)[0]
	if got.ID != "my-id" {
		t.Errorf("ID = %q, want my-id", got.ID)
	}
	if err := db.InTx(ctx, func(tx *sql.Tx) error {
		_, err := outbox.Add(ctx, tx, db.Dialect, mine)
		return err
	}); err == nil {
		t.Error("second Add with the same ID succeeded")
	}
	if n := countRows(t, db, "1 = 1"); n != 1 {
		t.Errorf("%d rows, want 1", n)
	}
}

func testAddInTransaction(t *testing.T, b storetest.Backend) {
	db := b.Open(t, outbox.Migrations)
	ctx := t.Context()
	clk := newClock()
	rec := &recorder{}
	relay, reg := newRelay(t, db, rec.publish, outbox.Options{Now: clk.Now})

	// The producer's transaction is tenant-scoped, as a service's would be:
	// the outbox, having no row-level security, takes the row anyway.
	errAbort := errors.New("abort")
	err := db.InTenantTx(ctx, "acme", func(tx *sql.Tx) error {
		if _, err := outbox.Add(ctx, tx, db.Dialect, event("job.completed", "rolled-back", "acme")); err != nil {
			return err
		}
		return errAbort
	})
	if !errors.Is(err, errAbort) {
		t.Fatalf("InTenantTx = %v, want %v", err, errAbort)
	}
	var committed outbox.Event
	err = db.InTenantTx(ctx, "acme", func(tx *sql.Tx) (err error) {
		committed, err = outbox.Add(ctx, tx, db.Dialect, event("job.completed", "job-1", "acme"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ulid.ParseStrict(committed.ID); err != nil {
		t.Errorf("ID %q is not a ULID: %v", committed.ID, err)
	}
	if committed.CreatedAt.IsZero() || committed.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt = %v, want set, in UTC", committed.CreatedAt)
	}

	if n := mustRunOnce(t, relay); n != 1 {
		t.Fatalf("first pass delivered %d, want 1", n)
	}
	if n := mustRunOnce(t, relay); n != 0 {
		t.Fatalf("second pass delivered %d, want 0", n)
	}
	got := rec.delivered()
	if len(got) != 1 {
		t.Fatalf("delivered %d events, want exactly 1", len(got))
	}
	assertEvent(t, got[0], committed)
	r := readRow(t, db, committed.ID)
	if !r.deliveredAt.Valid || !r.deliveredAt.Time.Equal(clk.Now()) || r.attempts != 1 || r.claimedUntil.Valid {
		t.Errorf("row = %+v, want delivered now after 1 attempt, unclaimed", r)
	}
	if v := metric(t, reg, "echopilot_outbox_delivered_total", "job.completed"); v != 1 {
		t.Errorf("delivered_total = %v, want 1", v)
	}
	if v := metric(t, reg, "echopilot_outbox_pending", ""); v != 0 {
		t.Errorf("pending = %v, want 0", v)
	}
}

// AddMany writes more events than one INSERT holds; each arrives once, as
// stored. So does AddQueued, on a pipelined transaction (PostgreSQL).
func testAddMany(t *testing.T, b storetest.Backend) {
	db := b.Open(t, outbox.Migrations)
	ctx := t.Context()
	rec := &recorder{}
	relay, _ := newRelay(t, db, rec.publish, outbox.Options{Batch: 1000})
	writers := map[string]func(in []outbox.Event) ([]outbox.Event, error){
		"AddMany": func(in []outbox.Event) (stored []outbox.Event, err error) {
			err = db.InTenantTx(ctx, "acme", func(tx *sql.Tx) (err error) {
				stored, err = outbox.AddMany(ctx, tx, db.Dialect, in)
				return err
			})
			return stored, err
		},
	}
	if db.Dialect == store.Postgres {
		writers["AddQueued"] = func(in []outbox.Event) (stored []outbox.Event, err error) {
			err = db.InPipeTx(ctx, func(tx *store.PipeTx) (err error) {
				stored, err = outbox.AddQueued(tx, in)
				return err
			})
			return stored, err
		}
	}
	for name, write := range writers {
		in := make([]outbox.Event, 450) // more than two chunks
		for i := range in {
			in[i] = event("job.completed", fmt.Sprintf("%s-job-%d", name, i), "acme")
		}
		stored, err := write(in)
		if err != nil {
			t.Fatal(name, err)
		}
		before := len(rec.delivered())
		if n := mustRunOnce(t, relay); n != len(in) {
			t.Fatalf("%s: delivered %d, want %d", name, n, len(in))
		}
		byID := map[string]outbox.Event{}
		for _, e := range rec.delivered()[before:] {
			byID[e.ID] = e
		}
		if len(byID) != len(in) || len(rec.delivered())-before != len(in) {
			t.Fatalf("%s: %d deliveries of %d distinct events, want %d of each", name, len(rec.delivered())-before, len(byID), len(in))
		}
		for _, want := range stored {
			assertEvent(t, byID[want.ID], want)
		}
	}
	// One bad event refuses the whole call: nothing of it is written.
	bad := []outbox.Event{event("job.completed", "ok", "acme"), {Topic: "job.completed", Payload: []byte("{")}}
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		_, err := outbox.AddMany(ctx, tx, db.Dialect, bad)
		return err
	})
	if err == nil {
		t.Fatal("AddMany accepted an event whose payload is not JSON")
	}
	if n := mustRunOnce(t, relay); n != 0 {
		t.Fatalf("a refused AddMany left %d events", n)
	}
}

func testRetryBackoff(t *testing.T, b storetest.Backend) {
	db := b.Open(t, outbox.Migrations)
	clk := newClock()
	const failures = 3
	rec := &recorder{fail: func(_ outbox.Event, call int) error {
		if call <= failures {
			return fmt.Errorf("consumer down (call %d)", call)
		}
		return nil
	}}
	relay, reg := newRelay(t, db, rec.publish, outbox.Options{
		Now: clk.Now, BaseDelay: time.Second, MaxDelay: time.Hour, MaxAttempts: 10,
	})
	e := mustAdd(t, db, eventAt("audit.webhook", "hook-1", "acme", clk.Now()))[0]

	for failure := 1; failure <= failures; failure++ {
		if n := mustRunOnce(t, relay); n != 0 {
			t.Fatalf("failure %d: delivered %d", failure, n)
		}
		r := readRow(t, db, e.ID)
		if r.attempts != failure || r.deliveredAt.Valid || r.deadAt.Valid || r.claimedUntil.Valid ||
			!strings.Contains(r.lastError, "consumer down") {
			t.Fatalf("failure %d: row = %+v, want %d attempts, pending, unclaimed, with the error", failure, r, failure)
		}
		// Equal jitter: the k-th delay lies in [d/2, d] for d = BaseDelay·2^(k-1),
		// so delays never shrink.
		delay, d := r.nextAttemptAt.Sub(clk.Now()), time.Second<<(failure-1)
		if delay < d/2 || delay > d {
			t.Errorf("failure %d: retry in %v, want within [%v, %v]", failure, delay, d/2, d)
		}
		if v := metric(t, reg, "echopilot_outbox_pending", ""); v != 1 {
			t.Errorf("pending = %v, want 1", v)
		}
		// Not due a microsecond early.
		clk.Set(r.nextAttemptAt.Add(-time.Microsecond))
		mustRunOnce(t, relay)
		if calls := rec.callsOf(e.ID); calls != failure {
			t.Fatalf("publisher called %d times before the retry was due, want %d", calls, failure)
		}
		clk.Set(r.nextAttemptAt)
	}
	if v := metric(t, reg, "echopilot_outbox_oldest_pending_seconds", ""); v <= 0 {
		t.Errorf("oldest_pending_seconds = %v, want the event's age", v)
	}
	if n := mustRunOnce(t, relay); n != 1 {
		t.Fatalf("delivered %d after the failures, want 1", n)
	}
	r := readRow(t, db, e.ID)
	if r.attempts != failures+1 || !r.deliveredAt.Valid {
		t.Errorf("row = %+v, want delivered after %d attempts", r, failures+1)
	}
	if v := metric(t, reg, "echopilot_outbox_retries_total", "audit.webhook"); v != failures {
		t.Errorf("retries_total = %v, want %d", v, failures)
	}
	if v := metric(t, reg, "echopilot_outbox_oldest_pending_seconds", ""); v != 0 {
		t.Errorf("oldest_pending_seconds = %v, want 0", v)
	}
}

func testDeadAfterMaxAttempts(t *testing.T, b storetest.Backend) {
	db := b.Open(t, outbox.Migrations)
	clk := newClock()
	rec := &recorder{fail: func(outbox.Event, int) error { return errors.New("consumer down") }}
	const maxAttempts = 4
	relay, reg := newRelay(t, db, rec.publish, outbox.Options{
		Now: clk.Now, BaseDelay: time.Second, MaxDelay: time.Minute, MaxAttempts: maxAttempts,
	})
	e := mustAdd(t, db, eventAt("audit.webhook", "hook-1", "acme", clk.Now()))[0]

	for attempt := 1; attempt <= maxAttempts; attempt++ {
		if r := readRow(t, db, e.ID); r.deadAt.Valid {
			t.Fatalf("dead after %d attempts, want %d", attempt-1, maxAttempts)
		}
		mustRunOnce(t, relay)
		clk.Advance(time.Minute)
	}
	r := readRow(t, db, e.ID)
	if !r.deadAt.Valid || r.attempts != maxAttempts || r.deliveredAt.Valid || r.lastError != "consumer down" {
		t.Fatalf("row = %+v, want dead after %d attempts with the last error", r, maxAttempts)
	}
	for name, want := range map[string]float64{
		"echopilot_outbox_dead_total":      1,
		"echopilot_outbox_retries_total":   maxAttempts - 1,
		"echopilot_outbox_delivered_total": 0,
	} {
		if v := metric(t, reg, name, "audit.webhook"); v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}
	if v := metric(t, reg, "echopilot_outbox_dead_letters", ""); v != 1 {
		t.Errorf("dead_letters = %v, want 1", v)
	}
	if v := metric(t, reg, "echopilot_outbox_pending", ""); v != 0 {
		t.Errorf("pending = %v, want 0", v)
	}

	clk.Advance(24 * time.Hour)
	mustRunOnce(t, relay)
	if calls := rec.callsOf(e.ID); calls != maxAttempts {
		t.Errorf("publisher called %d times, want %d: a dead event is never retried", calls, maxAttempts)
	}
}

// A deferred event (a paused consumer) waits its delay, however many
// times, without using up attempts, then goes when the consumer takes it.
func testDeferred(t *testing.T, b storetest.Backend) {
	db := b.Open(t, outbox.Migrations)
	clk := newClock()
	paused := true
	rec := &recorder{fail: func(outbox.Event, int) error {
		if paused {
			return outbox.Defer(5*time.Second, "tenant suspended")
		}
		return nil
	}}
	relay, _ := newRelay(t, db, rec.publish, outbox.Options{Now: clk.Now, MaxAttempts: 2})
	e := mustAdd(t, db, eventAt("audit.webhook", "hook-1", "acme", clk.Now()))[0]
	for range 5 {
		if n := mustRunOnce(t, relay); n != 0 {
			t.Fatalf("delivered %d while deferred", n)
		}
		if mustRunOnce(t, relay); rec.callsOf(e.ID) > 5 {
			t.Fatal("a deferred event was tried again before its delay")
		}
		clk.Advance(5 * time.Second)
	}
	r := readRow(t, db, e.ID)
	if r.deadAt.Valid || r.attempts != 0 || !strings.Contains(r.lastError, "tenant suspended") {
		t.Fatalf("row = %+v, want waiting with no attempt counted", r)
	}
	paused = false
	if n := mustRunOnce(t, relay); n != 1 {
		t.Fatalf("delivered %d once the consumer takes it, want 1", n)
	}
	if calls := rec.callsOf(e.ID); calls != 6 {
		t.Errorf("publisher called %d times, want 6 (once per delay, then delivered)", calls)
	}
}

func testPermanent(t *testing.T, b storetest.Backend) {
	db := b.Open(t, outbox.Migrations)
	clk := newClock()
	rec := &recorder{fail: func(e outbox.Event, _ int) error {
		if e.Key == "bad" {
			return fmt.Errorf("rejected payload: %w", outbox.ErrPermanent)
		}
		return nil
	}}
	relay, reg := newRelay(t, db, rec.publish, outbox.Options{Now: clk.Now})
	evs := mustAdd(t, db,
		eventAt("audit.webhook", "bad", "acme", clk.Now()),
		eventAt("audit.webhook", "good", "acme", clk.Now()))

	// The failure does not hold up the rest of the batch.
	if n := mustRunOnce(t, relay); n != 1 {
		t.Fatalf("delivered %d, want 1", n)
	}
	r := readRow(t, db, evs[0].ID)
	if !r.deadAt.Valid || r.attempts != 1 || !strings.Contains(r.lastError, "rejected payload") {
		t.Fatalf("row = %+v, want dead after 1 attempt", r)
	}
	if v := metric(t, reg, "echopilot_outbox_dead_total", "audit.webhook"); v != 1 {
		t.Errorf("dead_total = %v, want 1", v)
	}
	clk.Advance(time.Hour)
	mustRunOnce(t, relay)
	if calls := rec.callsOf(evs[0].ID); calls != 1 {
		t.Errorf("publisher called %d times, want 1", calls)
	}
}

func testTopics(t *testing.T, b storetest.Backend) {
	db := b.Open(t, outbox.Migrations)
	clk := newClock()
	rec := &recorder{}
	relay, reg := newRelay(t, db, rec.publish, outbox.Options{Now: clk.Now, Topics: []string{"a", "b"}})
	mustAdd(t, db,
		eventAt("a", "1", "acme", clk.Now()),
		eventAt("b", "2", "acme", clk.Now()),
		eventAt("c", "3", "acme", clk.Now()))
	if n := mustRunOnce(t, relay); n != 2 {
		t.Fatalf("delivered %d, want 2", n)
	}
	for _, e := range rec.delivered() {
		if e.Topic == "c" {
			t.Errorf("delivered an event of topic c")
		}
	}
	// The gauges cover the relay's topics only.
	if v := metric(t, reg, "echopilot_outbox_pending", ""); v != 0 {
		t.Errorf("pending = %v, want 0", v)
	}
	if n := countRows(t, db, "delivered_at IS NULL"); n != 1 {
		t.Errorf("%d rows undelivered, want 1 (topic c)", n)
	}
}

func testKick(t *testing.T, b storetest.Backend) {
	db := b.Open(t, outbox.Migrations)
	rec := &recorder{}
	// With an hour's poll, only Kick can explain a prompt delivery.
	relay, _ := newRelay(t, db, rec.publish, outbox.Options{Poll: time.Hour})
	first := mustAdd(t, db, event("t", "first", "acme"))[0]
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- relay.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	}()
	waitFor(t, "the first event", func() bool { return rec.callsOf(first.ID) == 1 })

	second := mustAdd(t, db, event("t", "second", "acme"))[0]
	relay.Kick()
	waitFor(t, "the kicked event", func() bool { return rec.callsOf(second.ID) == 1 })
}

func testTwoRelays(t *testing.T, b storetest.Backend) {
	migrateURL, appURL := b.NewDB(t)
	migrate(t, migrateURL)
	// Two pools, as two replicas would have.
	db1, db2 := storetest.Open(t, appURL), storetest.Open(t, appURL)
	const n = 1000
	evs := make([]outbox.Event, n)
	for i := range evs {
		evs[i] = event("queue.job.completed", fmt.Sprintf("job-%d", i), "acme")
	}
	mustAdd(t, db1, evs...)

	rec := &recorder{}
	opt := outbox.Options{Batch: 50, Poll: 5 * time.Millisecond}
	relay1, reg1 := newRelay(t, db1, rec.publish, opt)
	relay2, reg2 := newRelay(t, db2, rec.publish, opt)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for _, r := range []*outbox.Relay{relay1, relay2} {
		wg.Go(func() {
			if err := r.Run(ctx); err != nil {
				t.Errorf("Run = %v", err)
			}
		})
	}
	waitFor(t, "every event", func() bool { return rec.distinct() == n })
	cancel()
	wg.Wait()

	if got := len(rec.delivered()); got != n {
		t.Errorf("%d deliveries of %d events: some were delivered twice", got, n)
	}
	if left := countRows(t, db1, "delivered_at IS NULL"); left != 0 {
		t.Errorf("%d events not marked delivered", left)
	}
	c1 := metric(t, reg1, "echopilot_outbox_delivered_total", "queue.job.completed")
	c2 := metric(t, reg2, "echopilot_outbox_delivered_total", "queue.job.completed")
	t.Logf("relay 1 delivered %v, relay 2 delivered %v", c1, c2)
	if c1 == 0 || c2 == 0 || c1+c2 != n {
		t.Errorf("relays delivered %v and %v, want both some, %d in all", c1, c2, n)
	}
}

func testCrashedClaim(t *testing.T, b storetest.Backend) {
	db := b.Open(t, outbox.Migrations)
	clk := newClock()
	opt := outbox.Options{Now: clk.Now, Lease: time.Minute, PublishTimeout: time.Second}
	crashed, _ := newRelay(t, db, func(context.Context, outbox.Event) error {
		t.Error("the crashed relay published")
		return nil
	}, opt)
	rec := &recorder{}
	survivor, _ := newRelay(t, db, rec.publish, opt)
	mustAdd(t, db,
		eventAt("t", "1", "acme", clk.Now()),
		eventAt("t", "2", "acme", clk.Now()))

	claimed, err := crashed.Claim(t.Context())
	if err != nil || len(claimed) != 2 {
		t.Fatalf("Claim = %d events, %v; want 2", len(claimed), err)
	}
	clk.Advance(time.Minute - time.Microsecond)
	if n := mustRunOnce(t, survivor); n != 0 {
		t.Fatalf("delivered %d events still leased by another relay", n)
	}
	clk.Advance(time.Microsecond)
	if n := mustRunOnce(t, survivor); n != 2 {
		t.Fatalf("delivered %d after the lease ended, want 2", n)
	}
}

func testLeaseBoundsBatch(t *testing.T, b storetest.Backend) {
	db := b.Open(t, outbox.Migrations)
	clk := newClock()
	slowCalls := 2 // guarded by the recorder's lock, which fail runs under
	rec := &recorder{fail: func(outbox.Event, int) error {
		// The first two deliveries each use up a whole PublishTimeout.
		if slowCalls > 0 {
			slowCalls--
			clk.Advance(10 * time.Second)
		}
		return nil
	}}
	relay, _ := newRelay(t, db, rec.publish, outbox.Options{
		Now: clk.Now, PublishTimeout: 10 * time.Second, Lease: 25 * time.Second,
	})
	var evs []outbox.Event
	for i := range 5 {
		evs = append(evs, eventAt("t", fmt.Sprint(i), "acme", clk.Now()))
	}
	mustAdd(t, db, evs...)

	// 25s of lease: two deliveries of up to 10s fit, a third might not.
	if n := mustRunOnce(t, relay); n != 2 {
		t.Fatalf("delivered %d in the first pass, want 2", n)
	}
	if n := countRows(t, db, "delivered_at IS NULL AND claimed_until IS NULL"); n != 3 {
		t.Errorf("%d undelivered events released, want 3", n)
	}
	// Released, not left to their lease: the next pass takes them at once.
	if n := mustRunOnce(t, relay); n != 3 {
		t.Fatalf("delivered %d in the second pass, want 3", n)
	}
	if got := len(rec.delivered()); got != 5 {
		t.Errorf("%d deliveries, want 5", got)
	}
}

func testRetention(t *testing.T, b storetest.Backend) {
	db := b.Open(t, outbox.Migrations)
	clk := newClock()
	rec := &recorder{fail: func(e outbox.Event, _ int) error {
		switch e.Key {
		case "dead":
			return fmt.Errorf("rejected: %w", outbox.ErrPermanent)
		case "pending":
			return errors.New("consumer down")
		}
		return nil
	}}
	relay, _ := newRelay(t, db, rec.publish, outbox.Options{Now: clk.Now, Retention: 7 * 24 * time.Hour})
	relay.SetPruneChunk(2)

	evs := []outbox.Event{eventAt("t", "dead", "acme", clk.Now()), eventAt("t", "pending", "acme", clk.Now())}
	for i := range 5 {
		evs = append(evs, eventAt("t", fmt.Sprint("old-", i), "acme", clk.Now()))
	}
	evs = mustAdd(t, db, evs...)
	if n := mustRunOnce(t, relay); n != 5 {
		t.Fatalf("delivered %d, want 5", n)
	}
	clk.Advance(7*24*time.Hour + time.Second)
	recent := mustAdd(t, db, eventAt("t", "recent", "acme", clk.Now()))[0]
	mustRunOnce(t, relay)

	deleted, err := relay.Prune(t.Context())
	if err != nil || deleted != 5 {
		t.Fatalf("Prune = %d, %v; want 5 deleted (in chunks of 2)", deleted, err)
	}
	var left []string
	for _, id := range []string{evs[0].ID, evs[1].ID, recent.ID} {
		if readRow(t, db, id).exists {
			left = append(left, id)
		}
	}
	if len(left) != 3 || countRows(t, db, "1 = 1") != 3 {
		t.Errorf("kept %v of the dead, pending and recent events, and %d rows in all; want those 3 only",
			left, countRows(t, db, "1 = 1"))
	}
	if deleted, err := relay.Prune(t.Context()); err != nil || deleted != 0 {
		t.Errorf("second Prune = %d, %v; want 0", deleted, err)
	}
}

func testClaimUsesIndex(t *testing.T, b storetest.Backend) {
	migrateURL, appURL := b.NewDB(t)
	owner := migrate(t, migrateURL)
	db := storetest.Open(t, appURL)
	ctx := t.Context()
	clk := newClock()

	// A long delivered history and, after it, a backlog of a few batches.
	evs := make([]outbox.Event, 2400)
	for i := range evs {
		key := "done"
		if i >= 2100 {
			key = "pending"
		}
		evs[i] = eventAt("t", key, "acme", clk.Now())
		clk.Advance(time.Second)
	}
	mustAdd(t, db, evs...)
	if _, err := db.ExecContext(ctx, db.Rebind("UPDATE outbox SET delivered_at = ?, attempts = 1 WHERE event_key = 'done'"),
		clk.Now()); err != nil {
		t.Fatal(err)
	}
	// Statistics, as autovacuum (PostgreSQL) or ANALYZE (SQLite) would keep
	// them; only the owner may collect them on PostgreSQL.
	if _, err := owner.ExecContext(ctx, "ANALYZE outbox"); err != nil {
		t.Fatal(err)
	}

	// A full scan shows as "SCAN outbox" on SQLite ("SEARCH" uses an index)
	// and as "Seq Scan" on PostgreSQL.
	fullScan := "SCAN outbox"
	if db.Dialect == store.Postgres {
		fullScan = "Seq Scan"
	}
	for _, topics := range [][]string{nil, {"t", "u"}} {
		query, args := outbox.ClaimQuery(db.Dialect, topics, clk.Now(), clk.Now().Add(time.Minute), 100)
		plan, err := storetest.Plan(t.Context(), db, db.Dialect, query, args...)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(plan, "outbox_due") || strings.Contains(plan, fullScan) {
			t.Errorf("claim plan (topics %v) does not use outbox_due, or scans the table:\n%s", topics, plan)
		}
	}
}

// event is a test event; Add sets its time.
func event(topic, key, tenant string) outbox.Event {
	return eventAt(topic, key, tenant, time.Time{})
}

func eventAt(topic, key, tenant string, at time.Time) outbox.Event {
	return outbox.Event{Topic: topic, Key: key, TenantID: tenant, Payload: []byte(fmt.Sprintf(`{"key":%q}`, key)), CreatedAt: at}
}

// mustAdd writes evs in one transaction and returns them as stored.
func mustAdd(t *testing.T, db *store.DB, evs ...outbox.Event) []outbox.Event {
	t.Helper()
	out := make([]outbox.Event, 0, len(evs))
	err := db.InTx(t.Context(), func(tx *sql.Tx) error {
		for _, e := range evs {
			stored, err := outbox.Add(t.Context(), tx, db.Dialect, e)
			if err != nil {
				return err
			}
			out = append(out, stored)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func assertEvent(t *testing.T, got, want outbox.Event) {
	t.Helper()
	if got.ID != want.ID || got.Topic != want.Topic || got.Key != want.Key || got.TenantID != want.TenantID ||
		string(got.Payload) != string(want.Payload) || !got.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("event = %+v, want %+v", got, want)
	}
}

func migrate(t *testing.T, migrateURL string) *store.DB {
	t.Helper()
	owner := storetest.Open(t, migrateURL)
	if err := owner.Migrate(t.Context(), outbox.Migrations); err != nil {
		t.Fatal(err)
	}
	return owner
}

func newRelay(t *testing.T, db *store.DB, pub outbox.Publisher, opt outbox.Options) (*outbox.Relay, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	return outbox.NewRelay(db, pub, zaptest.NewLogger(t), reg, opt), reg
}

func mustRunOnce(t *testing.T, r *outbox.Relay) int {
	t.Helper()
	n, err := r.RunOnce(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitFor polls cond for up to 20 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// recorder is the consumer: it records the events handed to it, failing
// those fail (if set, called under the lock) returns an error for.
type recorder struct {
	mu    sync.Mutex
	fail  func(e outbox.Event, call int) error
	calls map[string]int
	got   []outbox.Event
}

func (r *recorder) publish(_ context.Context, e outbox.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.calls == nil {
		r.calls = make(map[string]int)
	}
	r.calls[e.ID]++
	if r.fail != nil {
		if err := r.fail(e, r.calls[e.ID]); err != nil {
			return err
		}
	}
	r.got = append(r.got, e)
	return nil
}

// delivered returns the successful deliveries, duplicates included.
func (r *recorder) delivered() []outbox.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]outbox.Event(nil), r.got...)
}

func (r *recorder) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := make(map[string]bool, len(r.got))
	for _, e := range r.got {
		seen[e.ID] = true
	}
	return len(seen)
}

func (r *recorder) callsOf(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[id]
}

// row is an outbox row's delivery state.
type row struct {
	exists                            bool
	attempts                          int
	nextAttemptAt                     time.Time
	claimedUntil, deliveredAt, deadAt sql.NullTime
	lastError                         string
}

func readRow(t *testing.T, db *store.DB, id string) row {
	t.Helper()
	r := row{exists: true}
	err := db.QueryRowContext(t.Context(), db.Rebind(`
		SELECT attempts, next_attempt_at, claimed_until, delivered_at, dead_at, last_error
		FROM outbox WHERE id = ?`), id,
	).Scan(&r.attempts, &r.nextAttemptAt, &r.claimedUntil, &r.deliveredAt, &r.deadAt, &r.lastError)
	if errors.Is(err, sql.ErrNoRows) {
		return row{}
	}
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func countRows(t *testing.T, db *store.DB, where string) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM outbox WHERE "+where).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// metric returns the value of the counter or gauge name (with the topic
// label, unless empty) on reg; 0 when it has no such series.
func metric(t *testing.T, reg *prometheus.Registry, name, topic string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if topic != "" && (len(m.GetLabel()) != 1 || m.GetLabel()[0].GetValue() != topic) {
				continue
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// A pass with nothing due writes nothing: on SQLite, whose one write lock
// every UPDATE takes even when it matches nothing, a relay kicked after
// every commit would otherwise make the service's writers wait. Another
// connection holds the write lock (and on PostgreSQL a row lock on a
// pending event) throughout; the pass must neither wait for it nor fail.
func testIdleTakesNoWriteLock(t *testing.T, b storetest.Backend) {
	db := b.Open(t, outbox.Migrations)
	clk := newClock()
	rec := &recorder{}
	relay, _ := newRelay(t, db, rec.publish, outbox.Options{Now: clk.Now})
	later := mustAdd(t, db, eventAt("t", "later", "acme", clk.Now().Add(time.Hour)))[0]
	holder, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	begin, lock := "BEGIN IMMEDIATE", "UPDATE outbox SET attempts = attempts WHERE id = ?"
	if b.Name == "postgres" {
		begin = "BEGIN"
	}
	if _, err := holder.ExecContext(t.Context(), begin); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = holder.ExecContext(context.Background(), "ROLLBACK") }()
	if _, err := holder.ExecContext(t.Context(), db.Rebind(lock), later.ID); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		n, err := relay.RunOnce(t.Context())
		if err == nil && n != 0 {
			err = fmt.Errorf("delivered %d events, none is due", n)
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("idle pass while another writer holds the lock: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("an idle pass waited for another writer's lock")
	}
}
