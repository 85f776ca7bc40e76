-- Growth schema, SQLite flavour. Keep in step with ../postgres: the store
-- runs one set of queries on both, so names, columns and index shapes match
-- (see there for what each table is for). SQLite has no row-level security;
-- every query names its tenant.
--
-- Times are TIMESTAMP columns holding unix microseconds (see platform/store);
-- booleans are 0/1 integers. Tables keyed by text are WITHOUT ROWID: their
-- rows live in the primary key's b-tree.

-- +goose Up
CREATE TABLE referral_codes (
	code      TEXT NOT NULL PRIMARY KEY CHECK (length(code) = 8),
	tenant_id TEXT NOT NULL CHECK (tenant_id <> '')
) WITHOUT ROWID;

CREATE TABLE referrals (
	tenant_id     TEXT NOT NULL CHECK (tenant_id <> ''),
	referral_code TEXT NOT NULL CHECK (length(referral_code) = 8),
	referrer_id   TEXT NOT NULL CHECK (referrer_id <> ''),
	campaign      TEXT NOT NULL CHECK (campaign <> ''),
	created_at    TIMESTAMP NOT NULL,
	PRIMARY KEY (tenant_id, referral_code),
	UNIQUE (tenant_id, referrer_id, campaign)
) WITHOUT ROWID;
CREATE INDEX referrals_campaign ON referrals (tenant_id, campaign, referrer_id);

CREATE TABLE campaigns (
	tenant_id   TEXT NOT NULL CHECK (tenant_id <> ''),
	campaign    TEXT NOT NULL CHECK (campaign <> ''),
	rate_bps    INTEGER CHECK (rate_bps BETWEEN 0 AND 10000),
	landing_url TEXT NOT NULL,
	updated_at  TIMESTAMP NOT NULL,
	PRIMARY KEY (tenant_id, campaign)
) WITHOUT ROWID;

CREATE TABLE referral_events (
	tenant_id     TEXT NOT NULL CHECK (tenant_id <> ''),
	event_id      TEXT NOT NULL CHECK (event_id <> ''),
	type          TEXT NOT NULL CHECK (type IN ('click', 'signup', 'conversion', 'refund')),
	referral_code TEXT NOT NULL,
	customer_id   TEXT NOT NULL,
	amount_cents  INTEGER NOT NULL CHECK (amount_cents >= 0),
	refund_of     TEXT NOT NULL,
	occurred_at   TIMESTAMP NOT NULL,
	PRIMARY KEY (tenant_id, event_id)
) WITHOUT ROWID;

CREATE TABLE conversions (
	tenant_id     TEXT NOT NULL CHECK (tenant_id <> ''),
	conversion_id TEXT NOT NULL CHECK (conversion_id <> ''),
	known         INTEGER NOT NULL CHECK (known IN (0, 1)),
	referral_code TEXT NOT NULL,
	day           INTEGER NOT NULL,
	revenue_cents INTEGER NOT NULL CHECK (revenue_cents >= 0),
	rate_bps      INTEGER NOT NULL CHECK (rate_bps BETWEEN 0 AND 10000),
	self_referral INTEGER NOT NULL CHECK (self_referral IN (0, 1)),
	refund_cents  INTEGER NOT NULL CHECK (refund_cents >= 0),
	refund_all    INTEGER NOT NULL CHECK (refund_all IN (0, 1)),
	PRIMARY KEY (tenant_id, conversion_id)
) WITHOUT ROWID;

CREATE TABLE referral_daily (
	tenant_id      TEXT NOT NULL CHECK (tenant_id <> ''),
	referral_code  TEXT NOT NULL,
	day            INTEGER NOT NULL,
	clicks         INTEGER NOT NULL DEFAULT 0,
	signups        INTEGER NOT NULL DEFAULT 0,
	conversions    INTEGER NOT NULL DEFAULT 0,
	self_referrals INTEGER NOT NULL DEFAULT 0,
	revenue_cents  INTEGER NOT NULL DEFAULT 0,
	refunded_cents INTEGER NOT NULL DEFAULT 0,
	payout_cents   INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (tenant_id, referral_code, day)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE referral_daily;
DROP TABLE conversions;
DROP TABLE referral_events;
DROP TABLE campaigns;
DROP TABLE referrals;
DROP TABLE referral_codes;
