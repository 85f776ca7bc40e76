-- Secrets and endpoints are listed a page at a time in (created_at, id)
-- order, and counted against the tenant's caps on every create.
-- SQLite flavour; keep in step with ../postgres.

-- +goose Up
CREATE INDEX webhook_secrets_created ON webhook_secrets (tenant_id, created_at, secret_id);
CREATE INDEX webhook_endpoints_active ON webhook_endpoints (tenant_id, created_at, endpoint_id)
	WHERE deleted_at IS NULL;

-- +goose Down
DROP INDEX webhook_endpoints_active;
DROP INDEX webhook_secrets_created;
