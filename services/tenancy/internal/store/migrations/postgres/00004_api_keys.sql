-- API keys of tenants' machines (domain/apikeys.go): the SHA-256 of each
-- secret, never the secret. Keep in step with ../sqlite. Row-level security
-- as on tenants (00001_init.sql); the identity layer's lookup by key id
-- reads across tenants (app.all_tenants), through the unique key_id.

-- +goose Up
CREATE TABLE api_keys (
	tenant_id           text NOT NULL CHECK (tenant_id <> ''),
	key_id              text NOT NULL UNIQUE,
	name                text NOT NULL,
	roles               text NOT NULL,
	read_only           boolean NOT NULL,
	created_by          text NOT NULL,
	created_at          timestamptz NOT NULL,
	expires_at          timestamptz,
	last_used_at        timestamptz,
	rotated_at          timestamptz,
	secret_hash         bytea NOT NULL,
	previous_hash       bytea,
	previous_expires_at timestamptz,
	revoked_at          timestamptz,
	PRIMARY KEY (tenant_id, key_id)
);

ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY api_keys_select ON api_keys FOR SELECT
	USING (tenant_id = current_setting('app.tenant_id', true) OR current_setting('app.all_tenants', true) = 'on');
CREATE POLICY api_keys_insert ON api_keys FOR INSERT
	WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY api_keys_update ON api_keys FOR UPDATE
	USING (tenant_id = current_setting('app.tenant_id', true))
	WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY api_keys_delete ON api_keys FOR DELETE
	USING (tenant_id = current_setting('app.tenant_id', true));

GRANT SELECT, INSERT, UPDATE, DELETE ON api_keys TO echopilot_app;

-- +goose Down
DROP TABLE api_keys;
