-- A job's attempt history moves into the job's own row (issue 17); see
-- ../postgres/00008_attempts_in_row.sql. Times are unix microseconds (see
-- platform/store).

-- +goose Up
ALTER TABLE jobs ADD COLUMN attempt_started_at TIMESTAMP;
ALTER TABLE jobs ADD COLUMN attempt_ended_at TIMESTAMP;
ALTER TABLE jobs ADD COLUMN attempt_outcome TEXT NOT NULL DEFAULT ''
	CHECK (attempt_outcome IN ('', 'running', 'completed', 'failed', 'lease_expired', 'cancelled'));
ALTER TABLE jobs ADD COLUMN attempt_log TEXT NOT NULL DEFAULT '[]';

UPDATE jobs SET (attempt_started_at, attempt_ended_at, attempt_outcome) = (
	SELECT a.started_at, a.ended_at, a.outcome FROM job_attempts a
	WHERE a.tenant_id = jobs.tenant_id AND a.job_id = jobs.id AND a.lease_token = jobs.lease_token)
	WHERE EXISTS (SELECT 1 FROM job_attempts a
		WHERE a.tenant_id = jobs.tenant_id AND a.job_id = jobs.id AND a.lease_token = jobs.lease_token);

UPDATE jobs SET attempt_log = (
	SELECT json_group_array(json_object(
		'token', lease_token, 'attempt', attempt, 'worker', worker_id, 'started', started_at,
		'ended', ended_at, 'outcome', outcome, 'error', error))
	FROM (SELECT * FROM job_attempts a
		WHERE a.tenant_id = jobs.tenant_id AND a.job_id = jobs.id AND a.lease_token < jobs.lease_token
		ORDER BY a.lease_token))
	WHERE EXISTS (SELECT 1 FROM job_attempts a
		WHERE a.tenant_id = jobs.tenant_id AND a.job_id = jobs.id AND a.lease_token < jobs.lease_token);

DROP TABLE job_attempts;

-- +goose Down
CREATE TABLE job_attempts (
	tenant_id   TEXT NOT NULL CHECK (tenant_id <> ''),
	job_id      TEXT NOT NULL,
	lease_token INTEGER NOT NULL,
	attempt     INTEGER NOT NULL,
	worker_id   TEXT NOT NULL,
	started_at  TIMESTAMP NOT NULL,
	ended_at    TIMESTAMP,
	outcome     TEXT NOT NULL DEFAULT 'running'
		CHECK (outcome IN ('running', 'completed', 'failed', 'lease_expired', 'cancelled')),
	error       TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (tenant_id, job_id, lease_token)
) WITHOUT ROWID;
INSERT INTO job_attempts (tenant_id, job_id, lease_token, attempt, worker_id, started_at, ended_at, outcome, error)
	SELECT j.tenant_id, j.id, e.value ->> 'token', e.value ->> 'attempt', e.value ->> 'worker',
		e.value ->> 'started', e.value ->> 'ended', e.value ->> 'outcome', e.value ->> 'error'
	FROM jobs j, json_each(j.attempt_log) e;
INSERT INTO job_attempts (tenant_id, job_id, lease_token, attempt, worker_id, started_at, ended_at, outcome, error)
	SELECT tenant_id, id, lease_token, attempts, worker_id, attempt_started_at, attempt_ended_at, attempt_outcome,
		CASE WHEN attempt_outcome IN ('failed', 'lease_expired') THEN last_error ELSE '' END
	FROM jobs WHERE attempt_started_at IS NOT NULL;
ALTER TABLE jobs DROP COLUMN attempt_log;
ALTER TABLE jobs DROP COLUMN attempt_outcome;
ALTER TABLE jobs DROP COLUMN attempt_ended_at;
ALTER TABLE jobs DROP COLUMN attempt_started_at;
