-- The status counters' deltas (00007) per statement instead of per row:
-- a row trigger called its SECURITY DEFINER function and inserted a delta
-- row for every job a statement wrote (two for a state change), so a claim
-- or a completion of 100 jobs inserted 200 rows and cost PostgreSQL about
-- a sixth of its jobs/s (BENCHMARKS.md). A statement trigger reads the
-- statement's rows from its transition tables and inserts one delta per
-- (tenant, type, priority, state) whose count changed: two for that claim.
-- A statement that changes no job's group (a heartbeat, a claim that found
-- nothing) inserts none. PostgreSQL only; SQLite keeps its counters
-- directly (../sqlite/00002).

-- +goose Up
DROP TRIGGER jobs_counted_update ON jobs;
DROP TRIGGER jobs_counted ON jobs;
DROP FUNCTION jobs_count_delta();

-- +goose StatementBegin
CREATE FUNCTION jobs_count_deltas() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
	-- Each query names only the transition tables its trigger declares.
	IF TG_OP = 'INSERT' THEN
		INSERT INTO job_count_deltas (tenant_id, type, prio, state, d)
			SELECT tenant_id, type, prio, state, count(*) FROM new_jobs GROUP BY tenant_id, type, prio, state;
	ELSIF TG_OP = 'DELETE' THEN
		INSERT INTO job_count_deltas (tenant_id, type, prio, state, d)
			SELECT tenant_id, type, prio, state, -count(*) FROM old_jobs GROUP BY tenant_id, type, prio, state;
	ELSE
		-- A row whose group did not change adds +1 and -1 to it: no delta.
		INSERT INTO job_count_deltas (tenant_id, type, prio, state, d)
			SELECT tenant_id, type, prio, state, sum(d) FROM (
				SELECT tenant_id, type, prio, state, 1 AS d FROM new_jobs
				UNION ALL
				SELECT tenant_id, type, prio, state, -1 FROM old_jobs
			) rows GROUP BY tenant_id, type, prio, state HAVING sum(d) <> 0;
	END IF;
	RETURN NULL;
END $$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION jobs_count_deltas() FROM PUBLIC;

-- No write may slip between the two sets of triggers: in the transaction
-- of this migration, the table is locked from the first DROP on.
CREATE TRIGGER jobs_counted_insert AFTER INSERT ON jobs
	REFERENCING NEW TABLE AS new_jobs FOR EACH STATEMENT EXECUTE FUNCTION jobs_count_deltas();
CREATE TRIGGER jobs_counted_update AFTER UPDATE ON jobs
	REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs FOR EACH STATEMENT EXECUTE FUNCTION jobs_count_deltas();
CREATE TRIGGER jobs_counted_delete AFTER DELETE ON jobs
	REFERENCING OLD TABLE AS old_jobs FOR EACH STATEMENT EXECUTE FUNCTION jobs_count_deltas();

-- +goose Down
DROP TRIGGER jobs_counted_delete ON jobs;
DROP TRIGGER jobs_counted_update ON jobs;
DROP TRIGGER jobs_counted_insert ON jobs;
DROP FUNCTION jobs_count_deltas();

-- +goose StatementBegin
CREATE FUNCTION jobs_count_delta() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
	IF TG_OP IN ('UPDATE', 'DELETE') THEN
		INSERT INTO job_count_deltas (tenant_id, type, prio, state, d) VALUES (OLD.tenant_id, OLD.type, OLD.prio, OLD.state, -1);
	END IF;
	IF TG_OP IN ('UPDATE', 'INSERT') THEN
		INSERT INTO job_count_deltas (tenant_id, type, prio, state, d) VALUES (NEW.tenant_id, NEW.type, NEW.prio, NEW.state, 1);
	END IF;
	RETURN NULL;
END $$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION jobs_count_delta() FROM PUBLIC;
CREATE TRIGGER jobs_counted AFTER INSERT OR DELETE ON jobs
	FOR EACH ROW EXECUTE FUNCTION jobs_count_delta();
CREATE TRIGGER jobs_counted_update AFTER UPDATE OF tenant_id, type, prio, state ON jobs
	FOR EACH ROW WHEN (OLD.tenant_id IS DISTINCT FROM NEW.tenant_id OR OLD.type IS DISTINCT FROM NEW.type
		OR OLD.prio IS DISTINCT FROM NEW.prio OR OLD.state IS DISTINCT FROM NEW.state)
	EXECUTE FUNCTION jobs_count_delta();
