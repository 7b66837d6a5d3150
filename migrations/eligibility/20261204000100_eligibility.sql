-- Service eligibility: each catalog service's rule (a draft and its published versions), the
-- decisions taken with them, and the service's own read model of clients' facts, kept by the
-- clients, records and catalog services' events. Each fact row keeps the version of the event
-- that wrote it, so a redelivered or older event changes nothing; nothing here is a foreign
-- key to another service's schema.

CREATE SCHEMA eligibility;
GRANT USAGE ON SCHEMA eligibility TO caseway_app;

CREATE TABLE eligibility.rules (
    tenant_id         uuid        NOT NULL,
    id                uuid        NOT NULL,
    service_id        uuid        NOT NULL,
    -- 1 advisory, 2 required.
    mode              smallint    NOT NULL CHECK (mode IN (1, 2)),
    -- The draft: [{name, expression, any_of_group}].
    criteria          jsonb       NOT NULL,
    -- 0 while nothing is published.
    published_version integer     NOT NULL DEFAULT 0,
    draft_changed     boolean     NOT NULL DEFAULT true,
    version           bigint      NOT NULL DEFAULT 1,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, service_id)
);

CREATE TABLE eligibility.rule_versions (
    tenant_id    uuid        NOT NULL,
    rule_id      uuid        NOT NULL,
    version      integer     NOT NULL CHECK (version >= 1),
    service_id   uuid        NOT NULL,
    mode         smallint    NOT NULL CHECK (mode IN (1, 2)),
    criteria     jsonb       NOT NULL,
    -- The fact schema the criteria were checked against, so the version compiles the same
    -- whatever the tenant's assessment types become.
    fact_schema  jsonb       NOT NULL,
    published_by text        NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, rule_id, version),
    FOREIGN KEY (tenant_id, rule_id) REFERENCES eligibility.rules (tenant_id, id)
);

CREATE TABLE eligibility.decisions (
    tenant_id    uuid        NOT NULL,
    id           uuid        NOT NULL,
    client_id    uuid        NOT NULL,
    service_id   uuid        NOT NULL,
    rule_id      uuid        NOT NULL,
    rule_version integer     NOT NULL,
    as_of        date        NOT NULL,
    -- 1 eligible, 2 not eligible, 3 undetermined.
    outcome      smallint    NOT NULL CHECK (outcome IN (1, 2, 3)),
    -- Every criterion's outcome and the facts it read: [{outcome, reason, facts}].
    results      jsonb       NOT NULL,
    -- What of the client's facts the rule read as of as_of, which a replay evaluates again.
    facts        jsonb       NOT NULL,
    decided_by   text        NOT NULL,
    decided_at   timestamptz NOT NULL DEFAULT now(),
    -- SHA-256 of what the decision was taken on (client, rule version, date, facts read): the
    -- same decision is stored once, and a check that takes it again answers with this one.
    digest       bytea       NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, digest),
    FOREIGN KEY (tenant_id, rule_id, rule_version)
        REFERENCES eligibility.rule_versions (tenant_id, rule_id, version)
);
CREATE INDEX decisions_client ON eligibility.decisions (tenant_id, client_id, decided_at DESC);

-- A client's latest outcome per service with a published rule, to tell when new facts flip it.
CREATE TABLE eligibility.outcomes (
    tenant_id   uuid        NOT NULL,
    client_id   uuid        NOT NULL,
    service_id  uuid        NOT NULL,
    outcome     smallint    NOT NULL CHECK (outcome IN (1, 2, 3)),
    decision_id uuid        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, client_id, service_id)
);

-- The fact schema: the catalog's services (their codes and security organizations) and
-- programs, and the clients service's assessment types.
CREATE TABLE eligibility.services (
    tenant_id        uuid    NOT NULL,
    id               uuid    NOT NULL,
    code             text    NOT NULL,
    organization_ids uuid[]  NOT NULL DEFAULT '{}',
    deleted          boolean NOT NULL DEFAULT false,
    version          bigint  NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX services_code ON eligibility.services (tenant_id, code) WHERE NOT deleted;

CREATE TABLE eligibility.programs (
    tenant_id uuid   NOT NULL,
    id        uuid   NOT NULL,
    code      text   NOT NULL,
    version   bigint NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE eligibility.assessment_types (
    tenant_id uuid   NOT NULL,
    id        uuid   NOT NULL,
    code      text   NOT NULL,
    -- {field key: type}, the types as domain::FieldType names them.
    fields    jsonb  NOT NULL,
    version   bigint NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- The facts of clients.
CREATE TABLE eligibility.clients (
    tenant_id  uuid    NOT NULL,
    id         uuid    NOT NULL,
    birth_date date,
    -- Null when not collected.
    veteran    boolean,
    deleted    boolean NOT NULL DEFAULT false,
    version    bigint  NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE eligibility.assessments (
    tenant_id       uuid  NOT NULL,
    id              uuid  NOT NULL,
    client_id       uuid  NOT NULL,
    type_code       text  NOT NULL,
    assessment_date date  NOT NULL,
    -- {field key: {type: value}}, as domain::Answer serializes.
    answers         jsonb NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX assessments_client ON eligibility.assessments (tenant_id, client_id);

CREATE TABLE eligibility.barriers (
    tenant_id       uuid   NOT NULL,
    id              uuid   NOT NULL,
    client_id       uuid   NOT NULL,
    type_code       text   NOT NULL,
    -- IDENTIFIED, BEING_ADDRESSED or RESOLVED, as it now stands.
    status          text   NOT NULL,
    identified_date date   NOT NULL,
    resolved_date   date,
    version         bigint NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX barriers_client ON eligibility.barriers (tenant_id, client_id);

CREATE TABLE eligibility.enrollments (
    tenant_id  uuid   NOT NULL,
    id         uuid   NOT NULL,
    client_id  uuid   NOT NULL,
    program_id uuid   NOT NULL,
    entry_date date   NOT NULL,
    exit_date  date,
    version    bigint NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX enrollments_client ON eligibility.enrollments (tenant_id, client_id);

-- Delivered services (turn-aways and indirect services are not deliveries to a client).
CREATE TABLE eligibility.deliveries (
    tenant_id    uuid           NOT NULL,
    id           uuid           NOT NULL,
    client_id    uuid           NOT NULL,
    service_id   uuid           NOT NULL,
    service_date date           NOT NULL,
    units        numeric(18, 4) NOT NULL,
    value        numeric(18, 4) NOT NULL,
    deleted      boolean        NOT NULL DEFAULT false,
    version      bigint         NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX deliveries_client ON eligibility.deliveries (tenant_id, client_id, service_date)
    WHERE NOT deleted;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['rules', 'rule_versions', 'decisions', 'outcomes', 'services',
                             'programs', 'assessment_types', 'clients', 'assessments',
                             'barriers', 'enrollments', 'deliveries']
    LOOP
        EXECUTE format('ALTER TABLE eligibility.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE eligibility.%I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON eligibility.%I '
                       'USING (tenant_id = platform.current_tenant()) '
                       'WITH CHECK (tenant_id = platform.current_tenant())', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE ON eligibility.%I TO caseway_app', t);
    END LOOP;
END
$$;
