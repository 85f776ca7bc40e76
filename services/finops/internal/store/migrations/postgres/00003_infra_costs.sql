-- Infrastructure cost imported from a real source (a FOCUS CSV or an
-- OpenCost allocation, see cmd/finops-import). A day in infra_days is
-- covered: its infrastructure is infra_costs, per tenant, instead of the
-- rate card's share of jobs. tenant_id '' is cost no rule mapped to a
-- tenant (reported as unallocated). Operator data written by the import
-- for every tenant at once, like daily_totals, so no row-level security:
-- every query names its tenant and day.

-- +goose Up
CREATE TABLE infra_days (
	day         integer NOT NULL PRIMARY KEY,
	source      text NOT NULL,
	imported_at timestamptz NOT NULL
);
CREATE TABLE infra_costs (
	day             integer NOT NULL,
	tenant_id       text NOT NULL,
	compute_micros  bigint NOT NULL,
	database_micros bigint NOT NULL,
	PRIMARY KEY (day, tenant_id)
);
GRANT SELECT, INSERT, UPDATE, DELETE ON infra_days, infra_costs TO echopilot_app;

-- +goose Down
DROP TABLE infra_costs;
DROP TABLE infra_days;
