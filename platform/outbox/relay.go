package outbox

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/echopilot/echopilot/platform/backoff"
	"github.com/echopilot/echopilot/platform/store"
)

const (
	// pruneChunk rows per DELETE, so pruning a large backlog never holds the
	// SQLite write lock or PostgreSQL row locks for long.
	pruneChunk = 1000
	// pruneInterval is how often Run prunes: retention is counted in days,
	// so there is no point in doing it every pass.
	pruneInterval = 10 * time.Minute
	// maxErrorLen bounds last_error: an error can quote a whole response body.
	maxErrorLen = 1024
)

// pendingCond selects the rows still to deliver. It is spelled exactly as
// the predicate of the outbox_due partial index, which is what lets both
// databases use that index.
const pendingCond = "delivered_at IS NULL AND dead_at IS NULL"

// Options tune a Relay; zero values take the defaults.
type Options struct {
	Batch int           // events claimed per pass (default 100)
	Poll  time.Duration // wait between passes when idle and not kicked (default 1s)
	// MaxAttempts are the deliveries tried before an event is dead (default
	// 100: at the default delays, a consumer down for about 8 hours, so an
	// outage of a peer service does not dead-letter its events).
	MaxAttempts int
	// BaseDelay is the retry delay after the first failure; it doubles with
	// every further failure up to MaxDelay, with equal jitter (half fixed,
	// half random) so failed events do not retry in lockstep.
	BaseDelay time.Duration // default 1s
	MaxDelay  time.Duration // default 5m
	Retention time.Duration // how long delivered events are kept (default 7 days)
	// Topics limits the relay to these topics (delivery, metrics and
	// pruning); empty means all.
	Topics []string
	// PublishTimeout bounds one delivery (default 10s).
	PublishTimeout time.Duration
	// Lease is how long a claim keeps other relays off the claimed events
	// (default 1m, raised to at least 2×PublishTimeout). It is also how long
	// the events of a relay that died holding them wait to be delivered.
	Lease time.Duration
	// Now is the clock (default time.Now); tests move it.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if o.Batch <= 0 {
		o.Batch = 100
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 100
	}
	def(&o.Poll, time.Second)
	def(&o.BaseDelay, time.Second)
	def(&o.MaxDelay, 5*time.Minute)
	def(&o.Retention, 7*24*time.Hour)
	def(&o.PublishTimeout, 10*time.Second)
	def(&o.Lease, time.Minute)
	// A delivery starts only while a whole PublishTimeout of lease is left
	// (see pass), so a shorter lease would let no event through.
	o.Lease = max(o.Lease, 2*o.PublishTimeout)
	if o.Now == nil {
		o.Now = time.Now
	}
	o.Topics = slices.Clone(o.Topics)
	return o
}

// Relay delivers the outbox of one database. Run one in every replica: the
// claim lease keeps them from delivering the same event concurrently.
type Relay struct {
	db         *store.DB
	pub        Publisher
	batch      BatchPublisher // when set, used instead of pub
	log        *zap.Logger
	opt        Options
	retry      backoff.Policy // from BaseDelay and MaxDelay
	kick       chan struct{}
	pruneChunk int
	// stmts keeps the claim's statements prepared (SQLite compiles an
	// unprepared one on every call); dueQuery is anyDue's.
	stmts    *store.Stmts
	dueQuery string

	delivered, retries, dead  *prometheus.CounterVec
	pending, oldest, deadRows prometheus.Gauge
}

// NewRelay returns a Relay delivering db's outbox to pub and registers its
// metrics on reg (so one Relay per registry). Start it with Run.
func NewRelay(db *store.DB, pub Publisher, log *zap.Logger, reg prometheus.Registerer, opt Options) *Relay {
	opt = opt.withDefaults()
	r := &Relay{
		db:         db,
		pub:        pub,
		log:        log.Named("outbox"),
		opt:        opt,
		retry:      backoff.Policy{Base: opt.BaseDelay, Cap: opt.MaxDelay, Jitter: backoff.Equal},
		kick:       make(chan struct{}, 1),
		pruneChunk: pruneChunk,
		stmts:      store.NewStmts(db),
		dueQuery:   dueQuery(db.Dialect, opt.Topics),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "echopilot_outbox_delivered_total",
			Help: "Outbox events delivered, by topic.",
		}, []string{"topic"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "echopilot_outbox_retries_total",
			Help: "Outbox deliveries that failed and were scheduled again, by topic.",
		}, []string{"topic"}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "echopilot_outbox_dead_total",
			Help: "Outbox events dead-lettered (attempts exhausted or permanent failure), by topic.",
		}, []string{"topic"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "echopilot_outbox_pending",
			Help: "Outbox events waiting for delivery.",
		}),
		oldest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "echopilot_outbox_oldest_pending_seconds",
			Help: "Age of the oldest outbox event waiting for delivery (the outbox lag); 0 when none waits.",
		}),
		deadRows: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "echopilot_outbox_dead_letters",
			Help: "Dead-lettered outbox events still stored; each needs a human.",
		}),
	}
	// The relay's topics have series from the start, so that a rule on
	// them sees 0, not nothing, on a fresh pod.
	for _, topic := range opt.Topics {
		r.delivered.WithLabelValues(topic)
		r.retries.WithLabelValues(topic)
		r.dead.WithLabelValues(topic)
	}
	reg.MustRegister(r.delivered, r.retries, r.dead, r.pending, r.oldest, r.deadRows)
	return r
}

// NewBatchRelay is NewRelay for a publisher that takes a whole claimed
// batch per call: one round trip to the consumer and one statement
// recording the deliveries per batch, instead of one of each per event.
func NewBatchRelay(db *store.DB, pub BatchPublisher, log *zap.Logger, reg prometheus.Registerer, opt Options) *Relay {
	r := NewRelay(db, nil, log, reg, opt)
	r.batch = pub
	return r
}

// Kick wakes the relay now. Producers call it after committing events, so
// delivery does not wait for the next poll. It never blocks.
func (r *Relay) Kick() {
	if r == nil {
		return // no relay runs (service.Runtime.StartRelay): the events wait
	}
	select {
	case r.kick <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// Run delivers until ctx ends, then returns nil. A failed pass is logged and
// tried again after Poll: a database outage must not stop the relay. A pass
// that claimed a full batch is followed at once by the next, to work off a
// backlog; the gauges are then updated at most once per Poll, as counting a
// large backlog is not free. Delivered events older than Retention are
// pruned periodically. When ctx ends, a delivery in flight is finished and
// recorded (within PublishTimeout) and the rest of its batch handed back.
func (r *Relay) Run(ctx context.Context) error {
	var lastPrune, lastGauges time.Time
	for ctx.Err() == nil {
		if time.Since(lastPrune) >= pruneInterval {
			lastPrune = time.Now()
			if n, err := r.Prune(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("outbox prune failed", zap.Error(err), zap.Int64("deleted", n))
			} else if n > 0 {
				r.log.Info("outbox pruned", zap.Int64("deleted", n))
			}
		}
		claimed, _, err := r.pass(ctx)
		if err != nil && ctx.Err() == nil {
			r.log.Warn("outbox relay pass failed", zap.Error(err))
		}
		if time.Since(lastGauges) >= r.opt.Poll {
			lastGauges = time.Now()
			if err := r.updateGauges(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("outbox metrics not updated", zap.Error(err))
			}
		}
		if err == nil && claimed == r.opt.Batch {
			continue
		}
		select {
		case <-ctx.Done():
		case <-r.kick:
		case <-time.After(r.opt.Poll):
		}
	}
	return nil
}

// RunOnce claims one batch of due events, delivers them, records the
// outcomes and updates the gauges, for tests and tools. It returns how many
// events were delivered.
func (r *Relay) RunOnce(ctx context.Context) (delivered int, err error) {
	_, delivered, err = r.pass(ctx)
	if gerr := r.updateGauges(ctx); gerr != nil {
		err = errors.Join(err, gerr)
	}
	return delivered, err
}

// claimedEvent is an event this relay holds until its lease ends.
type claimedEvent struct {
	Event
	attempts      int
	nextAttemptAt time.Time
}

func (r *Relay) pass(ctx context.Context) (claimed, delivered int, err error) {
	evs, until, err := r.claim(ctx)
	if err != nil {
		return 0, 0, err
	}
	// A delivery that has started finishes and is recorded even when ctx
	// ends: a shutdown must neither count as a failed attempt nor leave a
	// published event unrecorded.
	live := context.WithoutCancel(ctx)
	if r.batch != nil {
		delivered, err = r.deliverBatch(ctx, live, evs, until)
		return len(evs), delivered, err
	}
	for i, ev := range evs {
		// Start a delivery only if it can time out before the lease ends;
		// otherwise another relay could claim and publish the event while
		// this one still is. Hand the rest back for any relay to take.
		if ctx.Err() != nil || until.Sub(r.now()) < r.opt.PublishTimeout {
			err = r.release(live, evs[i:], until)
			break
		}
		ok, derr := r.deliver(live, ev, until)
		if ok {
			delivered++
		}
		if derr != nil {
			// The database is failing: publishing more would only make
			// duplicates. The rest wait for their lease to end.
			err = derr
			break
		}
	}
	return len(evs), delivered, err
}

// claim takes up to Batch due events in one statement, atomic on both
// databases: on PostgreSQL, FOR UPDATE SKIP LOCKED makes concurrent relays
// claim disjoint rows without waiting (a row whose claim another relay
// committed meanwhile is re-checked against its new lease and left out); on
// SQLite, writers are serialised anyway.
// A row is due when its next attempt time has come and no unexpired lease
// holds it.
func (r *Relay) claim(ctx context.Context) ([]claimedEvent, time.Time, error) {
	now := r.now()
	until := now.Add(r.opt.Lease)
	query, args := claimQuery(r.db.Dialect, r.opt.Topics, now, until, r.opt.Batch)
	var evs []claimedEvent
	read := func(rows *sql.Rows, err error) error {
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var ev claimedEvent
			if err := rows.Scan(&ev.ID, &ev.Topic, &ev.Key, &ev.TenantID, &ev.Payload, &ev.CreatedAt,
				&ev.attempts, &ev.nextAttemptAt); err != nil {
				return err
			}
			evs = append(evs, ev)
		}
		return rows.Err()
	}
	var err error
	if r.db.Dialect == store.Postgres {
		err = read(r.db.QueryContext(ctx, query, args...))
	} else {
		// On SQLite an UPDATE takes the database's one write lock even when
		// it matches nothing, and a claim follows every producer's kick:
		// a read (which waits for no writer) looks first, and the claim
		// queues with this process's writers rather than making them meet
		// SQLite's busy handler.
		var due bool
		if due, err = r.anyDue(ctx, now); err == nil && due {
			err = r.db.InWriteTx(ctx, func(tx *sql.Tx) error {
				return read(r.stmts.Query(ctx, tx, query, args...))
			})
		}
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("outbox: claim: %w", err)
	}
	// RETURNING does not keep the subquery's order.
	slices.SortFunc(evs, func(a, b claimedEvent) int {
		return cmp.Or(a.nextAttemptAt.Compare(b.nextAttemptAt), strings.Compare(a.ID, b.ID))
	})
	return evs, until, nil
}

// anyDue reports whether an event of the relay's topics is due at now and
// not claimed: the claim's own condition, read-only.
func (r *Relay) anyDue(ctx context.Context, now time.Time) (bool, error) {
	_, topicArgs := topicFilter(r.opt.Topics)
	var due bool
	err := r.db.InAllTenantsReadTx(ctx, func(tx *sql.Tx) error {
		return r.stmts.QueryRow(ctx, tx, r.dueQuery, append([]any{now, now}, topicArgs...)...).Scan(&due)
	})
	return due, err
}

// dueQuery is anyDue's statement; its arguments are now twice, then the
// topics.
func dueQuery(d store.Dialect, topics []string) string {
	filter, _ := topicFilter(topics)
	return d.Rebind(`SELECT EXISTS (SELECT 1 FROM outbox
		WHERE ` + pendingCond + ` AND next_attempt_at <= ? AND (claimed_until IS NULL OR claimed_until <= ?)` + filter + `)`)
}

// claimQuery is the claim statement and its arguments: it leases the first
// limit due rows in (next_attempt_at, id) order, which the outbox_due index
// serves without reading delivered or dead rows. The leased rows are then
// found by primary key. On PostgreSQL the ids are collected with ARRAY(…), an
// InitPlan run once, rather than IN (…), which on a small table the planner
// may answer by hash-joining against a scan of the whole table; SQLite
// always runs IN (…) once and probes the primary key.
func claimQuery(d store.Dialect, topics []string, now, until time.Time, limit int) (string, []any) {
	filter, topicArgs := topicFilter(topics)
	due := `SELECT id FROM outbox
			WHERE ` + pendingCond + ` AND next_attempt_at <= ?
				AND (claimed_until IS NULL OR claimed_until <= ?)` + filter + `
			ORDER BY next_attempt_at, id
			LIMIT ?`
	where := "id IN (" + due + ")"
	if d == store.Postgres {
		where = "id = ANY(ARRAY(" + due + " FOR UPDATE SKIP LOCKED))"
	}
	query := `UPDATE outbox SET claimed_until = ?
		WHERE ` + where + `
		RETURNING id, topic, event_key, tenant_id, payload, created_at, attempts, next_attempt_at`
	args := append([]any{until, now, now}, topicArgs...)
	return d.Rebind(query), append(args, limit)
}

// topicFilter is the condition (with its arguments) limiting a query to
// topics; empty when there are none.
func topicFilter(topics []string) (string, []any) {
	if len(topics) == 0 {
		return "", nil
	}
	args := make([]any, len(topics))
	for i, t := range topics {
		args[i] = t
	}
	return " AND topic IN (" + strings.Repeat("?, ", len(topics)-1) + "?)", args
}

// deliver publishes ev and records the outcome. It reports whether ev was
// delivered; an error means the outcome could not be recorded.
func (r *Relay) deliver(ctx context.Context, ev claimedEvent, until time.Time) (bool, error) {
	pctx, cancel := context.WithTimeout(ctx, r.opt.PublishTimeout)
	perr := r.publish(pctx, ev.Event)
	cancel()
	now := r.now()
	if perr == nil {
		r.delivered.WithLabelValues(ev.Topic).Inc()
		// Recorded whoever holds the lease: the event is out either way.
		_, err := r.db.ExecContext(ctx, r.db.Rebind(`
			UPDATE outbox SET delivered_at = ?, attempts = attempts + 1, claimed_until = NULL
			WHERE id = ? AND delivered_at IS NULL`), now, ev.ID)
		if err != nil {
			return true, fmt.Errorf("outbox: record delivery of %s: %w", ev.ID, err)
		}
		return true, nil
	}

	return false, r.recordFailure(ctx, ev, until, perr)
}

// recordFailure records a failed delivery of ev: a retry after backoff, or
// a dead letter.
func (r *Relay) recordFailure(ctx context.Context, ev claimedEvent, until time.Time, perr error) error {
	now := r.now()
	fields := []zap.Field{
		zap.String("event_id", ev.ID), zap.String("topic", ev.Topic), zap.String("key", ev.Key),
		zap.String("tenant_id", ev.TenantID), zap.Int("attempt", ev.attempts+1), zap.Error(perr),
	}
	var deferred *Deferred
	if errors.As(perr, &deferred) {
		// Not an attempt: the count (and so the backoff and the dead
		// letter) stays where it was.
		_, err := r.db.ExecContext(ctx, r.db.Rebind(`
			UPDATE outbox SET next_attempt_at = ?, last_error = ?, claimed_until = NULL
			WHERE id = ? AND claimed_until = ?`), now.Add(deferred.After), errorText(perr), ev.ID, until)
		if err != nil {
			return fmt.Errorf("outbox: record deferred delivery of %s: %w", ev.ID, err)
		}
		return nil
	}
	dead := errors.Is(perr, ErrPermanent) || ev.attempts+1 >= r.opt.MaxAttempts
	// Failures are recorded only while this relay still holds the claim
	// (claimed_until is the fencing token), so a relay that lost its lease
	// cannot overwrite what the new holder records.
	var res sql.Result
	var err error
	if dead {
		res, err = r.db.ExecContext(ctx, r.db.Rebind(`
			UPDATE outbox SET dead_at = ?, attempts = attempts + 1, last_error = ?, claimed_until = NULL
			WHERE id = ? AND claimed_until = ?`), now, errorText(perr), ev.ID, until)
	} else {
		// ev failed ev.attempts times before this failure: min(MaxDelay,
		// BaseDelay·2^attempts) with equal jitter, so delays never shrink.
		next := now.Add(r.retry.Delay(ev.attempts + 1))
		fields = append(fields, zap.Time("next_attempt_at", next))
		res, err = r.db.ExecContext(ctx, r.db.Rebind(`
			UPDATE outbox SET next_attempt_at = ?, attempts = attempts + 1, last_error = ?, claimed_until = NULL
			WHERE id = ? AND claimed_until = ?`), next, errorText(perr), ev.ID, until)
	}
	if err != nil {
		return fmt.Errorf("outbox: record failed delivery of %s: %w", ev.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		r.log.Warn("outbox delivery failed after the claim was lost; not recorded", fields...)
		return nil
	}
	if dead {
		r.dead.WithLabelValues(ev.Topic).Inc()
		r.log.Error("outbox event dead-lettered", fields...)
	} else {
		r.retries.WithLabelValues(ev.Topic).Inc()
		r.log.Warn("outbox delivery failed; will retry", fields...)
	}
	return nil
}

// deliverBatch publishes evs with one call of the batch publisher, then
// records the deliveries with one statement and each failure on its own.
func (r *Relay) deliverBatch(ctx, live context.Context, evs []claimedEvent, until time.Time) (int, error) {
	if len(evs) == 0 {
		return 0, nil
	}
	if ctx.Err() != nil || until.Sub(r.now()) < r.opt.PublishTimeout {
		return 0, r.release(live, evs, until)
	}
	events := make([]Event, len(evs))
	for i, ev := range evs {
		events[i] = ev.Event
	}
	pctx, cancel := context.WithTimeout(live, r.opt.PublishTimeout)
	errs := r.publishBatch(pctx, events)
	cancel()
	var ok []claimedEvent
	for i, ev := range evs {
		if errs[i] == nil {
			ok = append(ok, ev)
			continue
		}
		if err := r.recordFailure(live, ev, until, errs[i]); err != nil {
			return 0, err
		}
	}
	if len(ok) == 0 {
		return 0, nil
	}
	args := []any{r.now()}
	for _, ev := range ok {
		args = append(args, ev.ID)
	}
	// Recorded whoever holds the lease: the events are out either way.
	_, err := r.db.ExecContext(live, r.db.Rebind(
		"UPDATE outbox SET delivered_at = ?, attempts = attempts + 1, claimed_until = NULL WHERE delivered_at IS NULL AND id IN ("+
			strings.Repeat("?, ", len(ok)-1)+"?)"), args...)
	if err != nil {
		return len(ok), fmt.Errorf("outbox: record delivery of %d events: %w", len(ok), err)
	}
	for _, ev := range ok {
		r.delivered.WithLabelValues(ev.Topic).Inc()
	}
	return len(ok), nil
}

// publishBatch calls the BatchPublisher; a panic, or an answer of the wrong
// length, fails every event (to be retried, and dead-lettered if it keeps
// happening).
func (r *Relay) publishBatch(ctx context.Context, evs []Event) (errs []error) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("outbox batch publisher panicked", zap.Int("events", len(evs)), zap.Any("panic", p), zap.Stack("stack"))
			errs = failAll(len(evs), fmt.Errorf("publisher panicked: %v", p))
		}
	}()
	errs = r.batch(ctx, evs)
	if len(errs) != len(evs) {
		return failAll(len(evs), fmt.Errorf("batch publisher answered %d outcomes for %d events", len(errs), len(evs)))
	}
	return errs
}

func failAll(n int, err error) []error {
	errs := make([]error, n)
	for i := range errs {
		errs[i] = err
	}
	return errs
}

// publish calls the Publisher, turning a panic into an error so that a
// poison event is retried and dead-lettered instead of crashing every
// replica that claims it.
func (r *Relay) publish(ctx context.Context, e Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("outbox publisher panicked", zap.String("event_id", e.ID), zap.Any("panic", p), zap.Stack("stack"))
			err = fmt.Errorf("publisher panicked: %v", p)
		}
	}()
	return r.pub(ctx, e)
}

// release hands claimed events back before their lease ends.
func (r *Relay) release(ctx context.Context, evs []claimedEvent, until time.Time) error {
	if len(evs) == 0 {
		return nil
	}
	args := []any{until}
	for _, ev := range evs {
		args = append(args, ev.ID)
	}
	_, err := r.db.ExecContext(ctx, r.db.Rebind(
		"UPDATE outbox SET claimed_until = NULL WHERE claimed_until = ? AND id IN ("+
			strings.Repeat("?, ", len(evs)-1)+"?)"), args...)
	if err != nil {
		return fmt.Errorf("outbox: release %d events: %w", len(evs), err)
	}
	return nil
}

// updateGauges sets the pending, lag and dead-letter gauges.
func (r *Relay) updateGauges(ctx context.Context) error {
	b, err := ReadBacklog(ctx, r.db, r.opt.Topics)
	if err != nil {
		return err
	}
	r.pending.Set(float64(b.Pending))
	r.deadRows.Set(float64(b.Dead))
	lag := 0.0
	if !b.Oldest.IsZero() {
		lag = max(0, r.now().Sub(b.Oldest).Seconds())
	}
	r.oldest.Set(lag)
	return nil
}

// Backlog is an outbox's state: events waiting for delivery, when the
// oldest of them was created (zero when none waits: the lag is the time
// since), and dead events.
type Backlog struct {
	Pending, Dead int64
	Oldest        time.Time
}

// ReadBacklog reads the backlog of the events of topics (every topic when
// none).
func ReadBacklog(ctx context.Context, db *store.DB, topics []string) (Backlog, error) {
	filter, args := topicFilter(topics)
	var b Backlog
	err := db.QueryRowContext(ctx, db.Rebind(
		"SELECT COUNT(*) FROM outbox WHERE "+pendingCond+filter), args...).Scan(&b.Pending)
	if err != nil {
		return b, fmt.Errorf("outbox: count pending: %w", err)
	}
	// A plain column rather than MIN(created_at), which SQLite would return
	// as a bare integer rather than a time; outbox_pending_created serves it.
	err = db.QueryRowContext(ctx, db.Rebind(
		"SELECT created_at FROM outbox WHERE "+pendingCond+filter+" ORDER BY created_at LIMIT 1"), args...).Scan(&b.Oldest)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return b, fmt.Errorf("outbox: oldest pending: %w", err)
	}
	err = db.QueryRowContext(ctx, db.Rebind(
		"SELECT COUNT(*) FROM outbox WHERE dead_at IS NOT NULL"+filter), args...).Scan(&b.Dead)
	if err != nil {
		return b, fmt.Errorf("outbox: count dead: %w", err)
	}
	return b, nil
}

// Prune deletes delivered events older than Retention, in chunks so that a
// large backlog never holds locks for long, and returns how many it
// deleted. Pending and dead events are kept. Run calls it periodically.
func (r *Relay) Prune(ctx context.Context) (int64, error) {
	filter, topicArgs := topicFilter(r.opt.Topics)
	query := r.db.Rebind(`DELETE FROM outbox WHERE id IN (
		SELECT id FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < ?` + filter + ` LIMIT ?)`)
	args := append(append([]any{r.now().Add(-r.opt.Retention)}, topicArgs...), r.pruneChunk)
	var deleted int64
	for {
		res, err := r.db.ExecContext(ctx, query, args...)
		if err != nil {
			return deleted, fmt.Errorf("outbox: prune: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return deleted, fmt.Errorf("outbox: prune: %w", err)
		}
		deleted += n
		if n < int64(r.pruneChunk) {
			return deleted, nil
		}
	}
}

// now is the clock in UTC at the databases' microsecond precision, so a
// lease written to the database compares equal to the one held here.
func (r *Relay) now() time.Time {
	return r.opt.Now().UTC().Truncate(time.Microsecond)
}

// errorText makes err storable as last_error: PostgreSQL text must be valid
// UTF-8 without NUL bytes, and the length is bounded.
func errorText(err error) string {
	s := strings.ReplaceAll(strings.ToValidUTF8(err.Error(), "\uFFFD"), "\x00", "")
	if len(s) <= maxErrorLen {
		return s
	}
	cut := maxErrorLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
