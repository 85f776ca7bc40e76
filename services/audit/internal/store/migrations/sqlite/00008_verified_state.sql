-- The last verified state of each tenant's log, so a read verifies only
-- what was appended since (size, root, last entry's hash and timestamp,
-- the tree's compact range), the sticky failure a verification found
-- (failed_seq > 0 until a later full verification passes), and the last
-- full verification's result (the scrubber's or a ?verify=full read's).
-- verifier_keys are the note verifier keys (newline-separated) trusted
-- when the state was reached: the state holds only while they all are.
-- SQLite flavour; keep in step with ../postgres.

-- +goose Up
CREATE TABLE audit_verified (
	tenant_id      TEXT NOT NULL PRIMARY KEY CHECK (tenant_id <> ''),
	size           INTEGER NOT NULL,
	root           BLOB NOT NULL,
	last_hash      TEXT NOT NULL,
	last_ts        TIMESTAMP NOT NULL,
	tree_range     BLOB NOT NULL,
	verified_at    TIMESTAMP NOT NULL,
	failed_seq     INTEGER NOT NULL DEFAULT 0,
	failed_reason  TEXT NOT NULL DEFAULT '',
	failed_at      TIMESTAMP,
	full_at        TIMESTAMP,
	full_valid     BOOLEAN NOT NULL DEFAULT false,
	full_first_bad INTEGER NOT NULL DEFAULT 0,
	full_reason    TEXT NOT NULL DEFAULT '',
	verifier_keys  TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;

-- +goose Down
DROP TABLE audit_verified;
