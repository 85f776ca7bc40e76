-- FinOps schema, SQLite flavour. Keep in step with ../postgres: the store
-- runs one set of queries on both, so names, columns and index shapes match
-- (see there for what each table is for). SQLite has no row-level security;
-- every query names its tenant.
--
-- Times are TIMESTAMP columns holding unix microseconds (see platform/store);
-- booleans are 0/1 integers. Tables keyed by text are WITHOUT ROWID: their
-- rows live in the primary key's b-tree, one tree to write instead of a
-- table plus a key index.

-- +goose Up
CREATE TABLE usage_records (
	tenant_id     TEXT NOT NULL CHECK (tenant_id <> ''),
	job_id        TEXT NOT NULL CHECK (job_id <> ''),
	job_type      TEXT NOT NULL,
	model         TEXT NOT NULL,
	input_tokens  INTEGER NOT NULL,
	output_tokens INTEGER NOT NULL,
	duration_ms   INTEGER NOT NULL,
	completed_at  TIMESTAMP NOT NULL,
	day           INTEGER NOT NULL,
	priced        INTEGER NOT NULL CHECK (priced IN (0, 1)),
	cost_micros   INTEGER NOT NULL CHECK (priced OR cost_micros = 0),
	PRIMARY KEY (tenant_id, job_id)
) WITHOUT ROWID;
-- Queries say `NOT priced` exactly, as SQLite uses a partial index only when
-- the query's WHERE contains the index's terms.
-- The second, not led by tenant_id, serves an admin's view of every
-- tenant (see ../postgres).
-- priced, false in every entry, is there for SQLite, which counts an index
-- as covering only when it holds every column the query names, the
-- predicate's too (without it, an admin's summary took 7 times longer).
CREATE INDEX usage_records_unpriced ON usage_records (tenant_id, day, model, priced) WHERE NOT priced;
CREATE INDEX usage_records_unpriced_day ON usage_records (day, model, priced) WHERE NOT priced;

CREATE TABLE payments (
	tenant_id      TEXT NOT NULL CHECK (tenant_id <> ''),
	payment_key    TEXT NOT NULL CHECK (payment_key <> ''),
	currency       TEXT NOT NULL,
	gross_cents    INTEGER NOT NULL,
	refunded_cents INTEGER NOT NULL,
	paid_at        TIMESTAMP NOT NULL,
	day            INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, payment_key)
) WITHOUT ROWID;

CREATE TABLE daily_rollups (
	tenant_id              TEXT NOT NULL CHECK (tenant_id <> ''),
	day                    INTEGER NOT NULL,
	revenue_cents          INTEGER NOT NULL DEFAULT 0,
	refunded_cents         INTEGER NOT NULL DEFAULT 0,
	payment_count          INTEGER NOT NULL DEFAULT 0,
	ai_cost_micros         INTEGER NOT NULL DEFAULT 0,
	job_count              INTEGER NOT NULL DEFAULT 0,
	input_tokens           INTEGER NOT NULL DEFAULT 0,
	output_tokens          INTEGER NOT NULL DEFAULT 0,
	unpriced_jobs          INTEGER NOT NULL DEFAULT 0,
	unpriced_input_tokens  INTEGER NOT NULL DEFAULT 0,
	unpriced_output_tokens INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (tenant_id, day)
) WITHOUT ROWID;
-- Not led by tenant_id, deliberately: an admin's view allocates from every
-- tenant's job_count over a range of days (index-only), and DayTotals lists
-- every tenant's rollups day by day (see ../postgres).
CREATE INDEX daily_rollups_day ON daily_rollups (day, tenant_id, job_count);

-- Every tenant's rollups summed per day, over 16 shards by tenant (see
-- ../postgres: SQLite has a single writer, but the queries are shared).
CREATE TABLE daily_totals (
	day                    INTEGER NOT NULL,
	shard                  INTEGER NOT NULL CHECK (shard BETWEEN 0 AND 15),
	revenue_cents          INTEGER NOT NULL DEFAULT 0,
	refunded_cents         INTEGER NOT NULL DEFAULT 0,
	payment_count          INTEGER NOT NULL DEFAULT 0,
	ai_cost_micros         INTEGER NOT NULL DEFAULT 0,
	job_count              INTEGER NOT NULL DEFAULT 0,
	input_tokens           INTEGER NOT NULL DEFAULT 0,
	output_tokens          INTEGER NOT NULL DEFAULT 0,
	unpriced_jobs          INTEGER NOT NULL DEFAULT 0,
	unpriced_input_tokens  INTEGER NOT NULL DEFAULT 0,
	unpriced_output_tokens INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (day, shard)
) WITHOUT ROWID;

-- Platform tables (no tenant scoping: written before the tenant is known).
CREATE TABLE stripe_events (
	event_id       TEXT NOT NULL PRIMARY KEY CHECK (event_id <> ''),
	type           TEXT NOT NULL,
	customer_id    TEXT NOT NULL,
	tenant_id      TEXT NOT NULL,
	payment_key    TEXT NOT NULL,
	currency       TEXT NOT NULL,
	gross_cents    INTEGER NOT NULL,
	refunded_cents INTEGER NOT NULL,
	at             TIMESTAMP NOT NULL,
	received_at    TIMESTAMP NOT NULL,
	held           INTEGER NOT NULL CHECK (held IN (0, 1))
) WITHOUT ROWID;
CREATE INDEX stripe_events_held ON stripe_events (customer_id) WHERE held;

CREATE TABLE stripe_customers (
	customer_id TEXT NOT NULL PRIMARY KEY CHECK (customer_id <> ''),
	tenant_id   TEXT NOT NULL
) WITHOUT ROWID;

-- +goose Down
DROP TABLE stripe_customers;
DROP TABLE stripe_events;
DROP TABLE daily_totals;
DROP TABLE daily_rollups;
DROP TABLE payments;
DROP TABLE usage_records;
