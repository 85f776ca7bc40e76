-- Audit schema, SQLite flavour. Keep in step with ../postgres. SQLite has no
-- row-level security: the store names the tenant in every query.

-- +goose Up
-- One row per entry; seq is dense from 1 per tenant, so the primary key
-- refuses a fork (two entries at one position).
CREATE TABLE audit_entries (
	tenant_id  TEXT NOT NULL CHECK (tenant_id <> ''),
	seq        INTEGER NOT NULL CHECK (seq > 0),
	ts         TIMESTAMP NOT NULL,
	event_type TEXT NOT NULL,
	user_name  TEXT NOT NULL,
	action     TEXT NOT NULL,
	resource   TEXT NOT NULL,
	details    TEXT NOT NULL,
	severity   TEXT NOT NULL,
	prev_hash  TEXT NOT NULL,
	hash       TEXT NOT NULL,
	PRIMARY KEY (tenant_id, seq)
) WITHOUT ROWID;

-- Merkle tree nodes (RFC 6962) of each tenant's log: level 0 holds leaf
-- hashes; a node is stored once its subtree is complete. Proofs and the
-- next append read O(log n) of them.
CREATE TABLE audit_nodes (
	tenant_id TEXT NOT NULL CHECK (tenant_id <> ''),
	level     INTEGER NOT NULL,
	idx       INTEGER NOT NULL,
	hash      BLOB NOT NULL,
	PRIMARY KEY (tenant_id, level, idx)
) WITHOUT ROWID;

-- The head of each log: appends lock this row, which serializes them per
-- tenant (across replicas on PostgreSQL).
CREATE TABLE audit_heads (
	tenant_id TEXT NOT NULL PRIMARY KEY CHECK (tenant_id <> ''),
	size      INTEGER NOT NULL,
	last_hash TEXT NOT NULL,
	last_ts   TIMESTAMP NOT NULL
) WITHOUT ROWID;

-- Signed checkpoints, one per append batch: a later verification compares
-- the entries with each, which tells where a rewrite starts.
CREATE TABLE audit_checkpoints (
	tenant_id TEXT NOT NULL CHECK (tenant_id <> ''),
	size      INTEGER NOT NULL,
	note      TEXT NOT NULL,
	PRIMARY KEY (tenant_id, size)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE audit_checkpoints;
DROP TABLE audit_heads;
DROP TABLE audit_nodes;
DROP TABLE audit_entries;
