-- Each tenancy process's last stored batch of its own decisions (its
-- writer id is random per process start), stored in the batch's
-- transaction, so a stats read learns from its snapshot which of the
-- process's pending batches it already holds and need not wait for a
-- batch write (domain.Live). Not tenant data: no row-level security.
-- Keep in step with ../sqlite.

-- +goose Up
CREATE TABLE decision_writers (
	writer_id  text PRIMARY KEY,
	batch_seq  bigint NOT NULL,
	updated_at timestamptz NOT NULL
);
GRANT SELECT, INSERT, UPDATE, DELETE ON decision_writers TO echopilot_app;

-- +goose Down
DROP TABLE decision_writers;
