-- Worker tokens minted by CreateWorkerToken (domain/workertokens.go): the
-- record of each, never the token. Keep in step with ../postgres. Times are
-- unix microseconds (see platform/store).

-- +goose Up
CREATE TABLE worker_tokens (
	tenant_id   TEXT NOT NULL CHECK (tenant_id <> ''),
	id          TEXT NOT NULL,
	name        TEXT NOT NULL,
	ttl_seconds INTEGER NOT NULL CHECK (ttl_seconds > 0),
	created     TIMESTAMP NOT NULL,
	expires     TIMESTAMP NOT NULL,
	max_expires TIMESTAMP NOT NULL,
	revoked_at  TIMESTAMP,
	PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;

-- The revocation sync reads, and retention deletes, by max_expires across
-- tenants.
CREATE INDEX worker_tokens_max_expires ON worker_tokens (max_expires);

-- +goose Down
DROP TABLE worker_tokens;
