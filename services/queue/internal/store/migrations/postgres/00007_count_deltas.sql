-- Queue status (Counts) without counting the jobs. Grouping a tenant's
-- jobs through the covering index (00003) cost a tuple per job on every
-- status call: 70 ms for a backlog of 100,000, growing with it. Counter
-- rows updated by every job write, as SQLite keeps them (../sqlite/00002),
-- would make PostgreSQL's concurrent job transactions queue on them. So a
-- trigger appends a delta row per change instead (insert-only: nothing to
-- wait for), in the transaction of the write, so the counts can never drift
-- from the rows, whatever statement writes them; the queue service folds
-- the deltas into job_counts every second (queue_fold_counts, one folder at
-- a time), and a status call sums the tenant's counter rows and the
-- deltas not folded yet, in one statement (one snapshot: before or after a
-- fold, never half of it). Keep in step with ../sqlite.

-- +goose Up
CREATE TABLE job_counts (
	tenant_id text NOT NULL,
	type      text NOT NULL,
	prio      integer NOT NULL,
	state     text NOT NULL,
	-- Rows at 0 stay; Counts skips them.
	n         bigint NOT NULL,
	PRIMARY KEY (tenant_id, type, prio, state)
);

CREATE TABLE job_count_deltas (
	id        bigserial PRIMARY KEY,
	tenant_id text NOT NULL,
	type      text NOT NULL,
	prio      integer NOT NULL,
	state     text NOT NULL,
	d         integer NOT NULL
);
CREATE INDEX job_count_deltas_tenant ON job_count_deltas (tenant_id);

-- No job write may slip between the counting and the triggers.
LOCK TABLE jobs IN SHARE ROW EXCLUSIVE MODE;

INSERT INTO job_counts (tenant_id, type, prio, state, n)
	SELECT tenant_id, type, prio, state, count(*) FROM jobs GROUP BY tenant_id, type, prio, state;

-- The trigger and the fold run as the owner (SECURITY DEFINER), so the app
-- role needs no write on the counters. A job write runs in its job's
-- tenant (the jobs policies see to it), so the trigger's delta passes the
-- insert policy below.
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

CREATE TRIGGER jobs_counted AFTER INSERT OR DELETE ON jobs
	FOR EACH ROW EXECUTE FUNCTION jobs_count_delta();
CREATE TRIGGER jobs_counted_update AFTER UPDATE OF tenant_id, type, prio, state ON jobs
	FOR EACH ROW WHEN (OLD.tenant_id IS DISTINCT FROM NEW.tenant_id OR OLD.type IS DISTINCT FROM NEW.type
		OR OLD.prio IS DISTINCT FROM NEW.prio OR OLD.state IS DISTINCT FROM NEW.state)
	EXECUTE FUNCTION jobs_count_delta();

-- Folds the deltas into job_counts, tenant by tenant (the policies below
-- let the owner touch only the tenant its transaction names), and returns
-- how many it folded.
-- +goose StatementBegin
CREATE FUNCTION queue_fold_counts() RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
	t      text;
	n      bigint;
	folded bigint := 0;
BEGIN
	-- One folder at a time (replicas): a second waits, then finds little.
	PERFORM pg_advisory_xact_lock(hashtext('queue.fold_counts'));
	PERFORM set_config('app.all_tenants', 'on', true);
	FOR t IN SELECT DISTINCT tenant_id FROM job_count_deltas LOOP
		PERFORM set_config('app.tenant_id', t, true);
		WITH gone AS (
			DELETE FROM job_count_deltas WHERE tenant_id = t RETURNING type, prio, state, d
		), sums AS (
			SELECT type, prio, state, sum(d) AS d, count(*) AS rows FROM gone GROUP BY type, prio, state
		), upserted AS (
			INSERT INTO job_counts AS c (tenant_id, type, prio, state, n)
				SELECT t, type, prio, state, d FROM sums
			ON CONFLICT (tenant_id, type, prio, state) DO UPDATE SET n = c.n + excluded.n
		)
		SELECT coalesce(sum(rows), 0) INTO n FROM sums;
		folded := folded + n;
	END LOOP;
	RETURN folded;
END $$;
-- +goose StatementEnd

-- Row-level security, forced (the functions run as the owner): the app
-- role reads its tenant's counters; the trigger's and the fold's writes
-- are allowed in the tenant their transaction names.
ALTER TABLE job_counts ENABLE ROW LEVEL SECURITY;
ALTER TABLE job_counts FORCE ROW LEVEL SECURITY;
CREATE POLICY job_counts_select ON job_counts FOR SELECT
	USING (tenant_id = current_setting('app.tenant_id', true) OR current_setting('app.all_tenants', true) = 'on');
CREATE POLICY job_counts_insert ON job_counts FOR INSERT
	WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY job_counts_update ON job_counts FOR UPDATE
	USING (tenant_id = current_setting('app.tenant_id', true))
	WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
ALTER TABLE job_count_deltas ENABLE ROW LEVEL SECURITY;
ALTER TABLE job_count_deltas FORCE ROW LEVEL SECURITY;
CREATE POLICY job_count_deltas_select ON job_count_deltas FOR SELECT
	USING (tenant_id = current_setting('app.tenant_id', true) OR current_setting('app.all_tenants', true) = 'on');
CREATE POLICY job_count_deltas_insert ON job_count_deltas FOR INSERT
	WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY job_count_deltas_delete ON job_count_deltas FOR DELETE
	USING (tenant_id = current_setting('app.tenant_id', true));
-- The app role only reads them; the functions write.
GRANT SELECT ON job_counts, job_count_deltas TO echopilot_app;
REVOKE ALL ON FUNCTION jobs_count_delta() FROM PUBLIC;
REVOKE ALL ON FUNCTION queue_fold_counts() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION queue_fold_counts() TO echopilot_app;

-- Only Counts read the covering index, and every job write paid for it.
DROP INDEX jobs_counts;

-- +goose Down
CREATE INDEX jobs_counts ON jobs (tenant_id, type, prio, state);
DROP TRIGGER jobs_counted_update ON jobs;
DROP TRIGGER jobs_counted ON jobs;
DROP FUNCTION queue_fold_counts();
DROP FUNCTION jobs_count_delta();
DROP TABLE job_count_deltas;
DROP TABLE job_counts;
