-- Compliance webhook intake, PostgreSQL flavour. Keep in step with ../sqlite.

-- +goose Up
CREATE TABLE webhook_secrets (
	tenant_id  text NOT NULL CHECK (tenant_id <> ''),
	secret_id  text NOT NULL,
	value      text NOT NULL,
	created_at timestamptz NOT NULL,
	revoked_at timestamptz,
	PRIMARY KEY (tenant_id, secret_id)
);

CREATE TABLE webhook_replays (
	tenant_id  text NOT NULL CHECK (tenant_id <> ''),
	replay_key text NOT NULL,
	keep_until timestamptz NOT NULL,
	PRIMARY KEY (tenant_id, replay_key)
);
CREATE INDEX webhook_replays_expiry ON webhook_replays (tenant_id, keep_until);

ALTER TABLE webhook_secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_secrets FORCE ROW LEVEL SECURITY;
CREATE POLICY webhook_secrets_select ON webhook_secrets FOR SELECT
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)) OR (SELECT current_setting('app.all_tenants', true)) = 'on');
CREATE POLICY webhook_secrets_insert ON webhook_secrets FOR INSERT
	WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));
CREATE POLICY webhook_secrets_update ON webhook_secrets FOR UPDATE
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)))
	WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));
CREATE POLICY webhook_secrets_delete ON webhook_secrets FOR DELETE
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)));

ALTER TABLE webhook_replays ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_replays FORCE ROW LEVEL SECURITY;
CREATE POLICY webhook_replays_select ON webhook_replays FOR SELECT
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)) OR (SELECT current_setting('app.all_tenants', true)) = 'on');
CREATE POLICY webhook_replays_insert ON webhook_replays FOR INSERT
	WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));
CREATE POLICY webhook_replays_update ON webhook_replays FOR UPDATE
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)))
	WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));
CREATE POLICY webhook_replays_delete ON webhook_replays FOR DELETE
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)));

GRANT SELECT, INSERT, UPDATE ON webhook_secrets TO echopilot_app;
GRANT SELECT, INSERT, DELETE ON webhook_replays TO echopilot_app;

-- +goose Down
DROP TABLE webhook_replays;
DROP TABLE webhook_secrets;
