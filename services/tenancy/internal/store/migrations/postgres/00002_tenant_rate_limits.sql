-- A tenant's own rate limits at the gateway (0: the deployment's default).
-- Keep in step with ../sqlite. The tenants table keeps its row-level
-- security and grants from 00001: the new columns need nothing more.

-- +goose Up
ALTER TABLE tenants
	ADD COLUMN rate_limit_read_per_second integer NOT NULL DEFAULT 0 CHECK (rate_limit_read_per_second >= 0),
	ADD COLUMN rate_limit_read_burst integer NOT NULL DEFAULT 0 CHECK (rate_limit_read_burst >= 0),
	ADD COLUMN rate_limit_write_per_second integer NOT NULL DEFAULT 0 CHECK (rate_limit_write_per_second >= 0),
	ADD COLUMN rate_limit_write_burst integer NOT NULL DEFAULT 0 CHECK (rate_limit_write_burst >= 0);

-- +goose Down
ALTER TABLE tenants
	DROP COLUMN rate_limit_write_burst,
	DROP COLUMN rate_limit_write_per_second,
	DROP COLUMN rate_limit_read_burst,
	DROP COLUMN rate_limit_read_per_second;
