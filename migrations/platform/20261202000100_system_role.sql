-- The platform's own work across tenants (the outbox relay, the tenant lifecycle, the
-- authorizations' workers) ran under app.scope = 'system', a setting the services' role can
-- set in any transaction. It now runs in functions owned by caseway_system: a role nobody
-- logs in as and the services' role is not a member of, whose policies alone see every
-- tenant. Each function does one thing, with a fixed search path; the services' role may call
-- them, and nothing else it does sees past its tenant. (A relay of the previous version reads
-- nothing once this is applied: events wait in the outbox until the new version relays them.)

DO $$
BEGIN
    CREATE ROLE caseway_system NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

-- The owner hands functions to caseway_system, which takes membership unless it is a
-- superuser (who may anyway).
DO $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('GRANT caseway_system TO %I', current_user);
    END IF;
END
$$;

GRANT USAGE, CREATE ON SCHEMA platform TO caseway_system;
-- SELECT ... FOR UPDATE takes the UPDATE privilege.
GRANT SELECT, UPDATE, DELETE ON platform.outbox TO caseway_system;
CREATE POLICY system_role ON platform.outbox TO caseway_system USING (true);

DROP POLICY tenant_isolation ON platform.outbox;
CREATE POLICY tenant_isolation ON platform.outbox
    USING (tenant_id = platform.current_tenant())
    WITH CHECK (tenant_id = platform.current_tenant());

-- Claims and deletes the oldest unpublished events of every tenant, skipping rows another
-- relay holds; the caller's transaction commits once the broker confirmed them (or rolls
-- back and they come back).
CREATE FUNCTION platform.claim_outbox(batch bigint)
RETURNS TABLE (seq bigint, id uuid, tenant_id uuid, event_type text, source text, subject text,
               occurred_at timestamptz, payload bytea, traceparent text)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    DELETE FROM platform.outbox o WHERE o.id IN (
        SELECT p.id FROM platform.outbox p WHERE p.published_at IS NULL
         ORDER BY p.seq LIMIT batch FOR UPDATE SKIP LOCKED
    )
    RETURNING o.seq, o.id, o.tenant_id, o.event_type, o.source, o.subject, o.occurred_at,
              o.payload, o.traceparent
$$;
ALTER FUNCTION platform.claim_outbox(bigint) OWNER TO caseway_system;
REVOKE ALL ON FUNCTION platform.claim_outbox(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION platform.claim_outbox(bigint) TO caseway_app;
