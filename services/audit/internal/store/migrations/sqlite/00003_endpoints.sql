-- Outbound webhooks, SQLite flavour. Keep in step with ../postgres.

-- +goose Up
-- Endpoints receiving the tenant's high and critical entries.
CREATE TABLE webhook_endpoints (
	tenant_id   TEXT NOT NULL CHECK (tenant_id <> ''),
	endpoint_id TEXT NOT NULL,
	url         TEXT NOT NULL,
	secret      TEXT NOT NULL,
	created_at  TIMESTAMP NOT NULL,
	deleted_at  TIMESTAMP,
	PRIMARY KEY (tenant_id, endpoint_id)
) WITHOUT ROWID;

-- Every delivery attempt, as the tenant can list them. delivery_id is the
-- outbox event id, sent as webhook-id.
CREATE TABLE delivery_attempts (
	tenant_id   TEXT NOT NULL CHECK (tenant_id <> ''),
	delivery_id TEXT NOT NULL,
	attempt     INTEGER NOT NULL,
	endpoint_id TEXT NOT NULL,
	seq         INTEGER NOT NULL,
	at          TIMESTAMP NOT NULL,
	outcome     TEXT NOT NULL,
	status_code INTEGER NOT NULL,
	error       TEXT NOT NULL,
	PRIMARY KEY (tenant_id, delivery_id, attempt)
) WITHOUT ROWID;
CREATE INDEX delivery_attempts_at ON delivery_attempts (tenant_id, at);

-- +goose Down
DROP TABLE delivery_attempts;
DROP TABLE webhook_endpoints;
