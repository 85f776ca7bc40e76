-- A tenant's lifecycle state (domain.TenantState), changed by SuspendTenant
-- and ResumeTenant, with why, by whom and when. Keep in step with ../sqlite.

-- +goose Up
ALTER TABLE tenants ADD COLUMN state text NOT NULL DEFAULT 'active'
	CHECK (state IN ('active', 'suspended', 'offboarding', 'deleted'));
ALTER TABLE tenants ADD COLUMN state_reason text NOT NULL DEFAULT '';
ALTER TABLE tenants ADD COLUMN state_changed_by text NOT NULL DEFAULT '';
ALTER TABLE tenants ADD COLUMN state_changed_at timestamptz;

-- +goose Down
ALTER TABLE tenants DROP COLUMN state_changed_at;
ALTER TABLE tenants DROP COLUMN state_changed_by;
ALTER TABLE tenants DROP COLUMN state_reason;
ALTER TABLE tenants DROP COLUMN state;
