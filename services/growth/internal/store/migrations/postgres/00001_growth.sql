-- Growth schema, PostgreSQL flavour. Keep in step with ../sqlite: the store
-- runs one set of queries on both, so names, columns and index shapes match.
--
-- Money is integer cents; commission rates are basis points (1/10000).
-- Days are whole UTC days since the Unix epoch (domain.DayOf), the rollups'
-- key on both databases.
--
-- Row-level security (ENABLE + FORCE) guards every tenant table under the
-- store's own WHERE tenant_id = ? filters; transactions set app.tenant_id
-- (platform/store InTenantTx, SetTenant). The policies read it through a
-- scalar subquery, evaluated once per statement rather than per row (see
-- finops). Growth has no all-tenants view, so no policy reads
-- app.all_tenants. The service connects as a member of echopilot_app,
-- which owns nothing and only gets the DML below.

-- +goose Up

-- The deployment-wide code registry: codes are unique across tenants, and a
-- public click (GET /r/{code}) must find a code's tenant before it can
-- scope anything to it. It holds no row-level security, deliberately: it
-- says nothing but which tenant a code belongs to, which anyone holding the
-- code learns by clicking it anyway. The primary key is the unique index
-- that new codes are claimed against.
CREATE TABLE referral_codes (
	code      text NOT NULL PRIMARY KEY CHECK (length(code) = 8),
	tenant_id text NOT NULL CHECK (tenant_id <> '')
);

-- One code per referrer and campaign (the unique key makes creating
-- idempotent, also under concurrent creates).
CREATE TABLE referrals (
	tenant_id     text NOT NULL CHECK (tenant_id <> ''),
	referral_code text NOT NULL CHECK (length(referral_code) = 8),
	referrer_id   text NOT NULL CHECK (referrer_id <> ''),
	campaign      text NOT NULL CHECK (campaign <> ''),
	created_at    timestamptz NOT NULL,
	PRIMARY KEY (tenant_id, referral_code),
	UNIQUE (tenant_id, referrer_id, campaign)
);
-- The leaderboard filtered by campaign.
CREATE INDEX referrals_campaign ON referrals (tenant_id, campaign, referrer_id);

-- Campaign settings; a NULL rate or empty landing URL takes the service
-- default. Campaigns without a row use the defaults too.
CREATE TABLE campaigns (
	tenant_id   text NOT NULL CHECK (tenant_id <> ''),
	campaign    text NOT NULL CHECK (campaign <> ''),
	rate_bps    integer CHECK (rate_bps BETWEEN 0 AND 10000),
	landing_url text NOT NULL,
	updated_at  timestamptz NOT NULL,
	PRIMARY KEY (tenant_id, campaign)
);

-- Every event as received, once per event id: replays are found here and
-- compared. referral_code is '' for a refund that named none.
CREATE TABLE referral_events (
	tenant_id     text NOT NULL CHECK (tenant_id <> ''),
	event_id      text NOT NULL CHECK (event_id <> ''),
	type          text NOT NULL CHECK (type IN ('click', 'signup', 'conversion', 'refund')),
	referral_code text NOT NULL,
	customer_id   text NOT NULL,
	amount_cents  bigint NOT NULL CHECK (amount_cents >= 0),
	refund_of     text NOT NULL,
	occurred_at   timestamptz NOT NULL,
	PRIMARY KEY (tenant_id, event_id)
);

-- The merged state of each conversion (domain.ConversionState): its own
-- event once known, and the refunds naming it, which may arrive first. A
-- refund or the conversion creates the row, and each locks it while it
-- merges, so the two never miss each other.
CREATE TABLE conversions (
	tenant_id     text NOT NULL CHECK (tenant_id <> ''),
	conversion_id text NOT NULL CHECK (conversion_id <> ''),
	known         boolean NOT NULL,
	referral_code text NOT NULL,
	day           integer NOT NULL,
	revenue_cents bigint NOT NULL CHECK (revenue_cents >= 0),
	rate_bps      integer NOT NULL CHECK (rate_bps BETWEEN 0 AND 10000),
	self_referral boolean NOT NULL,
	refund_cents  bigint NOT NULL CHECK (refund_cents >= 0),
	refund_all    boolean NOT NULL,
	PRIMARY KEY (tenant_id, conversion_id)
);

-- Per referral and day sums, changed in the transaction that records the
-- events: reports read these, never the events. A refund changes the row
-- of its conversion's day.
CREATE TABLE referral_daily (
	tenant_id      text NOT NULL CHECK (tenant_id <> ''),
	referral_code  text NOT NULL,
	day            integer NOT NULL,
	clicks         bigint NOT NULL DEFAULT 0,
	signups        bigint NOT NULL DEFAULT 0,
	conversions    bigint NOT NULL DEFAULT 0,
	self_referrals bigint NOT NULL DEFAULT 0,
	revenue_cents  bigint NOT NULL DEFAULT 0,
	refunded_cents bigint NOT NULL DEFAULT 0,
	payout_cents   bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (tenant_id, referral_code, day)
);
-- Every event updates a rollup row: vacuum and analyze once 2% of the table
-- changed instead of the default 20%.
ALTER TABLE referral_daily SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);

ALTER TABLE referrals ENABLE ROW LEVEL SECURITY;
ALTER TABLE referrals FORCE ROW LEVEL SECURITY;
CREATE POLICY referrals_tenant ON referrals
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)))
	WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));

ALTER TABLE campaigns ENABLE ROW LEVEL SECURITY;
ALTER TABLE campaigns FORCE ROW LEVEL SECURITY;
CREATE POLICY campaigns_tenant ON campaigns
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)))
	WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));

ALTER TABLE referral_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE referral_events FORCE ROW LEVEL SECURITY;
CREATE POLICY referral_events_tenant ON referral_events
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)))
	WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));

ALTER TABLE conversions ENABLE ROW LEVEL SECURITY;
ALTER TABLE conversions FORCE ROW LEVEL SECURITY;
CREATE POLICY conversions_tenant ON conversions
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)))
	WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));

ALTER TABLE referral_daily ENABLE ROW LEVEL SECURITY;
ALTER TABLE referral_daily FORCE ROW LEVEL SECURITY;
CREATE POLICY referral_daily_tenant ON referral_daily
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)))
	WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));

GRANT SELECT, INSERT, UPDATE, DELETE ON referrals, campaigns, referral_events, conversions, referral_daily TO echopilot_app;
-- Codes are claimed and, by the loser of a concurrent create, released;
-- never changed.
GRANT SELECT, INSERT, DELETE ON referral_codes TO echopilot_app;

-- +goose Down
DROP TABLE referral_daily;
DROP TABLE conversions;
DROP TABLE referral_events;
DROP TABLE campaigns;
DROP TABLE referrals;
DROP TABLE referral_codes;
