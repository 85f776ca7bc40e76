-- +goose Up
CREATE TABLE items (
	tenant_id text NOT NULL,
	id        bigint NOT NULL,
	name      text,
	data      bytea,
	at        timestamptz,
	secret    text NOT NULL DEFAULT '',
	PRIMARY KEY (tenant_id, id)
);
CREATE TABLE links (
	tenant_id        text NOT NULL,
	a                text NOT NULL,
	b                text NOT NULL,
	target_tenant_id text NOT NULL,
	PRIMARY KEY (tenant_id, a, b)
);
CREATE TABLE ledger (
	tenant_id text NOT NULL,
	id        text NOT NULL,
	payer     text NOT NULL,
	paid_at   timestamptz,
	PRIMARY KEY (tenant_id, id)
);
CREATE TABLE registry (tenant_id text NOT NULL PRIMARY KEY, name text NOT NULL);
CREATE TABLE skipped (tenant_id text NOT NULL, id text NOT NULL, PRIMARY KEY (tenant_id, id));
CREATE TABLE counters (tenant_id text NOT NULL PRIMARY KEY, n bigint NOT NULL);
CREATE TABLE plain (id text NOT NULL PRIMARY KEY, note text NOT NULL);

ALTER TABLE items ENABLE ROW LEVEL SECURITY;
ALTER TABLE items FORCE ROW LEVEL SECURITY;
CREATE POLICY items_select ON items FOR SELECT
	USING (tenant_id = current_setting('app.tenant_id', true) OR current_setting('app.all_tenants', true) = 'on');
CREATE POLICY items_insert ON items FOR INSERT WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY items_update ON items FOR UPDATE USING (tenant_id = current_setting('app.tenant_id', true))
	WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY items_delete ON items FOR DELETE USING (tenant_id = current_setting('app.tenant_id', true));
ALTER TABLE links ENABLE ROW LEVEL SECURITY;
ALTER TABLE links FORCE ROW LEVEL SECURITY;
CREATE POLICY links_select ON links FOR SELECT
	USING (tenant_id = current_setting('app.tenant_id', true) OR current_setting('app.all_tenants', true) = 'on');
CREATE POLICY links_insert ON links FOR INSERT WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY links_update ON links FOR UPDATE USING (tenant_id = current_setting('app.tenant_id', true))
	WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY links_delete ON links FOR DELETE USING (tenant_id = current_setting('app.tenant_id', true));
ALTER TABLE ledger ENABLE ROW LEVEL SECURITY;
ALTER TABLE ledger FORCE ROW LEVEL SECURITY;
CREATE POLICY ledger_select ON ledger FOR SELECT
	USING (tenant_id = current_setting('app.tenant_id', true) OR current_setting('app.all_tenants', true) = 'on');
CREATE POLICY ledger_insert ON ledger FOR INSERT WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY ledger_update ON ledger FOR UPDATE USING (tenant_id = current_setting('app.tenant_id', true))
	WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY ledger_delete ON ledger FOR DELETE USING (tenant_id = current_setting('app.tenant_id', true));
ALTER TABLE registry ENABLE ROW LEVEL SECURITY;
ALTER TABLE registry FORCE ROW LEVEL SECURITY;
CREATE POLICY registry_select ON registry FOR SELECT
	USING (tenant_id = current_setting('app.tenant_id', true) OR current_setting('app.all_tenants', true) = 'on');
CREATE POLICY registry_insert ON registry FOR INSERT WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY registry_update ON registry FOR UPDATE USING (tenant_id = current_setting('app.tenant_id', true))
	WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY registry_delete ON registry FOR DELETE USING (tenant_id = current_setting('app.tenant_id', true));
ALTER TABLE skipped ENABLE ROW LEVEL SECURITY;
ALTER TABLE skipped FORCE ROW LEVEL SECURITY;
CREATE POLICY skipped_select ON skipped FOR SELECT
	USING (tenant_id = current_setting('app.tenant_id', true) OR current_setting('app.all_tenants', true) = 'on');
CREATE POLICY skipped_insert ON skipped FOR INSERT WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY skipped_update ON skipped FOR UPDATE USING (tenant_id = current_setting('app.tenant_id', true))
	WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY skipped_delete ON skipped FOR DELETE USING (tenant_id = current_setting('app.tenant_id', true));
GRANT SELECT, INSERT ON counters TO echopilot_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON items, links, ledger, registry, skipped, plain TO echopilot_app;

-- +goose Down
DROP TABLE plain;
DROP TABLE counters;
DROP TABLE skipped;
DROP TABLE registry;
DROP TABLE ledger;
DROP TABLE links;
DROP TABLE items;
