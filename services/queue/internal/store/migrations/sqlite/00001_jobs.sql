-- Queue schema, SQLite flavour. Keep in step with ../postgres.
-- Times are TIMESTAMP columns holding unix microseconds (see platform/store).

-- +goose Up
CREATE TABLE jobs (
	-- The rowid, in insertion order: FIFO within a priority is by run_at,
	-- then seq. A deleted maximum may be reused, which keeps the order
	-- among the jobs that exist.
	seq                 INTEGER PRIMARY KEY,
	tenant_id           TEXT NOT NULL CHECK (tenant_id <> ''),
	id                  TEXT NOT NULL,
	type                TEXT NOT NULL,
	-- 0 critical, 1 high, 2 normal, 3 low: claims order by it ascending.
	prio                INTEGER NOT NULL CHECK (prio BETWEEN 0 AND 3),
	state               TEXT NOT NULL CHECK (state IN ('queued', 'processing', 'completed', 'failed', 'dead', 'cancelled')),
	payload             TEXT NOT NULL,
	idempotency_key     TEXT NOT NULL DEFAULT '',
	attempts            INTEGER NOT NULL DEFAULT 0,
	max_attempts        INTEGER NOT NULL CHECK (max_attempts > 0),
	run_at              TIMESTAMP NOT NULL,
	created_at          TIMESTAMP NOT NULL,
	updated_at          TIMESTAMP NOT NULL,
	-- The latest lease: its owner, fencing token and length. The token only
	-- grows, so a worker holding an older one is refused.
	worker_id           TEXT NOT NULL DEFAULT '',
	lease_token         INTEGER NOT NULL DEFAULT 0,
	lease_seconds       INTEGER NOT NULL DEFAULT 0,
	-- Set only while processing.
	lease_expires_at    TIMESTAMP,
	result              TEXT,
	usage_model         TEXT NOT NULL DEFAULT '',
	usage_input_tokens  INTEGER NOT NULL DEFAULT 0,
	usage_output_tokens INTEGER NOT NULL DEFAULT 0,
	usage_duration_ms   INTEGER NOT NULL DEFAULT 0,
	last_error          TEXT NOT NULL DEFAULT '',
	UNIQUE (tenant_id, id)
);

-- Claims walk this in order and stop after the batch: it holds only
-- runnable jobs, so its size is the backlog, not the table.
CREATE INDEX jobs_runnable ON jobs (tenant_id, prio, run_at, seq) WHERE state IN ('queued', 'failed');
-- Jobs in flight, by lease end: expired leases are found without a scan.
-- Deliberately not led by tenant_id: the reaper reads it across tenants by
-- lease end, and a tenant's expired leases are the few rows of a range. A
-- (tenant_id, …) index here would also match every single-job lookup of a
-- processing job (heartbeat, complete) and, with stale statistics, be
-- scanned whole for it instead of the primary key.
CREATE INDEX jobs_leased ON jobs (lease_expires_at) WHERE state = 'processing';
-- Retention deletes from here.
CREATE INDEX jobs_finished ON jobs (tenant_id, updated_at) WHERE state IN ('completed', 'dead', 'cancelled');
-- Listing by state, newest first.
CREATE INDEX jobs_state ON jobs (tenant_id, state, id);
CREATE UNIQUE INDEX jobs_idempotency ON jobs (tenant_id, idempotency_key) WHERE idempotency_key <> '';

-- +goose Down
DROP TABLE jobs;
