-- Outbox schema, SQLite flavour. Keep in step with ../postgres, which
-- explains the columns. Times are TIMESTAMP columns holding unix
-- microseconds (see platform/store). A rowid table, not WITHOUT ROWID:
-- payloads can be large, which WITHOUT ROWID tables handle poorly.

-- +goose Up
CREATE TABLE outbox (
	id              TEXT NOT NULL PRIMARY KEY CHECK (id <> ''),
	topic           TEXT NOT NULL CHECK (topic <> ''),
	event_key       TEXT NOT NULL,
	tenant_id       TEXT NOT NULL,
	payload         BLOB NOT NULL,
	created_at      TIMESTAMP NOT NULL,
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at TIMESTAMP NOT NULL,
	claimed_until   TIMESTAMP,
	delivered_at    TIMESTAMP,
	dead_at         TIMESTAMP,
	last_error      TEXT NOT NULL DEFAULT ''
);

CREATE INDEX outbox_due ON outbox (next_attempt_at, id)
	WHERE delivered_at IS NULL AND dead_at IS NULL;
CREATE INDEX outbox_pending_created ON outbox (created_at)
	WHERE delivered_at IS NULL AND dead_at IS NULL;
CREATE INDEX outbox_delivered ON outbox (delivered_at)
	WHERE delivered_at IS NOT NULL;
CREATE INDEX outbox_dead ON outbox (dead_at)
	WHERE dead_at IS NOT NULL;

-- +goose Down
DROP TABLE outbox;
