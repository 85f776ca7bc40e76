-- Webhook endpoint repair: disabling (by the tenant, or by the service when
-- every delivery failed for a while), filters (event types, one per line,
-- empty for all; the least severity, '' for the default, high) and secret
-- rotation (the previous secret still signs until previous_secret_until).
-- The attempts index finds an endpoint's failing streak. PostgreSQL
-- flavour; keep in step with ../sqlite. The table's row-level security
-- policies and grants (00003) cover the new columns.

-- +goose Up
ALTER TABLE webhook_endpoints
	ADD COLUMN disabled_at           timestamptz,
	ADD COLUMN disabled_reason       text NOT NULL DEFAULT '',
	ADD COLUMN event_types           text NOT NULL DEFAULT '',
	ADD COLUMN min_severity          text NOT NULL DEFAULT '',
	ADD COLUMN previous_secret       text NOT NULL DEFAULT '',
	ADD COLUMN previous_secret_until timestamptz;
CREATE INDEX delivery_attempts_endpoint ON delivery_attempts (tenant_id, endpoint_id, at);

-- +goose Down
DROP INDEX delivery_attempts_endpoint;
ALTER TABLE webhook_endpoints
	DROP COLUMN disabled_at,
	DROP COLUMN disabled_reason,
	DROP COLUMN event_types,
	DROP COLUMN min_severity,
	DROP COLUMN previous_secret,
	DROP COLUMN previous_secret_until;
