// Package outbox is the transactional outbox every service uses to send
// events to other services.
//
// A producer writes an event with Add in the same database transaction as
// its own change, so the event exists if and only if the change committed.
// A Relay, running in every replica, claims due events, hands them to a
// Publisher and records the outcome, retrying failures with exponential
// backoff and jitter and dead-lettering what keeps failing.
//
// Delivery is at least once: a relay that dies between publishing and
// recording the delivery leaves the event to be published again once its
// claim lease runs out. Consumers therefore deduplicate on Event.ID.
// Events are claimed oldest first, but retries and concurrent relays can
// reorder them: consumers must not depend on order.
//
// A service lists Migrations in its service.Spec.ExtraMigrations, starts a
// Relay in Setup (go relay.Run(ctx)) and calls relay.Kick after committing a
// transaction that added events.
package outbox

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/echopilot/echopilot/platform/store"
)

//go:embed migrations
var migrationFiles embed.FS

// Migrations creates the outbox table in a service's own database. It keeps
// its own goose version table, so a service applies it next to its own
// migrations: db.Migrate(ctx, outbox.Migrations).
var Migrations = store.EmbeddedMigrations(migrationFiles, "outbox_schema_version")

// ErrPermanent marks a delivery failure that retrying cannot fix (say, a
// payload the consumer rejects as invalid). A Publisher returns an error
// wrapping it to dead-letter the event at once.
var ErrPermanent = errors.New("outbox: permanent delivery failure")

// Permanent wraps err as a permanent failure of event e: one bad event is
// dead-lettered, the rest of its batch still goes.
func Permanent(e Event, err error) error {
	return fmt.Errorf("%w: event %s: %v", ErrPermanent, e.ID, err)
}

// Deferred is a Publisher's answer for an event that must wait, not fail:
// its consumer is paused (a suspended tenant's webhooks). The relay tries
// it again after After without counting an attempt, so a pause however
// long never dead-letters it.
type Deferred struct {
	After  time.Duration
	Reason string
}

func (d *Deferred) Error() string { return "outbox: deferred " + d.After.String() + ": " + d.Reason }

// Defer returns a *Deferred error.
func Defer(after time.Duration, reason string) error { return &Deferred{After: after, Reason: reason} }

// DecodePayload reads e's JSON payload into v; a payload that does not
// decode is a Permanent failure (retrying cannot fix it).
func DecodePayload(e Event, v any) error {
	if err := json.Unmarshal(e.Payload, v); err != nil {
		return Permanent(e, err)
	}
	return nil
}

// Event is one message to another service.
type Event struct {
	// ID is a ULID, set by Add when empty. Consumers deduplicate on it.
	ID string
	// Topic names the kind of event, e.g. "queue.job.completed".
	Topic string
	// Key is the business key (e.g. a job id), for logs and for consumers
	// that need to relate events.
	Key      string
	TenantID string
	// Payload is JSON.
	Payload []byte
	// CreatedAt is set by Add when zero; it is stored in UTC at microsecond
	// precision.
	CreatedAt time.Time
}

// Publisher delivers one event. Any error means "retry later", unless it
// wraps ErrPermanent. It must return when ctx ends, and should hand e.ID to
// the consumer (say, as an idempotency key), which deduplicates on it.
type Publisher func(ctx context.Context, e Event) error

// BatchPublisher delivers several events with one call (see NewBatchRelay)
// and answers one outcome per event, in order: errs[i] is nil when evs[i]
// was delivered, else an error as a Publisher would return for it.
type BatchPublisher func(ctx context.Context, evs []Event) (errs []error)

// Add writes e inside the caller's transaction tx (from store.DB.InTx or
// InTenantTx, whose tenant scope does not matter: the outbox has no
// row-level security). d picks the placeholders. It returns e with ID and
// CreatedAt filled in. Call the Relay's Kick after the commit to deliver
// without waiting for its next poll.
func Add(ctx context.Context, tx *sql.Tx, d store.Dialect, e Event) (Event, error) {
	evs, err := AddMany(ctx, tx, d, []Event{e})
	if err != nil {
		return Event{}, err
	}
	return evs[0], nil
}

// addChunk bounds the rows of one INSERT (7 parameters each, far below
// SQLite's and PostgreSQL's parameter limits).
const addChunk = 200

// AddMany writes several events inside the caller's transaction with
// multi-row INSERTs: a producer that changes many rows at once (a batch of
// job completions) pays one statement, not one per event.
func AddMany(ctx context.Context, tx *sql.Tx, d store.Dialect, es []Event) ([]Event, error) {
	return addMany(d, es, func(query string, args []any) error {
		_, err := tx.ExecContext(ctx, query, args...)
		return err
	})
}

// AddQueued is AddMany on a pipelined transaction (PostgreSQL): the
// INSERTs are queued, sent with tx's next batch, so they cost no round
// trip of their own; an INSERT that fails fails that batch.
func AddQueued(tx *store.PipeTx, es []Event) ([]Event, error) {
	return addMany(store.Postgres, es, func(query string, args []any) error {
		tx.Queue(query, args...)
		return nil
	})
}

// addMany checks es, fills in their IDs and times, and hands exec the
// multi-row INSERTs that write them.
func addMany(d store.Dialect, es []Event, exec func(query string, args []any) error) ([]Event, error) {
	out := make([]Event, 0, len(es))
	for _, e := range es {
		if e.Topic == "" {
			return nil, errors.New("outbox: add: empty topic")
		}
		if !json.Valid(e.Payload) {
			// Caught here, in the producer's transaction, rather than by a
			// consumer that would dead-letter it much later.
			return nil, fmt.Errorf("outbox: add %s: payload is not valid JSON", e.Topic)
		}
		if e.ID == "" {
			e.ID = ulid.Make().String()
		}
		if e.CreatedAt.IsZero() {
			e.CreatedAt = time.Now()
		}
		// Return what a later read will: UTC at the databases' precision.
		e.CreatedAt = e.CreatedAt.UTC().Truncate(time.Microsecond)
		out = append(out, e)
	}
	for start := 0; start < len(out); start += addChunk {
		chunk := out[start:min(start+addChunk, len(out))]
		var q strings.Builder
		q.WriteString(`INSERT INTO outbox (id, topic, event_key, tenant_id, payload, created_at, next_attempt_at) VALUES `)
		args := make([]any, 0, 7*len(chunk))
		for i, e := range chunk {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString("(?, ?, ?, ?, ?, ?, ?)")
			args = append(args, e.ID, e.Topic, e.Key, e.TenantID, e.Payload, e.CreatedAt, e.CreatedAt)
		}
		if err := exec(d.Rebind(q.String()), args); err != nil {
			return nil, fmt.Errorf("outbox: add %d events (%s …): %w", len(chunk), chunk[0].Topic, err)
		}
	}
	return out, nil
}
