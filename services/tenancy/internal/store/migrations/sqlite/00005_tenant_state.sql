-- A tenant's lifecycle state (domain.TenantState), changed by SuspendTenant
-- and ResumeTenant, with why, by whom and when. Keep in step with ../postgres.

-- +goose Up
ALTER TABLE tenants ADD COLUMN state TEXT NOT NULL DEFAULT 'active'
	CHECK (state IN ('active', 'suspended', 'offboarding', 'deleted'));
ALTER TABLE tenants ADD COLUMN state_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE tenants ADD COLUMN state_changed_by TEXT NOT NULL DEFAULT '';
ALTER TABLE tenants ADD COLUMN state_changed_at TIMESTAMP;

-- +goose Down
ALTER TABLE tenants DROP COLUMN state_changed_at;
ALTER TABLE tenants DROP COLUMN state_changed_by;
ALTER TABLE tenants DROP COLUMN state_reason;
ALTER TABLE tenants DROP COLUMN state;
