-- A job's attempt history moves into the job's own row (issue 17): the
-- lease and the completion update that row anyway, where an attempt row
-- beside it cost PostgreSQL a third of its jobs/s (BENCHMARKS.md). Keep in
-- step with ../sqlite.

-- +goose Up
-- The current (latest) attempt: its lease token, attempt number and worker
-- are the row's lease_token, attempts and worker_id; its error is the row's
-- last_error when it failed or its lease expired. attempt_started_at is
-- NULL when the job has no recorded attempt. The next lease appends it to
-- attempt_log, the earlier attempts oldest first, as JSON objects with
-- times in unix microseconds (lease.go's attemptEntry reads them).
ALTER TABLE jobs ADD COLUMN attempt_started_at timestamptz;
ALTER TABLE jobs ADD COLUMN attempt_ended_at timestamptz;
ALTER TABLE jobs ADD COLUMN attempt_outcome text NOT NULL DEFAULT ''
	CHECK (attempt_outcome IN ('', 'running', 'completed', 'failed', 'lease_expired', 'cancelled'));
ALTER TABLE jobs ADD COLUMN attempt_log jsonb NOT NULL DEFAULT '[]';

-- The owner moves the rows of every tenant: row security would hide them.
ALTER TABLE jobs NO FORCE ROW LEVEL SECURITY;
ALTER TABLE job_attempts NO FORCE ROW LEVEL SECURITY;

UPDATE jobs j SET attempt_started_at = a.started_at, attempt_ended_at = a.ended_at, attempt_outcome = a.outcome
	FROM job_attempts a
	WHERE a.tenant_id = j.tenant_id AND a.job_id = j.id AND a.lease_token = j.lease_token;

UPDATE jobs j SET attempt_log = l.log
	FROM (
		SELECT a.tenant_id, a.job_id, jsonb_agg(jsonb_build_object(
			'token', a.lease_token, 'attempt', a.attempt, 'worker', a.worker_id,
			'started', (extract(epoch FROM a.started_at) * 1000000)::bigint,
			'ended', (extract(epoch FROM a.ended_at) * 1000000)::bigint,
			'outcome', a.outcome, 'error', a.error) ORDER BY a.lease_token) AS log
		FROM job_attempts a JOIN jobs k ON k.tenant_id = a.tenant_id AND k.id = a.job_id
		WHERE a.lease_token < k.lease_token
		GROUP BY a.tenant_id, a.job_id
	) l
	WHERE l.tenant_id = j.tenant_id AND l.job_id = j.id;

ALTER TABLE jobs FORCE ROW LEVEL SECURITY;
DROP TABLE job_attempts;

-- +goose Down
CREATE TABLE job_attempts (
	tenant_id   text NOT NULL CHECK (tenant_id <> ''),
	job_id      text NOT NULL,
	lease_token bigint NOT NULL,
	attempt     integer NOT NULL,
	worker_id   text NOT NULL,
	started_at  timestamptz NOT NULL,
	ended_at    timestamptz,
	outcome     text NOT NULL DEFAULT 'running'
		CHECK (outcome IN ('running', 'completed', 'failed', 'lease_expired', 'cancelled')),
	error       text NOT NULL DEFAULT '',
	PRIMARY KEY (tenant_id, job_id, lease_token)
);
ALTER TABLE jobs NO FORCE ROW LEVEL SECURITY;
INSERT INTO job_attempts (tenant_id, job_id, lease_token, attempt, worker_id, started_at, ended_at, outcome, error)
	SELECT j.tenant_id, j.id, (e->>'token')::bigint, (e->>'attempt')::int, e->>'worker',
		to_timestamp((e->>'started')::bigint / 1000000.0), to_timestamp((e->>'ended')::bigint / 1000000.0),
		e->>'outcome', e->>'error'
	FROM jobs j, jsonb_array_elements(j.attempt_log) e;
INSERT INTO job_attempts (tenant_id, job_id, lease_token, attempt, worker_id, started_at, ended_at, outcome, error)
	SELECT tenant_id, id, lease_token, attempts, worker_id, attempt_started_at, attempt_ended_at, attempt_outcome,
		CASE WHEN attempt_outcome IN ('failed', 'lease_expired') THEN last_error ELSE '' END
	FROM jobs WHERE attempt_started_at IS NOT NULL;
ALTER TABLE jobs FORCE ROW LEVEL SECURITY;
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
ALTER TABLE jobs DROP COLUMN attempt_log;
ALTER TABLE jobs DROP COLUMN attempt_outcome;
ALTER TABLE jobs DROP COLUMN attempt_ended_at;
ALTER TABLE jobs DROP COLUMN attempt_started_at;
