-- Tenancy schema, PostgreSQL flavour. Keep in step with ../sqlite.
--
-- Row-level security (ENABLE + FORCE, so the owner is bound too) is defence
-- in depth under the store's own WHERE tenant_id = ? filters. Transactions
-- set app.tenant_id (platform/store InTenantTx); an admin's read-only
-- cross-tenant view sets app.all_tenants, which only SELECT honours. With
-- neither set no row is visible. The service connects as a member of
-- echopilot_app (created by platform/store before migrating), which owns
-- nothing and only gets the DML below.

-- +goose Up
CREATE TABLE tenants (
	tenant_id    text NOT NULL PRIMARY KEY CHECK (tenant_id <> ''),
	display_name text NOT NULL,
	created_at   timestamptz NOT NULL
);

-- Raw decisions, kept for the retention period (PruneDecisions).
CREATE TABLE decisions (
	tenant_id        text NOT NULL CHECK (tenant_id <> ''),
	id               text NOT NULL,
	target_tenant_id text NOT NULL,
	subject          text NOT NULL,
	method           text NOT NULL,
	service          text NOT NULL,
	allowed          boolean NOT NULL,
	reason           text NOT NULL,
	verified         boolean NOT NULL,
	created_at       timestamptz NOT NULL,
	PRIMARY KEY (tenant_id, id)
);
CREATE INDEX decisions_tenant_created ON decisions (tenant_id, created_at);

-- Running totals, bumped in the transaction that inserts the raw rows: Stats
-- reads one row per tenant, and pruning raw rows keeps the totals.
CREATE TABLE decision_counts (
	tenant_id           text NOT NULL PRIMARY KEY CHECK (tenant_id <> ''),
	total               bigint NOT NULL,
	denied              bigint NOT NULL,
	cross_tenant_denied bigint NOT NULL
);

ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenants_select ON tenants FOR SELECT
	USING (tenant_id = current_setting('app.tenant_id', true) OR current_setting('app.all_tenants', true) = 'on');
CREATE POLICY tenants_insert ON tenants FOR INSERT
	WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY tenants_update ON tenants FOR UPDATE
	USING (tenant_id = current_setting('app.tenant_id', true))
	WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY tenants_delete ON tenants FOR DELETE
	USING (tenant_id = current_setting('app.tenant_id', true));

ALTER TABLE decisions ENABLE ROW LEVEL SECURITY;
ALTER TABLE decisions FORCE ROW LEVEL SECURITY;
CREATE POLICY decisions_select ON decisions FOR SELECT
	USING (tenant_id = current_setting('app.tenant_id', true) OR current_setting('app.all_tenants', true) = 'on');
CREATE POLICY decisions_insert ON decisions FOR INSERT
	WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY decisions_update ON decisions FOR UPDATE
	USING (tenant_id = current_setting('app.tenant_id', true))
	WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY decisions_delete ON decisions FOR DELETE
	USING (tenant_id = current_setting('app.tenant_id', true));

ALTER TABLE decision_counts ENABLE ROW LEVEL SECURITY;
ALTER TABLE decision_counts FORCE ROW LEVEL SECURITY;
CREATE POLICY decision_counts_select ON decision_counts FOR SELECT
	USING (tenant_id = current_setting('app.tenant_id', true) OR current_setting('app.all_tenants', true) = 'on');
CREATE POLICY decision_counts_insert ON decision_counts FOR INSERT
	WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY decision_counts_update ON decision_counts FOR UPDATE
	USING (tenant_id = current_setting('app.tenant_id', true))
	WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY decision_counts_delete ON decision_counts FOR DELETE
	USING (tenant_id = current_setting('app.tenant_id', true));

GRANT SELECT, INSERT, UPDATE, DELETE ON tenants, decisions, decision_counts TO echopilot_app;

-- +goose Down
DROP TABLE decision_counts;
DROP TABLE decisions;
DROP TABLE tenants;
