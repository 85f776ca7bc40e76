-- +goose Up
CREATE TABLE items (
	tenant_id TEXT NOT NULL,
	id        INTEGER NOT NULL,
	name      TEXT,
	data      BLOB,
	at        TIMESTAMP,
	secret    TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (tenant_id, id)
);
CREATE TABLE links (
	tenant_id        TEXT NOT NULL,
	a                TEXT NOT NULL,
	b                TEXT NOT NULL,
	target_tenant_id TEXT NOT NULL,
	PRIMARY KEY (tenant_id, a, b)
) WITHOUT ROWID;
CREATE TABLE ledger (
	tenant_id TEXT NOT NULL,
	id        TEXT NOT NULL,
	payer     TEXT NOT NULL,
	paid_at   TIMESTAMP,
	PRIMARY KEY (tenant_id, id)
);
CREATE TABLE registry (tenant_id TEXT NOT NULL PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE skipped (tenant_id TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (tenant_id, id));
CREATE TABLE counters (tenant_id TEXT NOT NULL PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE plain (id TEXT NOT NULL PRIMARY KEY, note TEXT NOT NULL);

-- +goose Down
DROP TABLE plain;
DROP TABLE counters;
DROP TABLE skipped;
DROP TABLE registry;
DROP TABLE ledger;
DROP TABLE links;
DROP TABLE items;
