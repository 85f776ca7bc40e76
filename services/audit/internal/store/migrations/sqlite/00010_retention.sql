-- Retention: a tenant's max age (0: off) and the cut it has made. Entries
-- 1 to cut_size were deleted; cut_range holds the hashes of the frontier
-- (ledger.RangeIDs(cut_size), kept as tree nodes too), cut_last_hash and
-- cut_last_ts are entry cut_size's, cut_note the checkpoint signed at the
-- cut. SQLite flavour; keep in step with ../postgres.

-- +goose Up
CREATE TABLE audit_retention (
	tenant_id     TEXT NOT NULL PRIMARY KEY CHECK (tenant_id <> ''),
	max_age_s     INTEGER NOT NULL DEFAULT 0 CHECK (max_age_s >= 0),
	cut_size      INTEGER NOT NULL DEFAULT 0 CHECK (cut_size >= 0),
	cut_last_hash TEXT NOT NULL DEFAULT '',
	cut_last_ts   TIMESTAMP,
	cut_range     BLOB NOT NULL DEFAULT x'',
	cut_note      TEXT NOT NULL DEFAULT '',
	cut_at        TIMESTAMP
) WITHOUT ROWID;

-- +goose Down
DROP TABLE audit_retention;
