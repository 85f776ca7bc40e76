-- Webhook endpoint repair. SQLite flavour; keep in step with ../postgres,
-- which explains the columns.

-- +goose Up
ALTER TABLE webhook_endpoints ADD COLUMN disabled_at TIMESTAMP;
ALTER TABLE webhook_endpoints ADD COLUMN disabled_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE webhook_endpoints ADD COLUMN event_types TEXT NOT NULL DEFAULT '';
ALTER TABLE webhook_endpoints ADD COLUMN min_severity TEXT NOT NULL DEFAULT '';
ALTER TABLE webhook_endpoints ADD COLUMN previous_secret TEXT NOT NULL DEFAULT '';
ALTER TABLE webhook_endpoints ADD COLUMN previous_secret_until TIMESTAMP;
CREATE INDEX delivery_attempts_endpoint ON delivery_attempts (tenant_id, endpoint_id, at);

-- +goose Down
DROP INDEX delivery_attempts_endpoint;
ALTER TABLE webhook_endpoints DROP COLUMN previous_secret_until;
ALTER TABLE webhook_endpoints DROP COLUMN previous_secret;
ALTER TABLE webhook_endpoints DROP COLUMN min_severity;
ALTER TABLE webhook_endpoints DROP COLUMN event_types;
ALTER TABLE webhook_endpoints DROP COLUMN disabled_reason;
ALTER TABLE webhook_endpoints DROP COLUMN disabled_at;
