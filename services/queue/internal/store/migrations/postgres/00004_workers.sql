-- The worker registry: each worker that leased or heartbeated, per tenant,
-- written at most every few seconds per worker (domain/workers.go). Keep in
-- step with ../sqlite. Row-level security as on jobs (see 00001_jobs.sql).

-- +goose Up
CREATE TABLE workers (
	tenant_id   text NOT NULL CHECK (tenant_id <> ''),
	worker_id   text NOT NULL,
	version     text NOT NULL DEFAULT '',
	host        text NOT NULL DEFAULT '',
	concurrency integer NOT NULL DEFAULT 0,
	first_seen  timestamptz NOT NULL,
	last_seen   timestamptz NOT NULL,
	PRIMARY KEY (tenant_id, worker_id)
);

-- The stale gauge counts, and retention deletes, by last_seen across
-- tenants.
CREATE INDEX workers_last_seen ON workers (last_seen);

ALTER TABLE workers ENABLE ROW LEVEL SECURITY;
ALTER TABLE workers FORCE ROW LEVEL SECURITY;
CREATE POLICY workers_select ON workers FOR SELECT
	USING (tenant_id = current_setting('app.tenant_id', true) OR current_setting('app.all_tenants', true) = 'on');
CREATE POLICY workers_insert ON workers FOR INSERT
	WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY workers_update ON workers FOR UPDATE
	USING (tenant_id = current_setting('app.tenant_id', true))
	WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY workers_delete ON workers FOR DELETE
	USING (tenant_id = current_setting('app.tenant_id', true));

GRANT SELECT, INSERT, UPDATE, DELETE ON workers TO echopilot_app;

-- +goose Down
DROP TABLE workers;
