-- API keys of tenants' machines (domain/apikeys.go): the SHA-256 of each
-- secret, never the secret. Keep in step with ../postgres.

-- +goose Up
CREATE TABLE api_keys (
	tenant_id           TEXT NOT NULL CHECK (tenant_id <> ''),
	key_id              TEXT NOT NULL UNIQUE,
	name                TEXT NOT NULL,
	roles               TEXT NOT NULL,
	read_only           BOOLEAN NOT NULL,
	created_by          TEXT NOT NULL,
	created_at          TIMESTAMP NOT NULL,
	expires_at          TIMESTAMP,
	last_used_at        TIMESTAMP,
	rotated_at          TIMESTAMP,
	secret_hash         BLOB NOT NULL,
	previous_hash       BLOB,
	previous_expires_at TIMESTAMP,
	revoked_at          TIMESTAMP,
	PRIMARY KEY (tenant_id, key_id)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE api_keys;
