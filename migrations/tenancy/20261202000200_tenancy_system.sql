-- The tenant lifecycle reads and writes every tenant through functions owned by
-- caseway_system (see the platform's system role migration); a tenant's own transactions
-- read its row only, and the services' role writes none directly.

GRANT USAGE, CREATE ON SCHEMA tenancy TO caseway_system;
GRANT SELECT, INSERT, UPDATE ON tenancy.tenants TO caseway_system;
CREATE POLICY system_role ON tenancy.tenants TO caseway_system USING (true) WITH CHECK (true);

DROP POLICY tenant_isolation ON tenancy.tenants;
CREATE POLICY tenant_isolation ON tenancy.tenants
    USING (id = platform.current_tenant())
    WITH CHECK (false);
REVOKE INSERT, UPDATE ON tenancy.tenants FROM caseway_app;

CREATE FUNCTION tenancy.create_tenant(tenant uuid, tenant_slug text, name text)
RETURNS SETOF tenancy.tenants
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO tenancy.tenants (id, slug, display_name, status)
    VALUES (tenant, tenant_slug, name, 'active')
    RETURNING *
$$;

-- One tenant by id or by slug; locked for the caller's transaction when asked.
CREATE FUNCTION tenancy.find_tenant(tenant uuid, tenant_slug text, lock boolean)
RETURNS SETOF tenancy.tenants
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF lock THEN
        RETURN QUERY SELECT * FROM tenancy.tenants t
                      WHERE t.id = tenant OR t.slug = tenant_slug FOR UPDATE;
    ELSE
        RETURN QUERY SELECT * FROM tenancy.tenants t
                      WHERE t.id = tenant OR t.slug = tenant_slug;
    END IF;
END
$$;

CREATE FUNCTION tenancy.list_tenants(with_status text, after_slug text, page bigint)
RETURNS SETOF tenancy.tenants
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM tenancy.tenants t
     WHERE (with_status IS NULL OR t.status = with_status)
       AND (after_slug IS NULL OR t.slug > after_slug)
     ORDER BY t.slug LIMIT page
$$;

CREATE FUNCTION tenancy.set_tenant_status(tenant uuid, new_status text)
RETURNS SETOF tenancy.tenants
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE tenancy.tenants t SET status = new_status, version = t.version + 1, updated_at = now()
     WHERE t.id = tenant
    RETURNING *
$$;

ALTER FUNCTION tenancy.create_tenant(uuid, text, text) OWNER TO caseway_system;
ALTER FUNCTION tenancy.find_tenant(uuid, text, boolean) OWNER TO caseway_system;
ALTER FUNCTION tenancy.list_tenants(text, text, bigint) OWNER TO caseway_system;
ALTER FUNCTION tenancy.set_tenant_status(uuid, text) OWNER TO caseway_system;
REVOKE ALL ON FUNCTION tenancy.create_tenant(uuid, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION tenancy.find_tenant(uuid, text, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION tenancy.list_tenants(text, text, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION tenancy.set_tenant_status(uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy.create_tenant(uuid, text, text) TO caseway_app;
GRANT EXECUTE ON FUNCTION tenancy.find_tenant(uuid, text, boolean) TO caseway_app;
GRANT EXECUTE ON FUNCTION tenancy.list_tenants(text, text, bigint) TO caseway_app;
GRANT EXECUTE ON FUNCTION tenancy.set_tenant_status(uuid, text) TO caseway_app;
