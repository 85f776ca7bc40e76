-- Searches of a tenant's log (GetChain and ExportLog filters): one index
-- per filter, tenant_id leading, then the filtered column, then seq, so a
-- search reads a range of one index in seq order (either direction) and a
-- page deep in the log resumes after its cursor instead of skipping rows.
-- Severity is a minimum (an IN list of up to three values); ts is a range.
-- Each costs every append one more index entry per entry.
-- SQLite flavour; keep in step with ../postgres.

-- +goose Up
CREATE INDEX audit_entries_event_type ON audit_entries (tenant_id, event_type, seq);
CREATE INDEX audit_entries_user ON audit_entries (tenant_id, user_name, seq);
CREATE INDEX audit_entries_resource ON audit_entries (tenant_id, resource, seq);
CREATE INDEX audit_entries_severity ON audit_entries (tenant_id, severity, seq);
CREATE INDEX audit_entries_ts ON audit_entries (tenant_id, ts, seq);

-- +goose Down
DROP INDEX audit_entries_ts;
DROP INDEX audit_entries_severity;
DROP INDEX audit_entries_resource;
DROP INDEX audit_entries_user;
DROP INDEX audit_entries_event_type;
