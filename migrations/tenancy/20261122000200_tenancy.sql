-- Tenants and their security organizations.

CREATE SCHEMA tenancy;
GRANT USAGE ON SCHEMA tenancy TO caseway_app;

CREATE TABLE tenancy.tenants (
    id           uuid        PRIMARY KEY,
    slug         text        NOT NULL UNIQUE,
    display_name text        NOT NULL,
    status       text        NOT NULL CHECK (status IN ('active', 'suspended')),
    version      bigint      NOT NULL DEFAULT 1,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- A tenant sees its own row (the auth layer reads its status); the platform sees all.
ALTER TABLE tenancy.tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenancy.tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenancy.tenants
    USING (id = platform.current_tenant() OR platform.is_system())
    WITH CHECK (platform.is_system());

CREATE TABLE tenancy.organizations (
    tenant_id  uuid        NOT NULL,
    id         uuid        NOT NULL,
    code       text        NOT NULL,
    name       text        NOT NULL,
    version    bigint      NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX organizations_code ON tenancy.organizations (tenant_id, code) WHERE deleted_at IS NULL;

ALTER TABLE tenancy.organizations ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenancy.organizations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenancy.organizations
    USING (tenant_id = platform.current_tenant())
    WITH CHECK (tenant_id = platform.current_tenant());

GRANT SELECT, INSERT, UPDATE ON tenancy.tenants TO caseway_app;
GRANT SELECT, INSERT, UPDATE ON tenancy.organizations TO caseway_app;
