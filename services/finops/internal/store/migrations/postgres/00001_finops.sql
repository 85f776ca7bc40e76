-- FinOps schema, PostgreSQL flavour. Keep in step with ../sqlite: the store
-- runs one set of queries on both, so names, columns and index shapes match.
--
-- Money is integer minor units: cents for payments and revenue, micro-dollars
-- for AI cost. Days are whole UTC days since the Unix epoch (domain.DayOf),
-- the rollups' key on both databases, so no date arithmetic differs.
--
-- Row-level security (ENABLE + FORCE, so the owner is bound too) guards the
-- tenant tables under the store's own WHERE tenant_id = ? filters.
-- Transactions set app.tenant_id (platform/store InTenantTx, SetTenant); the
-- admin's view reads across tenants with app.all_tenants, which only SELECT
-- honours. With neither set no row is
-- visible. The service connects as a member of echopilot_app, which owns
-- nothing and only gets the DML below.
--
-- Unlike the other services' policies, these read the settings through
-- scalar subqueries, the same values: PostgreSQL then reads each once per
-- statement (an InitPlan) instead of calling current_setting twice for every
-- row, which doubled the time of an admin's 30,000-row report.

-- +goose Up

-- Usage of completed jobs, one row per job: the job id makes recording
-- idempotent. cost_micros is 0 when the model had no price (priced false),
-- never a guessed cost.
CREATE TABLE usage_records (
	tenant_id     text NOT NULL CHECK (tenant_id <> ''),
	job_id        text NOT NULL CHECK (job_id <> ''),
	job_type      text NOT NULL,
	model         text NOT NULL,
	input_tokens  bigint NOT NULL,
	output_tokens bigint NOT NULL,
	duration_ms   bigint NOT NULL,
	completed_at  timestamptz NOT NULL,
	day           integer NOT NULL,
	priced        boolean NOT NULL,
	cost_micros   bigint NOT NULL CHECK (priced OR cost_micros = 0),
	PRIMARY KEY (tenant_id, job_id)
);
-- UnpricedModels reads only these: unpriced usage is the rare case, so they
-- stay small, and they cover the model, so the table is never read. The
-- second is not led by tenant_id, deliberately: an admin's view lists the
-- models of every tenant over a range of days, which the first would answer
-- only by reading all of it, every day ever kept.
-- priced, false in every entry, is there for SQLite, which counts an index
-- as covering only when it holds every column the query names, the
-- predicate's too (without it, an admin's summary took 7 times longer).
-- The second includes tenant_id because the row-level security policy reads
-- it: without it every entry costs a heap fetch (10 ms at 10,000 unpriced
-- records in 30 days, 2 ms with it).
CREATE INDEX usage_records_unpriced ON usage_records (tenant_id, day, model, priced) WHERE NOT priced;
CREATE INDEX usage_records_unpriced_day ON usage_records (day, model, priced) INCLUDE (tenant_id) WHERE NOT priced;

-- Payments as merged from their Stripe events (domain.Payment.Merge). day is
-- the day of paid_at, where the payment's revenue is rolled up.
CREATE TABLE payments (
	tenant_id      text NOT NULL CHECK (tenant_id <> ''),
	payment_key    text NOT NULL CHECK (payment_key <> ''),
	currency       text NOT NULL,
	gross_cents    bigint NOT NULL,
	refunded_cents bigint NOT NULL,
	paid_at        timestamptz NOT NULL,
	day            integer NOT NULL,
	PRIMARY KEY (tenant_id, payment_key)
);

-- Per tenant and day sums of payments and usage, changed in the transaction
-- that changes the raw rows: reports read these, never the raw tables.
CREATE TABLE daily_rollups (
	tenant_id              text NOT NULL CHECK (tenant_id <> ''),
	day                    integer NOT NULL,
	revenue_cents          bigint NOT NULL DEFAULT 0,
	refunded_cents         bigint NOT NULL DEFAULT 0,
	payment_count          bigint NOT NULL DEFAULT 0,
	ai_cost_micros         bigint NOT NULL DEFAULT 0,
	job_count              bigint NOT NULL DEFAULT 0,
	input_tokens           bigint NOT NULL DEFAULT 0,
	output_tokens          bigint NOT NULL DEFAULT 0,
	unpriced_jobs          bigint NOT NULL DEFAULT 0,
	unpriced_input_tokens  bigint NOT NULL DEFAULT 0,
	unpriced_output_tokens bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (tenant_id, day)
);
-- The one index not led by tenant_id, deliberately (as queue's jobs_leased):
-- infrastructure is allocated by each tenant's share of each day's jobs, so
-- an admin's view reads every tenant's job_count over a range of days, and
-- DayTotals lists every tenant's rollups day by day. Led by day, both are one
-- range of the index; with tenant_id (which the policies read) and job_count
-- the allocation is an index-only scan. A tenant's own rollups use the
-- primary key.
CREATE INDEX daily_rollups_day ON daily_rollups (day, tenant_id, job_count);
-- Every usage batch and payment event updates a rollup row: vacuum and
-- analyze once 2% of the table changed instead of the default 20%.
ALTER TABLE daily_rollups SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);

-- Every tenant's rollups summed per day, changed with them: an admin's
-- summary and the allocation's denominator read at most 16 rows a day here
-- instead of a row per tenant and day (30,000 for 1,000 tenants over 30 days,
-- too many to sum within the summary's latency budget). Each day is spread
-- over 16 shards by a hash of the tenant (see shardOf), so concurrent writers
-- of different tenants seldom wait for each other's row lock. It holds no
-- tenant's rows, so it has no row-level security: like the outbox, it is
-- platform data written from tenant-scoped transactions.
CREATE TABLE daily_totals (
	day                    integer NOT NULL,
	shard                  smallint NOT NULL CHECK (shard BETWEEN 0 AND 15),
	revenue_cents          bigint NOT NULL DEFAULT 0,
	refunded_cents         bigint NOT NULL DEFAULT 0,
	payment_count          bigint NOT NULL DEFAULT 0,
	ai_cost_micros         bigint NOT NULL DEFAULT 0,
	job_count              bigint NOT NULL DEFAULT 0,
	input_tokens           bigint NOT NULL DEFAULT 0,
	output_tokens          bigint NOT NULL DEFAULT 0,
	unpriced_jobs          bigint NOT NULL DEFAULT 0,
	unpriced_input_tokens  bigint NOT NULL DEFAULT 0,
	unpriced_output_tokens bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (day, shard)
);
ALTER TABLE daily_totals SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);

-- The Stripe inbox: one row per event id (replays are found here), written
-- before the event's tenant is known, so it is platform data without
-- row-level security, like the outbox. tenant_id is '' until the tenant is
-- known; held events wait for an event that ties their customer to a tenant,
-- and keep what is needed to apply them then.
CREATE TABLE stripe_events (
	event_id       text NOT NULL PRIMARY KEY CHECK (event_id <> ''),
	type           text NOT NULL,
	customer_id    text NOT NULL,
	tenant_id      text NOT NULL,
	payment_key    text NOT NULL,
	currency       text NOT NULL,
	gross_cents    bigint NOT NULL,
	refunded_cents bigint NOT NULL,
	at             timestamptz NOT NULL,
	received_at    timestamptz NOT NULL,
	held           boolean NOT NULL
);
-- The held events of a customer, released when its tenant becomes known.
CREATE INDEX stripe_events_held ON stripe_events (customer_id) WHERE held;

-- Stripe customer → tenant, as learnt from the first event whose metadata
-- names the tenant (later ones never change it). tenant_id '' is a
-- placeholder written by an event that found no tenant: its row lock
-- serializes that event with one that brings the tenant, so a held event is
-- never missed by the release. Platform data, without row-level security:
-- it is read before the tenant is known.
CREATE TABLE stripe_customers (
	customer_id text NOT NULL PRIMARY KEY CHECK (customer_id <> ''),
	tenant_id   text NOT NULL
);

ALTER TABLE usage_records ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_records FORCE ROW LEVEL SECURITY;
CREATE POLICY usage_records_select ON usage_records FOR SELECT
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)) OR (SELECT current_setting('app.all_tenants', true)) = 'on');
CREATE POLICY usage_records_insert ON usage_records FOR INSERT
	WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));
CREATE POLICY usage_records_update ON usage_records FOR UPDATE
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)))
	WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));
CREATE POLICY usage_records_delete ON usage_records FOR DELETE
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)));

ALTER TABLE payments ENABLE ROW LEVEL SECURITY;
ALTER TABLE payments FORCE ROW LEVEL SECURITY;
CREATE POLICY payments_select ON payments FOR SELECT
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)) OR (SELECT current_setting('app.all_tenants', true)) = 'on');
CREATE POLICY payments_insert ON payments FOR INSERT
	WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));
CREATE POLICY payments_update ON payments FOR UPDATE
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)))
	WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));
CREATE POLICY payments_delete ON payments FOR DELETE
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)));

ALTER TABLE daily_rollups ENABLE ROW LEVEL SECURITY;
ALTER TABLE daily_rollups FORCE ROW LEVEL SECURITY;
CREATE POLICY daily_rollups_select ON daily_rollups FOR SELECT
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)) OR (SELECT current_setting('app.all_tenants', true)) = 'on');
CREATE POLICY daily_rollups_insert ON daily_rollups FOR INSERT
	WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));
CREATE POLICY daily_rollups_update ON daily_rollups FOR UPDATE
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)))
	WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));
CREATE POLICY daily_rollups_delete ON daily_rollups FOR DELETE
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)));

GRANT SELECT, INSERT, UPDATE, DELETE ON usage_records, payments, daily_rollups, daily_totals, stripe_events,
	stripe_customers TO echopilot_app;

-- +goose Down
DROP TABLE stripe_customers;
DROP TABLE stripe_events;
DROP TABLE daily_totals;
DROP TABLE daily_rollups;
DROP TABLE payments;
DROP TABLE usage_records;
