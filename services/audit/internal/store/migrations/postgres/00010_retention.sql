-- Retention: a tenant's max age (0: off) and the cut it has made. Entries
-- 1 to cut_size were deleted; cut_range holds the hashes of the frontier
-- (ledger.RangeIDs(cut_size), kept as tree nodes too), cut_last_hash and
-- cut_last_ts are entry cut_size's, cut_note the checkpoint signed at the
-- cut. PostgreSQL flavour; keep in step with ../sqlite.

-- +goose Up
CREATE TABLE audit_retention (
	tenant_id     text NOT NULL PRIMARY KEY CHECK (tenant_id <> ''),
	max_age_s     bigint NOT NULL DEFAULT 0 CHECK (max_age_s >= 0),
	cut_size      bigint NOT NULL DEFAULT 0 CHECK (cut_size >= 0),
	cut_last_hash text NOT NULL DEFAULT '',
	cut_last_ts   timestamptz,
	cut_range     bytea NOT NULL DEFAULT '\x',
	cut_note      text NOT NULL DEFAULT '',
	cut_at        timestamptz
);

ALTER TABLE audit_retention ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_retention FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_retention_select ON audit_retention FOR SELECT
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)) OR (SELECT current_setting('app.all_tenants', true)) = 'on');
CREATE POLICY audit_retention_insert ON audit_retention FOR INSERT
	WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));
CREATE POLICY audit_retention_update ON audit_retention FOR UPDATE
	USING (tenant_id = (SELECT current_setting('app.tenant_id', true)))
	WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));

GRANT SELECT, INSERT, UPDATE ON audit_retention TO echopilot_app;

-- The application role may not delete from the log. Retention deletes
-- through this function, owned by the schema owner: it deletes only the
-- prefix of the cut just recorded for the tenant, and only when the cut's
-- last entry is older than the tenant's retention (so a role that can call
-- it still cannot delete recent entries), and only in the tenant the
-- transaction is scoped to. It keeps the frontier nodes
-- (keep_levels, keep_idxs) and the checkpoints from the cut on.
-- +goose StatementBegin
CREATE FUNCTION audit_cut(t text, cut bigint, keep_levels integer[], keep_idxs bigint[]) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
	age bigint;
	last timestamptz;
BEGIN
	-- Only within the caller's own tenant scope: the function must not
	-- reach past row-level security into another tenant's log.
	IF t IS DISTINCT FROM current_setting('app.tenant_id', true) THEN
		RAISE EXCEPTION 'audit_cut: tenant % is not the transaction''s tenant', t USING ERRCODE = '42501';
	END IF;
	SELECT r.max_age_s INTO age FROM audit_retention r WHERE r.tenant_id = t AND r.cut_size = cut;
	IF age IS NULL OR age <= 0 THEN
		RAISE EXCEPTION 'audit_cut: tenant % has no retention cut recorded at %', t, cut;
	END IF;
	SELECT e.ts INTO last FROM audit_entries e WHERE e.tenant_id = t AND e.seq = cut;
	IF last IS NOT NULL AND last >= now() - make_interval(secs => age) THEN
		RAISE EXCEPTION 'audit_cut: entry % of tenant % is younger than its retention', cut, t;
	END IF;
	DELETE FROM audit_entries e WHERE e.tenant_id = t AND e.seq <= cut;
	DELETE FROM audit_nodes n WHERE n.tenant_id = t AND ((n.idx + 1) << n.level::integer) <= cut
		AND (n.level::integer, n.idx) NOT IN (SELECT * FROM unnest(keep_levels, keep_idxs));
	DELETE FROM audit_checkpoints c WHERE c.tenant_id = t AND c.size < cut;
END
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION audit_cut(text, bigint, integer[], bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_cut(text, bigint, integer[], bigint[]) TO echopilot_app;

-- +goose Down
DROP FUNCTION audit_cut(text, bigint, integer[], bigint[]);
DROP TABLE audit_retention;
