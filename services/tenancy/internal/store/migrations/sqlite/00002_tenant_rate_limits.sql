-- A tenant's own rate limits at the gateway (0: the deployment's default).
-- Keep in step with ../postgres.

-- +goose Up
ALTER TABLE tenants ADD COLUMN rate_limit_read_per_second INTEGER NOT NULL DEFAULT 0 CHECK (rate_limit_read_per_second >= 0);
ALTER TABLE tenants ADD COLUMN rate_limit_read_burst INTEGER NOT NULL DEFAULT 0 CHECK (rate_limit_read_burst >= 0);
ALTER TABLE tenants ADD COLUMN rate_limit_write_per_second INTEGER NOT NULL DEFAULT 0 CHECK (rate_limit_write_per_second >= 0);
ALTER TABLE tenants ADD COLUMN rate_limit_write_burst INTEGER NOT NULL DEFAULT 0 CHECK (rate_limit_write_burst >= 0);

-- +goose Down
ALTER TABLE tenants DROP COLUMN rate_limit_write_burst;
ALTER TABLE tenants DROP COLUMN rate_limit_write_per_second;
ALTER TABLE tenants DROP COLUMN rate_limit_read_burst;
ALTER TABLE tenants DROP COLUMN rate_limit_read_per_second;
