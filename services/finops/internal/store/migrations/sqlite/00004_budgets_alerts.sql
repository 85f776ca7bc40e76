-- Budgets and alerts (see ../postgres).

-- +goose Up
CREATE TABLE budgets (
	tenant_id      TEXT NOT NULL PRIMARY KEY,
	amount_micros  INTEGER NOT NULL,
	thresholds_pct TEXT NOT NULL,
	updated_at     TIMESTAMP NOT NULL
) WITHOUT ROWID;
CREATE TABLE finops_alerts (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	alert_key     TEXT NOT NULL UNIQUE,
	tenant_id     TEXT NOT NULL,
	kind          TEXT NOT NULL,
	metric        TEXT NOT NULL,
	period        TEXT NOT NULL,
	threshold_pct INTEGER NOT NULL,
	value         INTEGER NOT NULL,
	reference     INTEGER NOT NULL,
	message       TEXT NOT NULL,
	created_at    TIMESTAMP NOT NULL
);
CREATE INDEX finops_alerts_tenant_id ON finops_alerts (tenant_id, id);

-- +goose Down
DROP TABLE finops_alerts;
DROP TABLE budgets;
