-- Issue 13, finding 3: a referral-link click (GET /r/{code}, public) took
-- its event id from the visitor's X-Request-Id, in the space of the ids a
-- tenant gives its conversions, sign-ups and refunds. A visitor could take
-- "order-1001" first, and the tenant's conversion order-1001 was then
-- refused as a reused id and its commission lost. Keep in step with
-- ../sqlite.
--
-- Now every event row says whose id it carries, and the primary key
-- includes it:
--   tenant  the id the tenant gave (RecordEvent, RecordEvents): any type;
--   link    the id the service gave a referral-link click (a ULID): clicks
--           only, never a visitor's.
-- Nothing a visitor sends can reach the tenant's space, whatever the code
-- above the schema does.
--
-- Clicks recorded before this migration may carry ids a visitor chose and
-- cannot be told apart from clicks a tenant recorded, so they all move to
-- the link space: that frees the ids visitors took. The price: a replay,
-- after the upgrade, of a click a tenant recorded before it counts once
-- more (clicks carry no money).
--
-- click_dedup makes repeated clicks of one visitor on one code within the
-- dedup window count once. Its key is HMAC-SHA256, under the key in
-- deployment_keys, of the code and either the visitor cookie the service
-- issued or the client address, X-Forwarded-For and User-Agent: the raw
-- values are never stored. Like the code registry it has no tenant column
-- and no row-level security, deliberately: a row is an opaque hash, a time
-- and a click id, and a code belongs to one tenant forever, so the key
-- needs no tenant. A mark older than the window counts for nothing and the
-- service deletes it (domain.Service.PruneClickDedup), so the table holds
-- about one window of clicks.

-- +goose Up
-- The owner is bound by FORCE ROW LEVEL SECURITY too; the move below must
-- see every tenant's rows.
ALTER TABLE referral_events NO FORCE ROW LEVEL SECURITY;
ALTER TABLE referral_events ADD COLUMN source text NOT NULL DEFAULT 'tenant'
	CONSTRAINT referral_events_source CHECK (source IN ('tenant', 'link'));
UPDATE referral_events SET source = 'link' WHERE type = 'click';
ALTER TABLE referral_events ALTER COLUMN source DROP DEFAULT;
ALTER TABLE referral_events ADD CONSTRAINT referral_events_link_clicks CHECK (source = 'tenant' OR type = 'click');
ALTER TABLE referral_events DROP CONSTRAINT referral_events_pkey, ADD PRIMARY KEY (tenant_id, source, event_id);
ALTER TABLE referral_events FORCE ROW LEVEL SECURITY;

CREATE TABLE click_dedup (
	click_key  text NOT NULL PRIMARY KEY CHECK (length(click_key) = 64),
	-- When the click that counted was recorded: a mark older than the
	-- window is as good as none.
	counted_at timestamptz NOT NULL,
	click_id   text NOT NULL
);
-- Retention deletes from here.
CREATE INDEX click_dedup_counted ON click_dedup (counted_at);

-- Keys the service makes once per deployment (the first replica to start
-- inserts, the others read it): never changed.
CREATE TABLE deployment_keys (
	name    text NOT NULL PRIMARY KEY,
	key_hex text NOT NULL CHECK (length(key_hex) >= 64)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON click_dedup TO echopilot_app;
GRANT SELECT, INSERT ON deployment_keys TO echopilot_app;

-- +goose Down
DROP TABLE deployment_keys;
DROP TABLE click_dedup;
ALTER TABLE referral_events NO FORCE ROW LEVEL SECURITY;
-- Link clicks whose id a tenant's event also has cannot share the old key.
DELETE FROM referral_events l WHERE l.source = 'link' AND EXISTS (
	SELECT 1 FROM referral_events t WHERE t.tenant_id = l.tenant_id AND t.source = 'tenant' AND t.event_id = l.event_id);
ALTER TABLE referral_events DROP CONSTRAINT referral_events_pkey, ADD PRIMARY KEY (tenant_id, event_id);
ALTER TABLE referral_events DROP COLUMN source;
ALTER TABLE referral_events FORCE ROW LEVEL SECURITY;
