-- The hosting provider's support desk works escalated tickets of every tenant and sees nothing
-- else of any tenant. Its transactions take a role of their own, caseway_support (SET LOCAL
-- ROLE), which the ticketing schema's policies let see escalated tickets and their notes, and
-- which holds no privilege on any other table of any schema: a query of one is refused. The
-- services' role is a member, so it may take the role, but does not inherit it (NOINHERIT,
-- set before the grant so PostgreSQL 16 makes the grant non-inheriting too), so its own
-- transactions never see what the support role sees.
DO $$
BEGIN
    CREATE ROLE caseway_support NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;
ALTER ROLE caseway_app NOINHERIT;
GRANT caseway_support TO caseway_app;

GRANT USAGE ON SCHEMA platform TO caseway_support;
GRANT EXECUTE ON FUNCTION platform.current_tenant() TO caseway_support;

-- What support does to a ticket is audited in its organization's log and published as its
-- organization's event (a support transaction acts for the ticket's tenant): support writes
-- audit rows and reads none, and writes and reads back only ticketing events.
GRANT INSERT ON platform.audit_log TO caseway_support;
GRANT INSERT, SELECT (id) ON platform.outbox TO caseway_support;
CREATE POLICY support_events ON platform.outbox AS RESTRICTIVE TO caseway_support
    USING (event_type LIKE 'ticketing.%')
    WITH CHECK (event_type LIKE 'ticketing.%');

-- The idempotency keys of support's requests, which are ticketing requests only: the keys of
-- the tenant's other requests hold their replies, which support never reads.
GRANT SELECT, INSERT, UPDATE ON platform.idempotency_keys TO caseway_support;
CREATE POLICY support_requests ON platform.idempotency_keys AS RESTRICTIVE TO caseway_support
    USING (method LIKE 'ticketing.%')
    WITH CHECK (method LIKE 'ticketing.%');
