-- Proofs read the tree size and then the proof's nodes. Each function sets
-- the tenant scope for row-level security and reads in one statement, its
-- own transaction, so a proof costs two round trips instead of six (BEGIN,
-- set_config, size, nodes, COMMIT). The two reads need no shared snapshot:
-- nodes are never updated or deleted, and those of a tree size commit with
-- the head that announces it. SECURITY INVOKER (the default): the caller's
-- role and the policies apply as for any query.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION audit_tree_size(t text) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	PERFORM set_config('app.tenant_id', t, true);
	RETURN COALESCE((SELECT h.size FROM audit_heads h WHERE h.tenant_id = t), 0);
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION audit_tree_nodes(t text, levels integer[], idxs bigint[])
RETURNS TABLE (level smallint, idx bigint, hash bytea)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	PERFORM set_config('app.tenant_id', t, true);
	RETURN QUERY SELECT n.level, n.idx, n.hash FROM audit_nodes n
		WHERE n.tenant_id = t AND (n.level, n.idx) IN (SELECT * FROM unnest(levels, idxs));
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION audit_tree_nodes(text, integer[], bigint[]);
DROP FUNCTION audit_tree_size(text);
