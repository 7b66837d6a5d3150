-- A tenant's own limits, set by the hosting provider (UpdateTenant, the Tenant operator):
-- calls per second across every replica; NULL is the deployment's default.
ALTER TABLE tenancy.tenants ADD COLUMN calls_per_second integer
    CHECK (calls_per_second BETWEEN 1 AND 1000000);

-- A tenant's display name and limits, through the platform's own role as every change of
-- the tenants table is.
CREATE FUNCTION tenancy.update_tenant(tenant uuid, name text, rate integer)
RETURNS SETOF tenancy.tenants
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE tenancy.tenants t
       SET display_name = name, calls_per_second = rate, version = t.version + 1,
           updated_at = now()
     WHERE t.id = tenant
    RETURNING *
$$;

ALTER FUNCTION tenancy.update_tenant(uuid, text, integer) OWNER TO caseway_system;
REVOKE ALL ON FUNCTION tenancy.update_tenant(uuid, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy.update_tenant(uuid, text, integer) TO caseway_app;
