-- PostgreSQL only: SQLite has no autovacuum to tune.
--
-- Every job is written about three times (enqueue, lease, finish), so dead
-- row versions pile up fast in the claim index, and the planner needs fresh
-- statistics of the state mix: vacuum and analyze the jobs table once 2% of
-- it changed instead of the default 20%.

-- +goose Up
ALTER TABLE jobs SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);

-- +goose Down
ALTER TABLE jobs RESET (autovacuum_vacuum_scale_factor, autovacuum_analyze_scale_factor);
