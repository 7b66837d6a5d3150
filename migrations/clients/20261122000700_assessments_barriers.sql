-- Assessment types (tenant-defined questionnaires), recorded assessments (typed answers, kept
-- as history) and barriers (needs) of clients.

CREATE TABLE clients.assessment_types (
    tenant_id   uuid        NOT NULL,
    id          uuid        NOT NULL,
    code        text        NOT NULL,
    name        text        NOT NULL,
    description text        NOT NULL DEFAULT '',
    -- [{key, label, type, required, options: [{code, label}]}], in display order.
    fields      jsonb       NOT NULL,
    state       smallint    NOT NULL,
    version     bigint      NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, code)
);

CREATE TABLE clients.assessments (
    tenant_id            uuid        NOT NULL,
    id                   uuid        NOT NULL,
    client_id            uuid        NOT NULL,
    assessment_type_id   uuid        NOT NULL,
    -- The type's version the answers were checked against.
    assessment_type_version bigint   NOT NULL,
    assessment_date      date        NOT NULL,
    -- [{key, type, value}], value as JSON: integers as numbers, decimals as strings.
    answers              jsonb       NOT NULL,
    recorded_by          text        NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, client_id) REFERENCES clients.clients (tenant_id, id),
    FOREIGN KEY (tenant_id, assessment_type_id) REFERENCES clients.assessment_types (tenant_id, id)
);
-- A client's history, and the latest of each type.
CREATE INDEX assessments_client_type ON clients.assessments
    (tenant_id, client_id, assessment_type_id, assessment_date DESC, id DESC);
CREATE INDEX assessments_client ON clients.assessments
    (tenant_id, client_id, assessment_date DESC, id DESC);

CREATE TABLE clients.barriers (
    tenant_id         uuid        NOT NULL,
    id                uuid        NOT NULL,
    client_id         uuid        NOT NULL,
    -- A code value of the catalog's BARRIER_TYPE list, with its code as it was then.
    barrier_type_id   uuid        NOT NULL,
    barrier_type_code text        NOT NULL,
    identified_date   date        NOT NULL,
    status            smallint    NOT NULL,
    resolved_date     date,
    note              text        NOT NULL DEFAULT '',
    version           bigint      NOT NULL DEFAULT 1,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, client_id) REFERENCES clients.clients (tenant_id, id),
    -- Resolved (3) exactly when there is a resolved date, never before identification.
    CHECK ((status = 3) = (resolved_date IS NOT NULL)),
    CHECK (resolved_date IS NULL OR resolved_date >= identified_date)
);
CREATE INDEX barriers_client ON clients.barriers (tenant_id, client_id, identified_date DESC, id DESC);

ALTER TABLE clients.assessment_types ENABLE ROW LEVEL SECURITY;
ALTER TABLE clients.assessment_types FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON clients.assessment_types
    USING (tenant_id = platform.current_tenant())
    WITH CHECK (tenant_id = platform.current_tenant());

ALTER TABLE clients.assessments ENABLE ROW LEVEL SECURITY;
ALTER TABLE clients.assessments FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON clients.assessments
    USING (tenant_id = platform.current_tenant())
    WITH CHECK (tenant_id = platform.current_tenant());

ALTER TABLE clients.barriers ENABLE ROW LEVEL SECURITY;
ALTER TABLE clients.barriers FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON clients.barriers
    USING (tenant_id = platform.current_tenant())
    WITH CHECK (tenant_id = platform.current_tenant());

GRANT SELECT, INSERT, UPDATE ON clients.assessment_types, clients.barriers TO caseway_app;
-- Recorded assessments are history: added, never changed.
GRANT SELECT, INSERT ON clients.assessments TO caseway_app;
