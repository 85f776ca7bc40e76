-- Event ids by source, and the dedup marks of referral-link clicks. Keep in
-- step with ../postgres (see there for why). SQLite cannot change a
-- primary key in place: referral_events is rebuilt.

-- +goose Up
CREATE TABLE referral_events_v2 (
	tenant_id     TEXT NOT NULL CHECK (tenant_id <> ''),
	event_id      TEXT NOT NULL CHECK (event_id <> ''),
	type          TEXT NOT NULL CHECK (type IN ('click', 'signup', 'conversion', 'refund')),
	referral_code TEXT NOT NULL,
	customer_id   TEXT NOT NULL,
	amount_cents  INTEGER NOT NULL CHECK (amount_cents >= 0),
	refund_of     TEXT NOT NULL,
	occurred_at   TIMESTAMP NOT NULL,
	source        TEXT NOT NULL CONSTRAINT referral_events_source CHECK (source IN ('tenant', 'link')),
	CONSTRAINT referral_events_link_clicks CHECK (source = 'tenant' OR type = 'click'),
	PRIMARY KEY (tenant_id, source, event_id)
) WITHOUT ROWID;
INSERT INTO referral_events_v2 (tenant_id, event_id, type, referral_code, customer_id, amount_cents, refund_of, occurred_at, source)
	SELECT tenant_id, event_id, type, referral_code, customer_id, amount_cents, refund_of, occurred_at,
		CASE WHEN type = 'click' THEN 'link' ELSE 'tenant' END
	FROM referral_events;
DROP TABLE referral_events;
ALTER TABLE referral_events_v2 RENAME TO referral_events;

CREATE TABLE click_dedup (
	click_key  TEXT NOT NULL PRIMARY KEY CHECK (length(click_key) = 64),
	counted_at TIMESTAMP NOT NULL,
	click_id   TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX click_dedup_counted ON click_dedup (counted_at);

CREATE TABLE deployment_keys (
	name    TEXT NOT NULL PRIMARY KEY,
	key_hex TEXT NOT NULL CHECK (length(key_hex) >= 64)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE deployment_keys;
DROP TABLE click_dedup;
CREATE TABLE referral_events_v1 (
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
-- Tenant events first: a link click whose id a tenant's event also has
-- cannot share the old key and is dropped.
INSERT OR IGNORE INTO referral_events_v1 (tenant_id, event_id, type, referral_code, customer_id, amount_cents, refund_of, occurred_at)
	SELECT tenant_id, event_id, type, referral_code, customer_id, amount_cents, refund_of, occurred_at
	FROM referral_events ORDER BY source = 'link';
DROP TABLE referral_events;
ALTER TABLE referral_events_v1 RENAME TO referral_events;
