-- Audit schema, PostgreSQL flavour. Keep in step with ../sqlite.
--
-- Row-level security (ENABLE + FORCE) under the store's own WHERE tenant_id
-- filters; policies read the settings through scalar subqueries so they are
-- evaluated once per statement, not per row. The service connects as a
-- member of echopilot_app, which owns nothing.
--
-- The service's role may not UPDATE or DELETE entries, nodes or
-- checkpoints: the log is append-only for the application itself (only the
-- head moves). Tampering therefore needs the owner's credentials, and the
-- verification detects it.

-- +goose Up
CREATE TABLE audit_entries (
	tenant_id  text NOT NULL CHECK (tenant_id <> ''),
	seq        bigint NOT NULL CHECK (seq > 0),
	ts         timestamptz NOT NULL,
	event_type text NOT NULL,
	user_name  text NOT NULL,
	action     text NOT NULL,
	resource   text NOT NULL,
	details    text NOT NULL,
	severity   text NOT NULL,
	prev_hash  text NOT NULL,
	hash       text NOT NULL,
	PRIMARY KEY (tenant_id, seq)
);

CREATE TABLE audit_nodes (
	tenant_id text NOT NULL CHECK (tenant_id <> ''),
	level     smallint NOT NULL,
	idx       bigint NOT NULL,
	hash      bytea NOT NULL,
	PRIMARY KEY (tenant_id, level, idx)
);

CREATE TABLE audit_heads (
	tenant_id text NOT NULL PRIMARY KEY CHECK (tenant_id <> ''),
	size      bigint NOT NULL,
	last_hash text NOT NULL,
	last_ts   timestamptz NOT NULL
);

CREATE TABLE audit_checkpoints (
	tenant_id text NOT NULL CHECK (tenant_id <> ''),
	size      bigint NOT NULL,
	note      text NOT NULL,
	PRIMARY KEY (tenant_id, size)
);

ALTER TABLE audit_entries ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_entries FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_entries_select ON audit_entries FOR SELECT
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)) OR (SELECT current_setting('app.all_tenants', true)) = 'on');
CREATE POLICY audit_entries_insert ON audit_entries FOR INSERT
	WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));
CREATE POLICY audit_entries_update ON audit_entries FOR UPDATE
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)))
	WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));
CREATE POLICY audit_entries_delete ON audit_entries FOR DELETE
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)));

ALTER TABLE audit_nodes ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_nodes FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_nodes_select ON audit_nodes FOR SELECT
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)) OR (SELECT current_setting('app.all_tenants', true)) = 'on');
CREATE POLICY audit_nodes_insert ON audit_nodes FOR INSERT
	WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));
CREATE POLICY audit_nodes_update ON audit_nodes FOR UPDATE
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)))
	WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));
CREATE POLICY audit_nodes_delete ON audit_nodes FOR DELETE
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)));

ALTER TABLE audit_heads ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_heads FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_heads_select ON audit_heads FOR SELECT
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)) OR (SELECT current_setting('app.all_tenants', true)) = 'on');
CREATE POLICY audit_heads_insert ON audit_heads FOR INSERT
	WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));
CREATE POLICY audit_heads_update ON audit_heads FOR UPDATE
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)))
	WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));
CREATE POLICY audit_heads_delete ON audit_heads FOR DELETE
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)));

ALTER TABLE audit_checkpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_checkpoints FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_checkpoints_select ON audit_checkpoints FOR SELECT
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)) OR (SELECT current_setting('app.all_tenants', true)) = 'on');
CREATE POLICY audit_checkpoints_insert ON audit_checkpoints FOR INSERT
	WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));
CREATE POLICY audit_checkpoints_update ON audit_checkpoints FOR UPDATE
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)))
	WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));
CREATE POLICY audit_checkpoints_delete ON audit_checkpoints FOR DELETE
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)));

GRANT SELECT, INSERT ON audit_entries, audit_nodes, audit_checkpoints TO echopilot_app;
GRANT SELECT, INSERT, UPDATE ON audit_heads TO echopilot_app;

-- +goose Down
DROP TABLE audit_checkpoints;
DROP TABLE audit_heads;
DROP TABLE audit_nodes;
DROP TABLE audit_entries;
