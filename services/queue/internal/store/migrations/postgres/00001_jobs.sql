-- Queue schema, PostgreSQL flavour. Keep in step with ../sqlite.
--
-- Row-level security (ENABLE + FORCE, so the owner is bound too) is defence
-- in depth under the store's own WHERE tenant_id = ? filters. Transactions
-- set app.tenant_id (platform/store InTenantTx); the reaper's and the
-- retention job's cross-tenant reads set app.all_tenants, which only SELECT
-- honours. With neither set no row is visible. The service connects as a
-- member of echopilot_app, which owns nothing and only gets the DML below.

-- +goose Up
CREATE TABLE jobs (
	tenant_id           text NOT NULL CHECK (tenant_id <> ''),
	id                  text NOT NULL,
	-- Insertion order: FIFO within a priority is by run_at, then seq.
	seq                 bigint GENERATED ALWAYS AS IDENTITY,
	type                text NOT NULL,
	-- 0 critical, 1 high, 2 normal, 3 low: claims order by it ascending.
	prio                smallint NOT NULL CHECK (prio BETWEEN 0 AND 3),
	state               text NOT NULL CHECK (state IN ('queued', 'processing', 'completed', 'failed', 'dead', 'cancelled')),
	payload             text NOT NULL,
	idempotency_key     text NOT NULL DEFAULT '',
	attempts            integer NOT NULL DEFAULT 0,
	max_attempts        integer NOT NULL CHECK (max_attempts > 0),
	run_at              timestamptz NOT NULL,
	created_at          timestamptz NOT NULL,
	updated_at          timestamptz NOT NULL,
	-- The latest lease: its owner, fencing token and length. The token only
	-- grows, so a worker holding an older one is refused.
	worker_id           text NOT NULL DEFAULT '',
	lease_token         bigint NOT NULL DEFAULT 0,
	lease_seconds       integer NOT NULL DEFAULT 0,
	-- Set only while processing.
	lease_expires_at    timestamptz,
	result              text,
	usage_model         text NOT NULL DEFAULT '',
	usage_input_tokens  bigint NOT NULL DEFAULT 0,
	usage_output_tokens bigint NOT NULL DEFAULT 0,
	usage_duration_ms   bigint NOT NULL DEFAULT 0,
	last_error          text NOT NULL DEFAULT '',
	PRIMARY KEY (tenant_id, id)
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

ALTER TABLE jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE jobs FORCE ROW LEVEL SECURITY;
CREATE POLICY jobs_select ON jobs FOR SELECT
	USING (tenant_id = current_setting('app.tenant_id', true) OR current_setting('app.all_tenants', true) = 'on');
CREATE POLICY jobs_insert ON jobs FOR INSERT
	WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY jobs_update ON jobs FOR UPDATE
	USING (tenant_id = current_setting('app.tenant_id', true))
	WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY jobs_delete ON jobs FOR DELETE
	USING (tenant_id = current_setting('app.tenant_id', true));

GRANT SELECT, INSERT, UPDATE, DELETE ON jobs TO echopilot_app;

-- +goose Down
DROP TABLE jobs;
