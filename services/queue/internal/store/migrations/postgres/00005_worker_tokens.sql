-- Worker tokens minted by CreateWorkerToken (domain/workertokens.go): the
-- record of each, never the token. Every replica reads the unexpired ones
-- every few seconds to refuse revoked tokens. Keep in step with ../sqlite.
-- Row-level security as on jobs (see 00001_jobs.sql).

-- +goose Up
CREATE TABLE worker_tokens (
	tenant_id   text NOT NULL CHECK (tenant_id <> ''),
	id          text NOT NULL,
	name        text NOT NULL,
	ttl_seconds bigint NOT NULL CHECK (ttl_seconds > 0),
	created     timestamptz NOT NULL,
	expires     timestamptz NOT NULL,
	max_expires timestamptz NOT NULL,
	revoked_at  timestamptz,
	PRIMARY KEY (tenant_id, id)
);

-- The revocation sync reads, and retention deletes, by max_expires across
-- tenants.
CREATE INDEX worker_tokens_max_expires ON worker_tokens (max_expires);

ALTER TABLE worker_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE worker_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY worker_tokens_select ON worker_tokens FOR SELECT
	USING (tenant_id = current_setting('app.tenant_id', true) OR current_setting('app.all_tenants', true) = 'on');
CREATE POLICY worker_tokens_insert ON worker_tokens FOR INSERT
	WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY worker_tokens_update ON worker_tokens FOR UPDATE
	USING (tenant_id = current_setting('app.tenant_id', true))
	WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY worker_tokens_delete ON worker_tokens FOR DELETE
	USING (tenant_id = current_setting('app.tenant_id', true));

GRANT SELECT, INSERT, UPDATE, DELETE ON worker_tokens TO echopilot_app;

-- +goose Down
DROP TABLE worker_tokens;
