-- Queue status (Counts) counts a tenant's jobs by type, priority and state.
-- Grouping the jobs table cost a row (or index entry) and a sort entry per
-- job on every status call, most of the queue's CPU under a mixed load with
-- a growing backlog. SQLite keeps the counts instead, in job_counts,
-- maintained by triggers in the transaction of every write to jobs (so they
-- can never drift from the rows, whatever statement writes them): a status
-- call reads a tenant's few counter rows. SQLite has one writer at a time,
-- so the counter rows cost no contention. PostgreSQL counts a covering
-- index instead (../postgres/00003): its concurrent shared transactions
-- would queue on the counter rows.

-- +goose Up
CREATE TABLE job_counts (
	tenant_id TEXT NOT NULL,
	type      TEXT NOT NULL,
	prio      INTEGER NOT NULL,
	state     TEXT NOT NULL,
	-- Rows at 0 stay; Counts skips them.
	n         INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, type, prio, state)
) WITHOUT ROWID;

INSERT INTO job_counts (tenant_id, type, prio, state, n)
	SELECT tenant_id, type, prio, state, count(*) FROM jobs GROUP BY tenant_id, type, prio, state;

-- +goose StatementBegin
CREATE TRIGGER jobs_counted_insert AFTER INSERT ON jobs BEGIN
	INSERT INTO job_counts (tenant_id, type, prio, state, n) VALUES (NEW.tenant_id, NEW.type, NEW.prio, NEW.state, 1)
		ON CONFLICT (tenant_id, type, prio, state) DO UPDATE SET n = n + 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER jobs_counted_update AFTER UPDATE OF tenant_id, type, prio, state ON jobs
	WHEN OLD.tenant_id IS NOT NEW.tenant_id OR OLD.type IS NOT NEW.type OR OLD.prio IS NOT NEW.prio OR OLD.state IS NOT NEW.state
BEGIN
	UPDATE job_counts SET n = n - 1
		WHERE tenant_id = OLD.tenant_id AND type = OLD.type AND prio = OLD.prio AND state = OLD.state;
	INSERT INTO job_counts (tenant_id, type, prio, state, n) VALUES (NEW.tenant_id, NEW.type, NEW.prio, NEW.state, 1)
		ON CONFLICT (tenant_id, type, prio, state) DO UPDATE SET n = n + 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER jobs_counted_delete AFTER DELETE ON jobs BEGIN
	UPDATE job_counts SET n = n - 1
		WHERE tenant_id = OLD.tenant_id AND type = OLD.type AND prio = OLD.prio AND state = OLD.state;
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER jobs_counted_delete;
DROP TRIGGER jobs_counted_update;
DROP TRIGGER jobs_counted_insert;
DROP TABLE job_counts;
