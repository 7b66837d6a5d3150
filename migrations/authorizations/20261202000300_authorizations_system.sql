-- The authorizations' workers find what to close and which holds to ask about across
-- tenants through functions owned by caseway_system (see the platform's system role
-- migration), then act in each tenant's own scope. With this, no policy honours app.scope.

GRANT USAGE, CREATE ON SCHEMA authorizations TO caseway_system;
-- SELECT ... FOR UPDATE takes the UPDATE privilege.
GRANT SELECT, UPDATE ON authorizations.authorizations TO caseway_system;
GRANT SELECT ON authorizations.draws TO caseway_system;
CREATE POLICY system_role ON authorizations.authorizations TO caseway_system USING (true);
CREATE POLICY system_role ON authorizations.draws TO caseway_system USING (true);

DROP POLICY tenant_isolation ON authorizations.authorizations;
CREATE POLICY tenant_isolation ON authorizations.authorizations
    USING (tenant_id = platform.current_tenant())
    WITH CHECK (tenant_id = platform.current_tenant());
DROP POLICY tenant_isolation ON authorizations.draws;
CREATE POLICY tenant_isolation ON authorizations.draws
    USING (tenant_id = platform.current_tenant())
    WITH CHECK (tenant_id = platform.current_tenant());

-- Approved authorizations of every tenant whose end date is before `today`, oldest first,
-- locked for the caller's transaction (which closes them tenant by tenant).
CREATE FUNCTION authorizations.ended_approved(today date, page bigint)
RETURNS TABLE (tenant_id uuid, id uuid)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT a.tenant_id, a.id FROM authorizations.authorizations a
     WHERE a.status = 2 AND a.end_date < today
     ORDER BY a.end_date, a.id LIMIT page FOR UPDATE
$$;

-- Holds of every tenant older than `older_than` that no record's event has settled: the
-- current one (held_version, made by held_by) or earlier units (earlier_version), 0 for the
-- one that is not.
CREATE FUNCTION authorizations.unsettled_holds(older_than interval, page bigint)
RETURNS TABLE (tenant_id uuid, authorization_id uuid, service_record_id uuid,
               held_version bigint, held_by uuid, earlier_version bigint)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT d.tenant_id, d.authorization_id, d.service_record_id,
           CASE WHEN d.held_units > 0 AND d.held_version > d.record_version
                THEN d.held_version ELSE 0 END,
           d.held_by,
           CASE WHEN d.earlier_units > 0 AND d.earlier_version > d.record_version
                THEN d.earlier_version ELSE 0 END
      FROM authorizations.draws d
     WHERE (d.held_units > 0 OR d.earlier_units > 0) AND d.updated_at < now() - older_than
     ORDER BY d.updated_at LIMIT page
$$;

ALTER FUNCTION authorizations.ended_approved(date, bigint) OWNER TO caseway_system;
ALTER FUNCTION authorizations.unsettled_holds(interval, bigint) OWNER TO caseway_system;
REVOKE ALL ON FUNCTION authorizations.ended_approved(date, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION authorizations.unsettled_holds(interval, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION authorizations.ended_approved(date, bigint) TO caseway_app;
GRANT EXECUTE ON FUNCTION authorizations.unsettled_holds(interval, bigint) TO caseway_app;

-- The last policy that honoured the scope is gone; so is the scope.
DROP FUNCTION platform.is_system();
