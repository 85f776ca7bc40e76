-- Compliance webhook intake, SQLite flavour. Keep in step with ../postgres.

-- +goose Up
-- Signing secrets of inbound compliance webhooks, several active per tenant
-- (rotation). The value is kept: an HMAC is checked with the secret itself.
CREATE TABLE webhook_secrets (
	tenant_id  TEXT NOT NULL CHECK (tenant_id <> ''),
	secret_id  TEXT NOT NULL,
	value      TEXT NOT NULL,
	created_at TIMESTAMP NOT NULL,
	revoked_at TIMESTAMP,
	PRIMARY KEY (tenant_id, secret_id)
) WITHOUT ROWID;

-- Deliveries already appended, by replay key, kept until a repeat would be
-- refused as stale anyway (then pruned).
CREATE TABLE webhook_replays (
	tenant_id  TEXT NOT NULL CHECK (tenant_id <> ''),
	replay_key TEXT NOT NULL,
	keep_until TIMESTAMP NOT NULL,
	PRIMARY KEY (tenant_id, replay_key)
) WITHOUT ROWID;
CREATE INDEX webhook_replays_expiry ON webhook_replays (tenant_id, keep_until);

-- +goose Down
DROP TABLE webhook_replays;
DROP TABLE webhook_secrets;
