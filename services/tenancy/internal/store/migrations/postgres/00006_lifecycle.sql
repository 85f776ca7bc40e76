-- Tenant exports and erasures (domain/lifecycle.go). Keep in step with
-- ../sqlite. The export tables are skipped by tenant data exports and
-- deleted by an erasure; erasures are kept: the record that a tenant was
-- erased outlives its data.

-- +goose Up
CREATE TABLE exports (
	tenant_id       text NOT NULL CHECK (tenant_id <> ''),
	export_id       text NOT NULL UNIQUE,
	state           text NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
	requested_by    text NOT NULL,
	created_at      timestamptz NOT NULL,
	finished_at     timestamptz,
	current_file    text NOT NULL DEFAULT '',
	error           text NOT NULL DEFAULT '',
	manifest_sha256 text NOT NULL DEFAULT '',
	PRIMARY KEY (tenant_id, export_id)
);

-- One file of an export's archive, in archive order (seq); hash_state is
-- the SHA-256 state after its last stored chunk and resume_cursor the
-- TenantData cursor after it, so a restarted worker continues the file.
CREATE TABLE export_files (
	tenant_id     text NOT NULL CHECK (tenant_id <> ''),
	export_id     text NOT NULL,
	seq           bigint NOT NULL,
	name          text NOT NULL,
	size          bigint NOT NULL,
	row_count     bigint NOT NULL,
	sha256        text NOT NULL DEFAULT '',
	done          boolean NOT NULL,
	hash_state    bytea NOT NULL,
	resume_cursor text NOT NULL DEFAULT '',
	PRIMARY KEY (tenant_id, export_id, seq),
	UNIQUE (tenant_id, export_id, name)
);

-- The bytes of a file, at most 1 MiB a row.
CREATE TABLE export_chunks (
	tenant_id text NOT NULL CHECK (tenant_id <> ''),
	export_id text NOT NULL,
	file_seq  bigint NOT NULL,
	seq       bigint NOT NULL,
	data      bytea NOT NULL,
	PRIMARY KEY (tenant_id, export_id, file_seq, seq)
);

-- One erasure per tenant (OffboardTenant); progress is the JSON of its
-- services' progress.
CREATE TABLE erasures (
	tenant_id      text NOT NULL PRIMARY KEY CHECK (tenant_id <> ''),
	erasure_id     text NOT NULL UNIQUE,
	state          text NOT NULL CHECK (state IN ('running', 'done')),
	reason         text NOT NULL,
	requested_by   text NOT NULL,
	export_id      text NOT NULL,
	export_skipped boolean NOT NULL,
	pseudonym      text NOT NULL,
	progress       text NOT NULL,
	created_at     timestamptz NOT NULL,
	finished_at    timestamptz
);

ALTER TABLE exports ENABLE ROW LEVEL SECURITY;
ALTER TABLE exports FORCE ROW LEVEL SECURITY;
CREATE POLICY exports_select ON exports FOR SELECT
	USING (tenant_id = current_setting('app.tenant_id', true) OR current_setting('app.all_tenants', true) = 'on');
CREATE POLICY exports_insert ON exports FOR INSERT
	WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY exports_update ON exports FOR UPDATE
	USING (tenant_id = current_setting('app.tenant_id', true))
	WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY exports_delete ON exports FOR DELETE
	USING (tenant_id = current_setting('app.tenant_id', true));

ALTER TABLE export_files ENABLE ROW LEVEL SECURITY;
ALTER TABLE export_files FORCE ROW LEVEL SECURITY;
CREATE POLICY export_files_select ON export_files FOR SELECT
	USING (tenant_id = current_setting('app.tenant_id', true) OR current_setting('app.all_tenants', true) = 'on');
CREATE POLICY export_files_insert ON export_files FOR INSERT
	WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY export_files_update ON export_files FOR UPDATE
	USING (tenant_id = current_setting('app.tenant_id', true))
	WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY export_files_delete ON export_files FOR DELETE
	USING (tenant_id = current_setting('app.tenant_id', true));

ALTER TABLE export_chunks ENABLE ROW LEVEL SECURITY;
ALTER TABLE export_chunks FORCE ROW LEVEL SECURITY;
CREATE POLICY export_chunks_select ON export_chunks FOR SELECT
	USING (tenant_id = current_setting('app.tenant_id', true) OR current_setting('app.all_tenants', true) = 'on');
CREATE POLICY export_chunks_insert ON export_chunks FOR INSERT
	WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY export_chunks_update ON export_chunks FOR UPDATE
	USING (tenant_id = current_setting('app.tenant_id', true))
	WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY export_chunks_delete ON export_chunks FOR DELETE
	USING (tenant_id = current_setting('app.tenant_id', true));

ALTER TABLE erasures ENABLE ROW LEVEL SECURITY;
ALTER TABLE erasures FORCE ROW LEVEL SECURITY;
CREATE POLICY erasures_select ON erasures FOR SELECT
	USING (tenant_id = current_setting('app.tenant_id', true) OR current_setting('app.all_tenants', true) = 'on');
CREATE POLICY erasures_insert ON erasures FOR INSERT
	WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY erasures_update ON erasures FOR UPDATE
	USING (tenant_id = current_setting('app.tenant_id', true))
	WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY erasures_delete ON erasures FOR DELETE
	USING (tenant_id = current_setting('app.tenant_id', true));

GRANT SELECT, INSERT, UPDATE, DELETE ON exports, export_files, export_chunks, erasures TO echopilot_app;

-- +goose Down
DROP TABLE erasures;
DROP TABLE export_chunks;
DROP TABLE export_files;
DROP TABLE exports;
