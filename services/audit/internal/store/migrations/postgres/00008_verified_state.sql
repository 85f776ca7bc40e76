-- The last verified state of each tenant's log, so a read verifies only
-- what was appended since (size, root, last entry's hash and timestamp,
-- the tree's compact range), the sticky failure a verification found
-- (failed_seq > 0 until a later full verification passes), and the last
-- full verification's result (the scrubber's or a ?verify=full read's).
-- verifier_keys are the note verifier keys (newline-separated) trusted
-- when the state was reached: the state holds only while they all are.
-- PostgreSQL flavour; keep in step with ../sqlite.

-- +goose Up
CREATE TABLE audit_verified (
	tenant_id      text NOT NULL PRIMARY KEY CHECK (tenant_id <> ''),
	size           bigint NOT NULL,
	root           bytea NOT NULL,
	last_hash      text NOT NULL,
	last_ts        timestamptz NOT NULL,
	tree_range     bytea NOT NULL,
	verified_at    timestamptz NOT NULL,
	failed_seq     bigint NOT NULL DEFAULT 0,
	failed_reason  text NOT NULL DEFAULT '',
	failed_at      timestamptz,
	full_at        timestamptz,
	full_valid     boolean NOT NULL DEFAULT false,
	full_first_bad bigint NOT NULL DEFAULT 0,
	full_reason    text NOT NULL DEFAULT '',
	verifier_keys  text NOT NULL DEFAULT ''
);

ALTER TABLE audit_verified ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_verified FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_verified_select ON audit_verified FOR SELECT
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)) OR (SELECT current_setting('app.all_tenants', true)) = 'on');
CREATE POLICY audit_verified_insert ON audit_verified FOR INSERT
	WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));
CREATE POLICY audit_verified_update ON audit_verified FOR UPDATE
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)))
	WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));
CREATE POLICY audit_verified_delete ON audit_verified FOR DELETE
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)));

GRANT SELECT, INSERT, UPDATE ON audit_verified TO echopilot_app;

-- +goose Down
DROP TABLE audit_verified;
