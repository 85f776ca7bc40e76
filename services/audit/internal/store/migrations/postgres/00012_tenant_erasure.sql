-- Tenant erasure (platform/tenantdata, docs/operations.md "Erasure: what
-- is deleted, kept or pseudonymised"). PostgreSQL only: SQLite has no
-- grants, and its cut is the store's own statements.
--
-- The app role may now delete a tenant's webhook secrets, endpoints and
-- delivery attempts (row-level security's delete policies, 00002 and 00003,
-- keep it to the transaction's tenant). The log itself stays append-only
-- for the app role: audit_erase_cut deletes the entries before an
-- erasure's tombstone, as audit_cut does for retention, but only when a
-- tombstone follows the cut, whatever the entries' age.

-- +goose Up
GRANT DELETE ON webhook_secrets, webhook_endpoints, delivery_attempts TO echopilot_app;

-- +goose StatementBegin
CREATE FUNCTION audit_erase_cut(t text, cut bigint, keep_levels integer[], keep_idxs bigint[]) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
	IF t IS DISTINCT FROM current_setting('app.tenant_id', true) THEN
		RAISE EXCEPTION 'audit_erase_cut: tenant % is not the transaction''s tenant', t USING ERRCODE = '42501';
	END IF;
	IF NOT EXISTS (SELECT FROM audit_retention r WHERE r.tenant_id = t AND r.cut_size = cut) THEN
		RAISE EXCEPTION 'audit_erase_cut: tenant % has no cut recorded at %', t, cut;
	END IF;
	IF NOT EXISTS (SELECT FROM audit_entries e WHERE e.tenant_id = t AND e.seq > cut
			AND e.event_type = 'tenant.erased' AND e.user_name = 'service:tenancy') THEN
		RAISE EXCEPTION 'audit_erase_cut: no erasure tombstone after entry % of tenant %', cut, t;
	END IF;
	DELETE FROM audit_entries e WHERE e.tenant_id = t AND e.seq <= cut;
	DELETE FROM audit_nodes n WHERE n.tenant_id = t AND ((n.idx + 1) << n.level::integer) <= cut
		AND (n.level::integer, n.idx) NOT IN (SELECT * FROM unnest(keep_levels, keep_idxs));
	DELETE FROM audit_checkpoints c WHERE c.tenant_id = t AND c.size < cut;
END
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION audit_erase_cut(text, bigint, integer[], bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_erase_cut(text, bigint, integer[], bigint[]) TO echopilot_app;

-- +goose Down
DROP FUNCTION audit_erase_cut(text, bigint, integer[], bigint[]);
REVOKE DELETE ON webhook_secrets, webhook_endpoints, delivery_attempts FROM echopilot_app;
