-- Clients. The SSN is never stored in the clear: a sealed value with its key id, a keyed hash
-- for exact search, and the last four digits for display.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE SCHEMA clients;
GRANT USAGE ON SCHEMA clients TO caseway_app;

CREATE TABLE clients.clients (
    tenant_id          uuid        NOT NULL,
    id                 uuid        NOT NULL,
    first_name         text        NOT NULL DEFAULT '',
    middle_name        text        NOT NULL DEFAULT '',
    last_name          text        NOT NULL DEFAULT '',
    suffix             text        NOT NULL DEFAULT '',
    preferred_name     text        NOT NULL DEFAULT '',
    birth_date         date,
    birth_date_quality smallint    NOT NULL,
    ssn_sealed         bytea,
    ssn_key_id         text,
    ssn_hash           bytea,
    ssn_last4          text,
    ssn_quality        smallint    NOT NULL,
    veteran_status     smallint    NOT NULL,
    demographics       jsonb       NOT NULL DEFAULT '[]',
    contact            jsonb       NOT NULL DEFAULT '{}',
    organization_id    uuid,
    -- What name search compares: "first last" and the preferred name, lower case.
    search_name        text        GENERATED ALWAYS AS (lower(first_name || ' ' || last_name || ' ' || preferred_name)) STORED,
    version            bigint      NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    deleted_at         timestamptz,
    deleted_reason     text,
    PRIMARY KEY (tenant_id, id),
    CHECK ((ssn_sealed IS NULL) = (ssn_hash IS NULL))
);
CREATE INDEX clients_search_name ON clients.clients USING gin (search_name gin_trgm_ops);
CREATE INDEX clients_ssn_hash ON clients.clients (tenant_id, ssn_hash) WHERE ssn_hash IS NOT NULL;
CREATE INDEX clients_ssn_last4 ON clients.clients (tenant_id, ssn_last4) WHERE ssn_last4 IS NOT NULL;
CREATE INDEX clients_birth_date ON clients.clients (tenant_id, birth_date);

ALTER TABLE clients.clients ENABLE ROW LEVEL SECURITY;
ALTER TABLE clients.clients FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON clients.clients
    USING (tenant_id = platform.current_tenant())
    WITH CHECK (tenant_id = platform.current_tenant());

GRANT SELECT, INSERT, UPDATE ON clients.clients TO caseway_app;
