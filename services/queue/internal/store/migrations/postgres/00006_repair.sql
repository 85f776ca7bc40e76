-- Operator repairs (issue 17): each job's attempt history, paused job
-- types, and who retried or cancelled a job. Keep in step with ../sqlite.
-- Row-level security as on jobs (see 00001_jobs.sql).

-- +goose Up
-- One row per lease of a job, written in the transaction that leases it
-- (started_at) and in the one that ends it: complete, fail, lease expiry or
-- cancel (ended_at, outcome, error). Deleted with the job. Jobs leased
-- before this migration have no rows for those attempts.
CREATE TABLE job_attempts (
	tenant_id   text NOT NULL CHECK (tenant_id <> ''),
	job_id      text NOT NULL,
	-- The lease's fencing token: unique per job, growing with each lease.
	lease_token bigint NOT NULL,
	-- The job's attempt count when this lease started.
	attempt     integer NOT NULL,
	worker_id   text NOT NULL,
	started_at  timestamptz NOT NULL,
	ended_at    timestamptz,
	outcome     text NOT NULL DEFAULT 'running'
		CHECK (outcome IN ('running', 'completed', 'failed', 'lease_expired', 'cancelled')),
	error       text NOT NULL DEFAULT '',
	PRIMARY KEY (tenant_id, job_id, lease_token)
);

-- Job types a tenant paused: lease calls skip their jobs.
CREATE TABLE paused_job_types (
	tenant_id text NOT NULL CHECK (tenant_id <> ''),
	job_type  text NOT NULL,
	paused_at timestamptz NOT NULL,
	paused_by text NOT NULL,
	PRIMARY KEY (tenant_id, job_type)
);

-- The subject of the latest retry and of the cancellation ('' for none).
ALTER TABLE jobs ADD COLUMN retried_by text NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN retried_at timestamptz;
ALTER TABLE jobs ADD COLUMN cancelled_by text NOT NULL DEFAULT '';

ALTER TABLE job_attempts ENABLE ROW LEVEL SECURITY;
ALTER TABLE job_attempts FORCE ROW LEVEL SECURITY;
CREATE POLICY job_attempts_select ON job_attempts FOR SELECT
	USING (tenant_id = current_setting('app.tenant_id', true) OR current_setting('app.all_tenants', true) = 'on');
CREATE POLICY job_attempts_insert ON job_attempts FOR INSERT
	WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY job_attempts_update ON job_attempts FOR UPDATE
	USING (tenant_id = current_setting('app.tenant_id', true))
	WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY job_attempts_delete ON job_attempts FOR DELETE
	USING (tenant_id = current_setting('app.tenant_id', true));

GRANT SELECT, INSERT, UPDATE, DELETE ON job_attempts TO echopilot_app;

ALTER TABLE paused_job_types ENABLE ROW LEVEL SECURITY;
ALTER TABLE paused_job_types FORCE ROW LEVEL SECURITY;
CREATE POLICY paused_job_types_select ON paused_job_types FOR SELECT
	USING (tenant_id = current_setting('app.tenant_id', true) OR current_setting('app.all_tenants', true) = 'on');
CREATE POLICY paused_job_types_insert ON paused_job_types FOR INSERT
	WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY paused_job_types_update ON paused_job_types FOR UPDATE
	USING (tenant_id = current_setting('app.tenant_id', true))
	WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY paused_job_types_delete ON paused_job_types FOR DELETE
	USING (tenant_id = current_setting('app.tenant_id', true));

GRANT SELECT, INSERT, UPDATE, DELETE ON paused_job_types TO echopilot_app;

-- +goose Down
ALTER TABLE jobs DROP COLUMN cancelled_by;
ALTER TABLE jobs DROP COLUMN retried_at;
ALTER TABLE jobs DROP COLUMN retried_by;
DROP TABLE paused_job_types;
DROP TABLE job_attempts;
