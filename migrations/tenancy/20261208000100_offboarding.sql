-- Offboarding: a leaving tenant's full export, then the purge of its rows.
--
-- `caseway tenant export` and `caseway tenant purge` run as the schema owner (the migration's
-- credentials), under the tenant's own row-level security context like every transaction.
-- What stays of a purged tenant is its row in tenancy.tenants (no personal data: slug, name,
-- dates), marked purged so its id and slug are never taken again and the services drop its
-- late events, and one row here: what was exported, with the manifest's checksum, and what
-- the purge deleted per table.

ALTER TABLE tenancy.tenants ADD COLUMN purged_at timestamptz;

CREATE TABLE tenancy.offboardings (
    tenant_id          uuid        PRIMARY KEY,
    -- The last full export: where it went and the SHA-256 of its manifest.
    exported_at        timestamptz,
    export_location    text,
    export_manifest    text,
    purge_started_at   timestamptz,
    purge_finished_at  timestamptz,
    -- Rows deleted so far per table ("schema.table": count), written in each batch's
    -- transaction, so a purge cut short resumes with an exact report.
    purge_report       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE tenancy.offboardings ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenancy.offboardings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenancy.offboardings
    USING (tenant_id = platform.current_tenant())
    WITH CHECK (tenant_id = platform.current_tenant());
GRANT SELECT ON tenancy.offboardings TO caseway_app;

-- Marks a tenant purged: from then on the tenant's calls are refused and its events dropped.
CREATE FUNCTION tenancy.mark_tenant_purged(tenant uuid)
RETURNS SETOF tenancy.tenants
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE tenancy.tenants t
       SET purged_at = coalesce(t.purged_at, now()), version = t.version + 1, updated_at = now()
     WHERE t.id = tenant AND t.status = 'suspended'
    RETURNING *
$$;
ALTER FUNCTION tenancy.mark_tenant_purged(uuid) OWNER TO caseway_system;
REVOKE ALL ON FUNCTION tenancy.mark_tenant_purged(uuid) FROM PUBLIC;
