package outbox

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/page"
	"github.com/echopilot/echopilot/platform/store"
)

// Reasons of the dead-letter calls.
const (
	// ReasonRequeueInvalid: a requeue names neither ids nor all, or both,
	// or too many ids.
	ReasonRequeueInvalid = "OUTBOX_REQUEUE_INVALID"
	// ReasonEventNotFound: no dead event (or, with Pending, undelivered
	// event) has the id within the request's scope.
	ReasonEventNotFound = "OUTBOX_EVENT_NOT_FOUND"
)

// Paging of ListDead.
const (
	defaultDeadPage = 100
	maxDeadPage     = 1000
	// MaxRequeueIDs bounds the ids of one requeue.
	MaxRequeueIDs = 1000
)

// DeadEvent is a dead-lettered event as an operator repairs it (the
// payload is left out: it may hold tenant data).
type DeadEvent struct {
	ID        string
	Topic     string
	Key       string
	TenantID  string
	Attempts  int
	CreatedAt time.Time
	DeadAt    time.Time
	LastError string
}

// DeadRequest asks for a page of dead events, newest dead first, of one
// topic when Topic is set.
type DeadRequest struct {
	Topic string
	page.Request
}

// ListDead lists a page of db's dead-lettered events, newest dead first
// (dead_at, then id, descending; the outbox_dead index serves it).
func ListDead(ctx context.Context, db *store.DB, req DeadRequest) ([]DeadEvent, string, error) {
	size, err := req.Size(defaultDeadPage, maxDeadPage)
	if err != nil {
		return nil, "", err
	}
	scope := "outbox.dead|" + req.Topic
	after, err := page.Decode(req.PageToken, scope)
	if err != nil {
		return nil, "", err
	}
	q := `SELECT id, topic, event_key, tenant_id, attempts, created_at, dead_at, last_error FROM outbox
		WHERE dead_at IS NOT NULL`
	var args []any
	if req.Topic != "" {
		q += " AND topic = ?"
		args = append(args, req.Topic)
	}
	if after != "" {
		at, id, ok := parseDeadCursor(after)
		if !ok {
			return nil, "", apierr.InvalidArgument(page.ReasonPageTokenInvalid, "page_token is not a token this API issued")
		}
		q += " AND (dead_at < ? OR (dead_at = ? AND id < ?))"
		args = append(args, at, at, id)
	}
	q += " ORDER BY dead_at DESC, id DESC LIMIT ?"
	args = append(args, size+1)
	rows, err := db.QueryContext(ctx, db.Rebind(q), args...)
	out, err := store.All(rows, err, func(r *sql.Rows) (DeadEvent, error) {
		var e DeadEvent
		err := r.Scan(&e.ID, &e.Topic, &e.Key, &e.TenantID, &e.Attempts, &e.CreatedAt, &e.DeadAt, &e.LastError)
		e.CreatedAt, e.DeadAt = e.CreatedAt.UTC(), e.DeadAt.UTC()
		return e, err
	})
	if err != nil {
		return nil, "", fmt.Errorf("outbox: list dead: %w", err)
	}
	out, next := page.Trim(out, size, func(e DeadEvent) string {
		return strconv.FormatInt(e.DeadAt.UnixMicro(), 10) + "/" + e.ID
	}, scope)
	return out, next, nil
}

func parseDeadCursor(s string) (time.Time, string, bool) {
	us, id, ok := strings.Cut(s, "/")
	n, err := strconv.ParseInt(us, 10, 64)
	if !ok || err != nil || id == "" {
		return time.Time{}, "", false
	}
	return time.UnixMicro(n).UTC(), id, true
}

// RequeueRequest picks the events to put back for the relay: those of IDs,
// or every one when All; either way only those matching the scope fields
// that are set.
type RequeueRequest struct {
	IDs []string
	All bool
	// Topic, TenantID and Key narrow the requeue (a service scoping it to
	// a tenant's own events, say); empty ones do not.
	Topic    string
	TenantID string
	Key      string
	// Pending also takes events not yet delivered and not dead (waiting
	// for a retry), unless a relay holds them: their next attempt is now,
	// with a fresh attempt budget. Otherwise only dead events are taken.
	Pending bool
}

// Requeue puts the events req picks back for the relay in one statement:
// dead_at cleared, attempts 0, next attempt now, last_error cleared. It
// returns how many it took; delivered events and unknown ids are left
// alone and not counted. Kick the relay afterwards.
func Requeue(ctx context.Context, db *store.DB, req RequeueRequest, now time.Time) (int64, error) {
	if req.All == (len(req.IDs) > 0) {
		return 0, apierr.InvalidArgument(ReasonRequeueInvalid, "give either ids or all=true")
	}
	if len(req.IDs) > MaxRequeueIDs {
		return 0, apierr.InvalidArgument(ReasonRequeueInvalid, "at most %d ids per requeue, got %d", MaxRequeueIDs, len(req.IDs))
	}
	now = now.UTC().Truncate(time.Microsecond)
	cond := "dead_at IS NOT NULL"
	args := []any{now}
	if req.Pending {
		cond = "delivered_at IS NULL AND (dead_at IS NOT NULL OR claimed_until IS NULL OR claimed_until <= ?)"
		args = append(args, now)
	}
	for _, f := range []struct{ col, v string }{{"topic", req.Topic}, {"tenant_id", req.TenantID}, {"event_key", req.Key}} {
		if f.v != "" {
			cond += " AND " + f.col + " = ?"
			args = append(args, f.v)
		}
	}
	if len(req.IDs) > 0 {
		cond += " AND id IN (" + strings.Repeat("?, ", len(req.IDs)-1) + "?)"
		for _, id := range req.IDs {
			args = append(args, id)
		}
	}
	res, err := db.ExecContext(ctx, db.Rebind(`UPDATE outbox
		SET dead_at = NULL, attempts = 0, next_attempt_at = ?, last_error = '', claimed_until = NULL
		WHERE `+cond), args...)
	if err != nil {
		return 0, fmt.Errorf("outbox: requeue: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("outbox: requeue: %w", err)
	}
	return n, nil
}
