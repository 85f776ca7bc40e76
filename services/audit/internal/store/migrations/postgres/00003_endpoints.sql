-- Outbound webhooks, PostgreSQL flavour. Keep in step with ../sqlite.

-- +goose Up
CREATE TABLE webhook_endpoints (
	tenant_id   text NOT NULL CHECK (tenant_id <> ''),
	endpoint_id text NOT NULL,
	url         text NOT NULL,
	secret      text NOT NULL,
	created_at  timestamptz NOT NULL,
	deleted_at  timestamptz,
	PRIMARY KEY (tenant_id, endpoint_id)
);

CREATE TABLE delivery_attempts (
	tenant_id   text NOT NULL CHECK (tenant_id <> ''),
	delivery_id text NOT NULL,
	attempt     integer NOT NULL,
	endpoint_id text NOT NULL,
	seq         bigint NOT NULL,
	at          timestamptz NOT NULL,
	outcome     text NOT NULL,
	status_code integer NOT NULL,
	error       text NOT NULL,
	PRIMARY KEY (tenant_id, delivery_id, attempt)
);
CREATE INDEX delivery_attempts_at ON delivery_attempts (tenant_id, at);

ALTER TABLE webhook_endpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_endpoints FORCE ROW LEVEL SECURITY;
CREATE POLICY webhook_endpoints_select ON webhook_endpoints FOR SELECT
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)) OR (SELECT current_setting('app.all_tenants', true)) = 'on');
CREATE POLICY webhook_endpoints_insert ON webhook_endpoints FOR INSERT
	WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));
CREATE POLICY webhook_endpoints_update ON webhook_endpoints FOR UPDATE
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)))
	WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));
CREATE POLICY webhook_endpoints_delete ON webhook_endpoints FOR DELETE
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)));

ALTER TABLE delivery_attempts ENABLE ROW LEVEL SECURITY;
ALTER TABLE delivery_attempts FORCE ROW LEVEL SECURITY;
CREATE POLICY delivery_attempts_select ON delivery_attempts FOR SELECT
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)) OR (SELECT current_setting('app.all_tenants', true)) = 'on');
CREATE POLICY delivery_attempts_insert ON delivery_attempts FOR INSERT
	WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));
CREATE POLICY delivery_attempts_update ON delivery_attempts FOR UPDATE
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)))
	WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));
CREATE POLICY delivery_attempts_delete ON delivery_attempts FOR DELETE
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)));

GRANT SELECT, INSERT, UPDATE ON webhook_endpoints TO echopilot_app;
GRANT SELECT, INSERT ON delivery_attempts TO echopilot_app;

-- +goose Down
DROP TABLE delivery_attempts;
DROP TABLE webhook_endpoints;
