-- Queue status (Counts) groups a tenant's jobs by type, priority and state.
-- Through jobs_state it read every job's row for its type and priority and
-- sorted them all for the grouping. This index covers the query in its
-- group order (an index-only scan where the visibility map is current,
-- which the jobs table's eager autovacuum keeps it). It leads with
-- tenant_id then type, not state, so the lookups of jobs by state
-- (expiring leases, listing) keep their own indexes. Keep in step with
-- ../sqlite.

-- +goose Up
CREATE INDEX jobs_counts ON jobs (tenant_id, type, prio, state);

-- +goose Down
DROP INDEX jobs_counts;
