-- Issue 17: commission states and payout batches. Keep in step with
-- ../sqlite.
--
-- A conversion's commission is
--   paid      once the payout batch holding it was marked paid (paid_at);
--   refunded  once refunds cover its whole revenue (a refund of
--             everything, or refunds adding up to it);
--   pending   until hold_until (its time plus the hold the service had
--             when the conversion was recorded);
--   approved  after that, until it is paid.
-- Approved is not written by a job: it follows from hold_until and the
-- clock, so no state change can be missed or raced.
--
-- Conversions recorded before this migration get their day's start as
-- their time and the default hold (14 days). A conversion an older binary
-- records during a rolling upgrade has no hold_until: the service holds it
-- from its day's start for the hold it has then (domain.Clock).

-- +goose Up
ALTER TABLE conversions NO FORCE ROW LEVEL SECURITY;
ALTER TABLE conversions ADD COLUMN occurred_at timestamptz;
ALTER TABLE conversions ADD COLUMN hold_until timestamptz;
-- The payout batch holding the commission; '' while in none.
ALTER TABLE conversions ADD COLUMN batch_id text NOT NULL DEFAULT '';
ALTER TABLE conversions ADD COLUMN paid_at timestamptz;
UPDATE conversions SET occurred_at = to_timestamp(day::bigint * 86400),
	hold_until = to_timestamp((day::bigint + 14) * 86400) WHERE known;
ALTER TABLE conversions FORCE ROW LEVEL SECURITY;
-- The export reads a tenant's commissions by code; a new batch finds the
-- commissions in none (batch_id ''), marking one paid finds its own.
CREATE INDEX conversions_code ON conversions (tenant_id, referral_code);
CREATE INDEX conversions_batch ON conversions (tenant_id, batch_id);

CREATE TABLE payout_batches (
	tenant_id        text NOT NULL CHECK (tenant_id <> ''),
	batch_id         text NOT NULL CHECK (batch_id <> ''),
	created_at       timestamptz NOT NULL,
	-- What the batch held when it was made.
	commission_count bigint NOT NULL,
	payout_cents     bigint NOT NULL,
	paid_at          timestamptz,
	PRIMARY KEY (tenant_id, batch_id)
);
ALTER TABLE payout_batches ENABLE ROW LEVEL SECURITY;
ALTER TABLE payout_batches FORCE ROW LEVEL SECURITY;
CREATE POLICY payout_batches_tenant ON payout_batches
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)))
	WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));
GRANT SELECT, INSERT, UPDATE ON payout_batches TO echopilot_app;

-- +goose Down
DROP TABLE payout_batches;
DROP INDEX conversions_batch;
DROP INDEX conversions_code;
ALTER TABLE conversions DROP COLUMN paid_at;
ALTER TABLE conversions DROP COLUMN batch_id;
ALTER TABLE conversions DROP COLUMN hold_until;
ALTER TABLE conversions DROP COLUMN occurred_at;
