-- Commission states and payout batches. Keep in step with ../postgres (see
-- there for what each column is for).

-- +goose Up
ALTER TABLE conversions ADD COLUMN occurred_at TIMESTAMP;
ALTER TABLE conversions ADD COLUMN hold_until TIMESTAMP;
ALTER TABLE conversions ADD COLUMN batch_id TEXT NOT NULL DEFAULT '';
ALTER TABLE conversions ADD COLUMN paid_at TIMESTAMP;
UPDATE conversions SET occurred_at = day * 86400000000, hold_until = (day + 14) * 86400000000 WHERE known;
CREATE INDEX conversions_code ON conversions (tenant_id, referral_code);
CREATE INDEX conversions_batch ON conversions (tenant_id, batch_id);

CREATE TABLE payout_batches (
	tenant_id        TEXT NOT NULL CHECK (tenant_id <> ''),
	batch_id         TEXT NOT NULL CHECK (batch_id <> ''),
	created_at       TIMESTAMP NOT NULL,
	commission_count INTEGER NOT NULL,
	payout_cents     INTEGER NOT NULL,
	paid_at          TIMESTAMP,
	PRIMARY KEY (tenant_id, batch_id)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE payout_batches;
DROP INDEX conversions_batch;
DROP INDEX conversions_code;
ALTER TABLE conversions DROP COLUMN paid_at;
ALTER TABLE conversions DROP COLUMN batch_id;
ALTER TABLE conversions DROP COLUMN hold_until;
ALTER TABLE conversions DROP COLUMN occurred_at;
