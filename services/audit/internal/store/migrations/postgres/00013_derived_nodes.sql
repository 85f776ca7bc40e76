-- Tree nodes below level 4 (ledger.StoredLevel) are derived from the
-- entries' hashes when a proof needs them; a full verification compares
-- only the stored ones of level 4 and up, an eighth of them. PostgreSQL
-- only (SQLite reads in two statements, which cost no round trip).
--
-- audit_tree_hashes replaces audit_tree_nodes for proofs read outside a
-- transaction: the stored nodes ids (levels, idxs) and, as rows of level
-- -1, the hashes of the entries with seq in [los[i], his[i]], in one
-- statement that sets the tenant scope itself (see 00006). audit_tree_nodes
-- stays for the previous release, which may run beside this one during a
-- rollout; the contract step drops it.
--
-- Its query is planned once per connection (a generic plan): left to
-- choose, PostgreSQL kept planning it afresh on every call (the arrays'
-- sizes make each custom plan look cheaper), which cost a proof at 1 M
-- entries about 0.3 ms, more than the query itself. Every lookup in it is
-- by primary key whatever the arguments, so the generic plan is the plan.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION audit_tree_hashes(t text, levels integer[], idxs bigint[], los bigint[], his bigint[])
RETURNS TABLE (node_level integer, node_idx bigint, node_hash bytea, entry_hash text)
LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $$
BEGIN
	PERFORM set_config('app.tenant_id', t, true);
	RETURN QUERY SELECT u.l, u.i, n.hash, NULL::text FROM unnest(levels, idxs) AS u(l, i)
		CROSS JOIN LATERAL (SELECT a.hash FROM audit_nodes a WHERE a.tenant_id = t AND a.level = u.l AND a.idx = u.i LIMIT 1) n
	UNION ALL
	SELECT -1, e.seq, NULL::bytea, e.hash FROM unnest(los, his) AS r(lo, hi)
		CROSS JOIN LATERAL (SELECT a.seq, a.hash FROM audit_entries a WHERE a.tenant_id = t AND a.seq BETWEEN r.lo AND r.hi OFFSET 0) e;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION audit_tree_hashes(text, integer[], bigint[], bigint[], bigint[]);
