-- Monthly budgets (tenant 'default': the platform's, over every tenant) and
-- the alerts the background evaluator records: budget crossings and daily
-- anomalies. An alert's key is unique (budget/tenant/month/threshold/basis,
-- anomaly/tenant/day/metric), so evaluators on every replica, run again or
-- at the same time, record each alert once. Both are tenant data behind
-- row-level security like usage_records: the evaluator reads every budget
-- (app.all_tenants) and records each alert scoped to its tenant.

-- +goose Up
CREATE TABLE budgets (
	tenant_id      text NOT NULL PRIMARY KEY,
	amount_micros  bigint NOT NULL,
	thresholds_pct text NOT NULL,
	updated_at     timestamptz NOT NULL
);
CREATE TABLE finops_alerts (
	id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	alert_key     text NOT NULL UNIQUE,
	tenant_id     text NOT NULL,
	kind          text NOT NULL,
	metric        text NOT NULL,
	period        text NOT NULL,
	threshold_pct integer NOT NULL,
	value         bigint NOT NULL,
	reference     bigint NOT NULL,
	message       text NOT NULL,
	created_at    timestamptz NOT NULL
);
-- ListAlerts of one tenant, newest first.
CREATE INDEX finops_alerts_tenant_id ON finops_alerts (tenant_id, id);
GRANT SELECT, INSERT, UPDATE, DELETE ON budgets, finops_alerts TO echopilot_app;

ALTER TABLE budgets ENABLE ROW LEVEL SECURITY;
ALTER TABLE budgets FORCE ROW LEVEL SECURITY;
CREATE POLICY budgets_select ON budgets FOR SELECT
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)) OR (SELECT current_setting('app.all_tenants', true)) = 'on');
CREATE POLICY budgets_insert ON budgets FOR INSERT
	WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));
CREATE POLICY budgets_update ON budgets FOR UPDATE
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)))
	WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));
CREATE POLICY budgets_delete ON budgets FOR DELETE
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)));

ALTER TABLE finops_alerts ENABLE ROW LEVEL SECURITY;
ALTER TABLE finops_alerts FORCE ROW LEVEL SECURITY;
CREATE POLICY finops_alerts_select ON finops_alerts FOR SELECT
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)) OR (SELECT current_setting('app.all_tenants', true)) = 'on');
CREATE POLICY finops_alerts_insert ON finops_alerts FOR INSERT
	WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));
CREATE POLICY finops_alerts_update ON finops_alerts FOR UPDATE
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)))
	WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));
CREATE POLICY finops_alerts_delete ON finops_alerts FOR DELETE
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)));

-- +goose Down
DROP TABLE finops_alerts;
DROP TABLE budgets;
