-- Outbox schema, PostgreSQL flavour. Keep in step with ../sqlite.
--
-- The outbox is infrastructure, not tenant data: it has no row-level
-- security, because the relay delivers every tenant's events from a
-- transaction scoped to no tenant, and producers write to it from
-- transactions scoped to theirs. Tenant isolation of an event's content is
-- the consumer's business (it gets tenant_id with the event). The service
-- connects as a member of echopilot_app (created by platform/store before
-- migrating), which owns nothing, so it gets the DML below.

-- +goose Up
CREATE TABLE outbox (
	id              text NOT NULL PRIMARY KEY CHECK (id <> ''),
	topic           text NOT NULL CHECK (topic <> ''),
	event_key       text NOT NULL,
	tenant_id       text NOT NULL,
	payload         bytea NOT NULL,
	created_at      timestamptz NOT NULL,
	-- Delivery attempts made, successful or not.
	attempts        integer NOT NULL DEFAULT 0,
	next_attempt_at timestamptz NOT NULL,
	-- A relay's lease on the row: others skip it until then. It doubles as
	-- the claim's fencing token (a relay only records a failure on a row it
	-- still holds).
	claimed_until   timestamptz,
	delivered_at    timestamptz,
	-- Set when attempts run out or the publisher says the failure is
	-- permanent; dead rows are never retried or pruned: they need a human.
	dead_at         timestamptz,
	last_error      text NOT NULL DEFAULT ''
);

-- The claim query's index: only rows still to deliver, in claim order, so a
-- claim never reads delivered or dead history however large it grows.
CREATE INDEX outbox_due ON outbox (next_attempt_at, id)
	WHERE delivered_at IS NULL AND dead_at IS NULL;
-- The lag gauge's oldest pending event, found without sorting a backlog.
CREATE INDEX outbox_pending_created ON outbox (created_at)
	WHERE delivered_at IS NULL AND dead_at IS NULL;
-- Retention deletes delivered rows by age.
CREATE INDEX outbox_delivered ON outbox (delivered_at)
	WHERE delivered_at IS NOT NULL;
-- Dead letters, counted every pass and listed by whoever repairs them.
CREATE INDEX outbox_dead ON outbox (dead_at)
	WHERE dead_at IS NOT NULL;

GRANT SELECT, INSERT, UPDATE, DELETE ON outbox TO echopilot_app;

-- +goose Down
DROP TABLE outbox;
