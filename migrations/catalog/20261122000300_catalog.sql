-- The service catalog: service groups, services, grants, programs, providers and code lists.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE SCHEMA catalog;
GRANT USAGE ON SCHEMA catalog TO caseway_app;

CREATE TABLE catalog.service_groups (
    tenant_id   uuid        NOT NULL,
    id          uuid        NOT NULL,
    name        text        NOT NULL,
    description text        NOT NULL DEFAULT '',
    version     bigint      NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX service_groups_name ON catalog.service_groups (tenant_id, name) WHERE deleted_at IS NULL;

CREATE TABLE catalog.services (
    tenant_id          uuid          NOT NULL,
    id                 uuid          NOT NULL,
    code               text          NOT NULL,
    name               text          NOT NULL,
    description        text          NOT NULL DEFAULT '',
    unit_of_measure    text          NOT NULL CHECK (unit_of_measure IN ('dollars', 'hours', 'minutes', 'count')),
    default_unit_value numeric(14, 2) NOT NULL CHECK (default_unit_value >= 0),
    delivery_mode      text          NOT NULL CHECK (delivery_mode IN ('direct', 'indirect')),
    service_group_id   uuid,
    -- Empty: every organization of the tenant sees the service.
    organization_ids   uuid[]        NOT NULL DEFAULT '{}',
    grant_ids          uuid[]        NOT NULL DEFAULT '{}',
    program_ids        uuid[]        NOT NULL DEFAULT '{}',
    state              text          NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'retired')),
    version            bigint        NOT NULL DEFAULT 1,
    created_at         timestamptz   NOT NULL DEFAULT now(),
    updated_at         timestamptz   NOT NULL DEFAULT now(),
    deleted_at         timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX services_code ON catalog.services (tenant_id, code) WHERE deleted_at IS NULL;
CREATE INDEX services_group ON catalog.services (tenant_id, service_group_id);
CREATE INDEX services_grants ON catalog.services USING gin (grant_ids);
CREATE INDEX services_programs ON catalog.services USING gin (program_ids);

CREATE TABLE catalog.grants (
    tenant_id  uuid          NOT NULL,
    id         uuid          NOT NULL,
    code       text          NOT NULL,
    name       text          NOT NULL,
    funder     text          NOT NULL DEFAULT '',
    start_date date          NOT NULL,
    end_date   date,
    budget     numeric(14, 2) CHECK (budget >= 0),
    state      text          NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'retired')),
    version    bigint        NOT NULL DEFAULT 1,
    created_at timestamptz   NOT NULL DEFAULT now(),
    updated_at timestamptz   NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CHECK (end_date IS NULL OR end_date >= start_date)
);
CREATE UNIQUE INDEX grants_code ON catalog.grants (tenant_id, code);

CREATE TABLE catalog.programs (
    tenant_id   uuid        NOT NULL,
    id          uuid        NOT NULL,
    code        text        NOT NULL,
    name        text        NOT NULL,
    description text        NOT NULL DEFAULT '',
    start_date  date        NOT NULL,
    end_date    date,
    state       text        NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'retired')),
    version     bigint      NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CHECK (end_date IS NULL OR end_date >= start_date)
);
CREATE UNIQUE INDEX programs_code ON catalog.programs (tenant_id, code);

CREATE TABLE catalog.providers (
    tenant_id  uuid        NOT NULL,
    id         uuid        NOT NULL,
    name       text        NOT NULL,
    kind       text        NOT NULL CHECK (kind IN ('staff', 'vendor')),
    email      text        NOT NULL DEFAULT '',
    phone      text        NOT NULL DEFAULT '',
    state      text        NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'retired')),
    version    bigint      NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX providers_name ON catalog.providers (tenant_id, name, id);
CREATE INDEX providers_name_trigram ON catalog.providers USING gin (name gin_trgm_ops);

CREATE TABLE catalog.code_values (
    tenant_id  uuid        NOT NULL,
    id         uuid        NOT NULL,
    code_list  text        NOT NULL CHECK (code_list IN ('reason', 'goal', 'referral_plan', 'barrier_type', 'turn_away_reason')),
    code       text        NOT NULL,
    label      text        NOT NULL,
    sort_order integer     NOT NULL DEFAULT 0,
    state      text        NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'retired')),
    version    bigint      NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX code_values_code ON catalog.code_values (tenant_id, code_list, code);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['service_groups', 'services', 'grants', 'programs', 'providers', 'code_values'] LOOP
        EXECUTE format('ALTER TABLE catalog.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE catalog.%I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON catalog.%I '
            'USING (tenant_id = platform.current_tenant()) '
            'WITH CHECK (tenant_id = platform.current_tenant())', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE ON catalog.%I TO caseway_app', t);
    END LOOP;
END
$$;
