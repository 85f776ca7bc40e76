-- Imported infrastructure cost (see ../postgres).

-- +goose Up
CREATE TABLE infra_days (
	day         INTEGER NOT NULL PRIMARY KEY,
	source      TEXT NOT NULL,
	imported_at TIMESTAMP NOT NULL
);
CREATE TABLE infra_costs (
	day             INTEGER NOT NULL,
	tenant_id       TEXT NOT NULL,
	compute_micros  INTEGER NOT NULL,
	database_micros INTEGER NOT NULL,
	PRIMARY KEY (day, tenant_id)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE infra_costs;
DROP TABLE infra_days;
