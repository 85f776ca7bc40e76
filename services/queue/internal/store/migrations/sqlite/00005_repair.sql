-- Operator repairs (issue 17): each job's attempt history, paused job
-- types, and who retried or cancelled a job. Keep in step with ../postgres.
-- Times are unix microseconds (see platform/store).

-- +goose Up
-- One row per lease of a job, written in the transaction that leases it
-- (started_at) and in the one that ends it: complete, fail, lease expiry or
-- cancel (ended_at, outcome, error). Deleted with the job. Jobs leased
-- before this migration have no rows for those attempts.
CREATE TABLE job_attempts (
	tenant_id   TEXT NOT NULL CHECK (tenant_id <> ''),
	job_id      TEXT NOT NULL,
	-- The lease's fencing token: unique per job, growing with each lease.
	lease_token INTEGER NOT NULL,
	-- The job's attempt count when this lease started.
	attempt     INTEGER NOT NULL,
	worker_id   TEXT NOT NULL,
	started_at  TIMESTAMP NOT NULL,
	ended_at    TIMESTAMP,
	outcome     TEXT NOT NULL DEFAULT 'running'
		CHECK (outcome IN ('running', 'completed', 'failed', 'lease_expired', 'cancelled')),
	error       TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (tenant_id, job_id, lease_token)
) WITHOUT ROWID;

-- Job types a tenant paused: lease calls skip their jobs.
CREATE TABLE paused_job_types (
	tenant_id TEXT NOT NULL CHECK (tenant_id <> ''),
	job_type  TEXT NOT NULL,
	paused_at TIMESTAMP NOT NULL,
	paused_by TEXT NOT NULL,
	PRIMARY KEY (tenant_id, job_type)
) WITHOUT ROWID;

-- The subject of the latest retry and of the cancellation ('' for none).
ALTER TABLE jobs ADD COLUMN retried_by TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN retried_at TIMESTAMP;
ALTER TABLE jobs ADD COLUMN cancelled_by TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE jobs DROP COLUMN cancelled_by;
ALTER TABLE jobs DROP COLUMN retried_at;
ALTER TABLE jobs DROP COLUMN retried_by;
DROP TABLE paused_job_types;
DROP TABLE job_attempts;
