package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/services/queue/internal/domain"
)

// A job's attempt history lives in its own row (migration postgres/00008,
// sqlite/00006): the current attempt in the attempt_* columns beside the
// row's lease_token, attempts, worker_id and last_error, the earlier ones
// in attempt_log. Each statement that starts or ends an attempt already
// updates the row, so the history costs no statement and no row of its own.

// startAttemptSQL is the claim's SET fragment (one argument: the start):
// the attempt that ended goes to the log, and the new one starts.
func startAttemptSQL(d pstore.Dialect) string {
	micros := func(col string) string { return col }
	appendTo := func(obj string) string { return "json_insert(attempt_log, '$[#]', " + obj + ")" }
	object := "json_object"
	if d == pstore.Postgres {
		micros = func(col string) string { return "(extract(epoch FROM " + col + ") * 1000000)::bigint" }
		appendTo = func(obj string) string { return "attempt_log || jsonb_build_array(" + obj + ")" }
		object = "jsonb_build_object"
	}
	entry := object + `('token', lease_token, 'attempt', attempts, 'worker', worker_id,
		'started', ` + micros("attempt_started_at") + `, 'ended', ` + micros("attempt_ended_at") + `,
		'outcome', attempt_outcome, 'error', ` + attemptErrorSQL + `)`
	return `attempt_log = CASE WHEN attempt_started_at IS NULL THEN attempt_log ELSE ` + appendTo(entry) + ` END,
		attempt_started_at = ?, attempt_ended_at = NULL, attempt_outcome = 'running'`
}

// attemptErrorSQL is the current attempt's error: the job's last error is
// its own when it failed or its lease ran out.
const attemptErrorSQL = "CASE WHEN attempt_outcome IN ('failed', 'lease_expired') THEN last_error ELSE '' END"

// endAttemptSQL is the SET fragment ending the current attempt with
// outcome (one argument: the end).
func endAttemptSQL(outcome domain.Outcome) string {
	return "attempt_ended_at = ?, attempt_outcome = '" + string(outcome) + "'"
}

// attemptEntry is one earlier attempt in attempt_log.
type attemptEntry struct {
	Token   int64  `json:"token"`
	Attempt int    `json:"attempt"`
	Worker  string `json:"worker"`
	Started int64  `json:"started"`
	Ended   *int64 `json:"ended"`
	Outcome string `json:"outcome"`
	Error   string `json:"error"`
}

func (e attemptEntry) attempt(jobID string) domain.Attempt {
	a := domain.Attempt{
		JobID: jobID, LeaseToken: e.Token, Number: e.Attempt, WorkerID: e.Worker,
		StartedAt: time.UnixMicro(e.Started).UTC(), Outcome: domain.Outcome(e.Outcome), Error: e.Error,
	}
	if e.Ended != nil {
		a.EndedAt = time.UnixMicro(*e.Ended).UTC()
	}
	return a
}

// ListAttempts reads a page of one job's attempts, oldest first.
func (s *Store) ListAttempts(ctx context.Context, f domain.AttemptFilter) ([]domain.Attempt, error) {
	var (
		log     string
		current domain.Attempt
		started sql.NullTime
		ended   sql.NullTime
		outcome string
		n       int64
	)
	err := s.db.InTenantReadTx(ctx, f.TenantID, func(tx *sql.Tx) error {
		err := s.stmts.QueryRow(ctx, tx, s.db.Rebind(`
			SELECT id, lease_token, attempts, worker_id, attempt_started_at, attempt_ended_at, attempt_outcome,
				`+attemptErrorSQL+`, attempt_log
			FROM jobs WHERE tenant_id = ? AND id = ?`), f.TenantID, f.JobID).
			Scan(&current.JobID, &current.LeaseToken, &n, &current.WorkerID, &started, &ended, &outcome, &current.Error, &log)
		if errors.Is(err, sql.ErrNoRows) {
			return domain.ErrNotFound
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list attempts of job %s: %w", f.JobID, err)
	}
	var entries []attemptEntry
	if err := json.Unmarshal([]byte(log), &entries); err != nil {
		return nil, fmt.Errorf("list attempts of job %s: decode history: %w", f.JobID, err)
	}
	all := make([]domain.Attempt, 0, len(entries)+1)
	for _, e := range entries {
		all = append(all, e.attempt(f.JobID))
	}
	if started.Valid {
		current.Number, current.StartedAt, current.Outcome = int(n), started.Time, domain.Outcome(outcome)
		if ended.Valid {
			current.EndedAt = ended.Time
		}
		all = append(all, current)
	}
	out := make([]domain.Attempt, 0, min(len(all), f.Limit))
	for _, a := range all {
		if a.LeaseToken > f.AfterToken && len(out) < f.Limit {
			out = append(out, a)
		}
	}
	return out, nil
}
