-- Tenancy schema, SQLite flavour. Keep in step with ../postgres.
-- Times are TIMESTAMP columns holding unix microseconds (see platform/store).

-- +goose Up
CREATE TABLE tenants (
	tenant_id    TEXT NOT NULL PRIMARY KEY CHECK (tenant_id <> ''),
	display_name TEXT NOT NULL,
	created_at   TIMESTAMP NOT NULL
) WITHOUT ROWID;

-- Raw decisions, kept for the retention period (PruneDecisions).
CREATE TABLE decisions (
	tenant_id        TEXT NOT NULL CHECK (tenant_id <> ''),
	id               TEXT NOT NULL,
	target_tenant_id TEXT NOT NULL,
	subject          TEXT NOT NULL,
	method           TEXT NOT NULL,
	service          TEXT NOT NULL,
	allowed          BOOLEAN NOT NULL,
	reason           TEXT NOT NULL,
	verified         BOOLEAN NOT NULL,
	created_at       TIMESTAMP NOT NULL,
	PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE INDEX decisions_tenant_created ON decisions (tenant_id, created_at);

-- Running totals, bumped in the transaction that inserts the raw rows: Stats
-- reads one row per tenant, and pruning raw rows keeps the totals.
CREATE TABLE decision_counts (
	tenant_id           TEXT NOT NULL PRIMARY KEY CHECK (tenant_id <> ''),
	total               INTEGER NOT NULL,
	denied              INTEGER NOT NULL,
	cross_tenant_denied INTEGER NOT NULL
) WITHOUT ROWID;

-- +goose Down
DROP TABLE decision_counts;
DROP TABLE decisions;
DROP TABLE tenants;
