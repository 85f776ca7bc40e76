-- Each tenancy process's last stored batch of its own decisions; see
-- ../postgres/00003_decision_writers.sql. Times are unix microseconds (see
-- platform/store).

-- +goose Up
CREATE TABLE decision_writers (
	writer_id  TEXT PRIMARY KEY,
	batch_seq  INTEGER NOT NULL,
	updated_at TIMESTAMP NOT NULL
) WITHOUT ROWID;

-- +goose Down
DROP TABLE decision_writers;
