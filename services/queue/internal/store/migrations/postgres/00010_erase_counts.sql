-- Tenant erasure of the job counters (platform/tenantdata). PostgreSQL
-- only: on SQLite the app may delete job_counts like any table. Here the
-- counters are written only by the owner's functions (00007), so erasing
-- a tenant's goes through one too, in the caller's tenant scope, and only
-- once the tenant has no jobs left (the counters follow the jobs).

-- +goose Up
CREATE POLICY job_counts_delete ON job_counts FOR DELETE
	USING (tenant_id = current_setting('app.tenant_id', true));

-- +goose StatementBegin
CREATE FUNCTION queue_erase_counts(t text) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
	deltas bigint;
	counts bigint;
BEGIN
	IF t IS DISTINCT FROM current_setting('app.tenant_id', true) THEN
		RAISE EXCEPTION 'queue_erase_counts: tenant % is not the transaction''s tenant', t USING ERRCODE = '42501';
	END IF;
	IF EXISTS (SELECT FROM jobs WHERE tenant_id = t) THEN
		RETURN -1;
	END IF;
	DELETE FROM job_count_deltas WHERE tenant_id = t;
	GET DIAGNOSTICS deltas = ROW_COUNT;
	DELETE FROM job_counts WHERE tenant_id = t;
	GET DIAGNOSTICS counts = ROW_COUNT;
	RETURN deltas + counts;
END $$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION queue_erase_counts(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION queue_erase_counts(text) TO echopilot_app;

-- +goose Down
DROP FUNCTION queue_erase_counts(text);
DROP POLICY job_counts_delete ON job_counts;
