-- The platform schema: idempotency keys, the audit log, the outbox and the inbox; and the
-- role the services connect as. Every table has row-level security enabled and forced.

-- The services' role owns nothing and has no BYPASSRLS. Roles are cluster-wide, so another
-- database of the same server may have created it already.
DO $$
BEGIN
    CREATE ROLE caseway_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

CREATE SCHEMA platform;
GRANT USAGE ON SCHEMA platform TO caseway_app;

-- The tenant of the current transaction, or NULL when none is set: policies compare with it,
-- so a transaction with no tenant matches no row.
CREATE FUNCTION platform.current_tenant() RETURNS uuid
LANGUAGE sql STABLE AS $$
    SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid
$$;

-- Whether the current transaction is the platform's own (the outbox relay, tenant lifecycle).
CREATE FUNCTION platform.is_system() RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT coalesce(current_setting('app.scope', true), '') = 'system'
$$;

GRANT EXECUTE ON FUNCTION platform.current_tenant() TO caseway_app;
GRANT EXECUTE ON FUNCTION platform.is_system() TO caseway_app;

CREATE TABLE platform.idempotency_keys (
    tenant_id    uuid        NOT NULL,
    method       text        NOT NULL,
    request_id   text        NOT NULL,
    request_hash bytea       NOT NULL,
    response     bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, method, request_id)
);

CREATE TABLE platform.audit_log (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id      uuid        NOT NULL,
    actor          text        NOT NULL,
    action         text        NOT NULL,
    resource_type  text        NOT NULL,
    resource_id    uuid        NOT NULL,
    changed_fields text[]      NOT NULL DEFAULT '{}',
    occurred_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_resource ON platform.audit_log (tenant_id, resource_type, resource_id, occurred_at);

CREATE TABLE platform.outbox (
    seq          bigint GENERATED ALWAYS AS IDENTITY,
    id           uuid        PRIMARY KEY,
    tenant_id    uuid        NOT NULL,
    event_type   text        NOT NULL,
    source       text        NOT NULL,
    subject      text        NOT NULL,
    occurred_at  timestamptz NOT NULL,
    payload      bytea       NOT NULL,
    traceparent  text,
    published_at timestamptz
);
CREATE INDEX outbox_unpublished ON platform.outbox (seq) WHERE published_at IS NULL;

CREATE TABLE platform.inbox (
    tenant_id    uuid        NOT NULL,
    consumer     text        NOT NULL,
    event_id     uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, consumer, event_id)
);

ALTER TABLE platform.idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE platform.idempotency_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON platform.idempotency_keys
    USING (tenant_id = platform.current_tenant())
    WITH CHECK (tenant_id = platform.current_tenant());

ALTER TABLE platform.audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE platform.audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON platform.audit_log
    USING (tenant_id = platform.current_tenant())
    WITH CHECK (tenant_id = platform.current_tenant());

-- The relay reads every tenant's rows under the system scope; services write their own.
ALTER TABLE platform.outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE platform.outbox FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON platform.outbox
    USING (tenant_id = platform.current_tenant() OR platform.is_system())
    WITH CHECK (tenant_id = platform.current_tenant() OR platform.is_system());

ALTER TABLE platform.inbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE platform.inbox FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON platform.inbox
    USING (tenant_id = platform.current_tenant())
    WITH CHECK (tenant_id = platform.current_tenant());

GRANT SELECT, INSERT, UPDATE ON platform.idempotency_keys TO caseway_app;
GRANT SELECT, INSERT ON platform.audit_log TO caseway_app;
GRANT SELECT, INSERT, UPDATE ON platform.outbox TO caseway_app;
GRANT SELECT, INSERT ON platform.inbox TO caseway_app;
