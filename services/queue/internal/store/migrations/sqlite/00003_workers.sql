-- The worker registry: each worker that leased or heartbeated, per tenant,
-- written at most every few seconds per worker (domain/workers.go). Keep in
-- step with ../postgres. Times are unix microseconds (see platform/store).

-- +goose Up
CREATE TABLE workers (
	tenant_id   TEXT NOT NULL CHECK (tenant_id <> ''),
	worker_id   TEXT NOT NULL,
	version     TEXT NOT NULL DEFAULT '',
	host        TEXT NOT NULL DEFAULT '',
	concurrency INTEGER NOT NULL DEFAULT 0,
	first_seen  TIMESTAMP NOT NULL,
	last_seen   TIMESTAMP NOT NULL,
	PRIMARY KEY (tenant_id, worker_id)
) WITHOUT ROWID;

-- The stale gauge counts, and retention deletes, by last_seen across
-- tenants.
CREATE INDEX workers_last_seen ON workers (last_seen);

-- +goose Down
DROP TABLE workers;
