-- Tenant exports and erasures (domain/lifecycle.go). Keep in step with
-- ../postgres. The export tables are skipped by tenant data exports and
-- deleted by an erasure; erasures are kept: the record that a tenant was
-- erased outlives its data.

-- +goose Up
CREATE TABLE exports (
	tenant_id       TEXT NOT NULL CHECK (tenant_id <> ''),
	export_id       TEXT NOT NULL UNIQUE,
	state           TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
	requested_by    TEXT NOT NULL,
	created_at      TIMESTAMP NOT NULL,
	finished_at     TIMESTAMP,
	current_file    TEXT NOT NULL DEFAULT '',
	error           TEXT NOT NULL DEFAULT '',
	manifest_sha256 TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (tenant_id, export_id)
) WITHOUT ROWID;

-- One file of an export's archive, in archive order (seq); hash_state is
-- the SHA-256 state after its last stored chunk and resume_cursor the
-- TenantData cursor after it, so a restarted worker continues the file.
CREATE TABLE export_files (
	tenant_id     TEXT NOT NULL CHECK (tenant_id <> ''),
	export_id     TEXT NOT NULL,
	seq           INTEGER NOT NULL,
	name          TEXT NOT NULL,
	size          INTEGER NOT NULL,
	row_count     INTEGER NOT NULL,
	sha256        TEXT NOT NULL DEFAULT '',
	done          BOOLEAN NOT NULL,
	hash_state    BLOB NOT NULL,
	resume_cursor TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (tenant_id, export_id, seq),
	UNIQUE (tenant_id, export_id, name)
) WITHOUT ROWID;

-- The bytes of a file, at most 1 MiB a row.
CREATE TABLE export_chunks (
	tenant_id TEXT NOT NULL CHECK (tenant_id <> ''),
	export_id TEXT NOT NULL,
	file_seq  INTEGER NOT NULL,
	seq       INTEGER NOT NULL,
	data      BLOB NOT NULL,
	PRIMARY KEY (tenant_id, export_id, file_seq, seq)
) WITHOUT ROWID;

-- One erasure per tenant (OffboardTenant); progress is the JSON of its
-- services' progress.
CREATE TABLE erasures (
	tenant_id      TEXT NOT NULL PRIMARY KEY CHECK (tenant_id <> ''),
	erasure_id     TEXT NOT NULL UNIQUE,
	state          TEXT NOT NULL CHECK (state IN ('running', 'done')),
	reason         TEXT NOT NULL,
	requested_by   TEXT NOT NULL,
	export_id      TEXT NOT NULL,
	export_skipped BOOLEAN NOT NULL,
	pseudonym      TEXT NOT NULL,
	progress       TEXT NOT NULL,
	created_at     TIMESTAMP NOT NULL,
	finished_at    TIMESTAMP
) WITHOUT ROWID;

-- +goose Down
DROP TABLE erasures;
DROP TABLE export_chunks;
DROP TABLE export_files;
DROP TABLE exports;
